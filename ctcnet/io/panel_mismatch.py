"""What a model's channels and a scan's or crop set's planes fail to match by, in words:
a channel the data lacks, or a plane read as the same marker as one the model reads (a
therapy plane named ``CK`` beside the scan's ``CK-PE``: the model would read the wrong one
and measure the real CK as an extra plane, its count wrong and the run ``ok``)."""

from __future__ import annotations


def mismatch_text(model, data, what: str, missing: list[str], twins: list[str]) -> str:
    """Why ``data`` (a :class:`~ctcnet.io.panel.Panel`) cannot be read through ``model``'s
    channels: the ``missing`` ones (with the data's planes alike by that marker, where there
    are several), else the data planes left over (``twins``) that read as a marker the model
    reads, each named with the plane read for it."""
    from ctcnet.io.panel import marker_role

    def alike(role: str) -> str:
        same = [n for n in data.names if marker_role(n) == role]
        return f"{' and '.join(same)} {'both' if len(same) == 2 else 'all'} read as " \
            f"{next(c.name for c in model.channels if c.role == role)}"

    if missing:
        roles = [c.role for c in model.channels if c.name in missing and c.role != "unknown"]
        hints = [f"; {alike(role)}: name the one the model should read "
                 f"{next(c.name for c in model.channels if c.role == role)}"
                 for role in roles if sum(marker_role(n) == role for n in data.names) > 1]
        return (f"channel mismatch: the model needs {model.names} but the {what} lacks "
                f"{missing} (it has {data.names}{''.join(hints)})")
    roles = list(dict.fromkeys(marker_role(name) for name in twins))
    return (f"channel mismatch: the {what} names two planes of one marker the model reads "
            f"({'; '.join(alike(role) for role in roles)}; it has {data.names}): name each "
            "plane by what it holds (a therapy marker as HER2-FITC, not CK), so the model "
            "reads the right one")
