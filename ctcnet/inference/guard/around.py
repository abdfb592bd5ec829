"""The guard's readings over the CK area and round it: a marker's excess over the area
(median and upper quartile, :func:`over_area`), and the exclusion markers over the area grown
by a membrane's reach and in a band round it (:func:`around_columns`): which partner a
cluster's CTC has attached (``partner_um2`` and ``partner_um2_<role>``); and the markers that
can stand for CK on a CTC (vimentin, EpCAM) near the centre, once DAPI's and CK's leaks are
off (:func:`vouch_columns`).
"""

from __future__ import annotations

import numpy as np

from ctcnet.core.robust import percentiles
from ctcnet.inference.guard.leaks import marker_excess
from ctcnet.inference.guard.masks import grown
from ctcnet.inference.guard.rules import CTC_DYE_ROLES
from ctcnet.io.marker_names import EXCLUSION_ROLES
from ctcnet.io.panel import CK_NEGATIVE_CTC_ROLES


def around_columns(batch, rows: np.ndarray, out: dict) -> None:
    # (``batch``: a ``measurements._Batch``; ``out``: its columns, NaN where unread)
    """``exclusion_around_ck``: the exclusion markers over the CK area and round it; and
    ``partner_um2``, how much of a band round it any of them lights: a leukocyte or platelets
    attached at one side light a tenth or a fifth of the rim, which its upper quartile never
    reads; ``partner_um2_<role>``, how much the markers of each role light (which partner)."""
    panel, rules, disk = batch.panel, batch.rules, batch.disk
    exclusion = panel.indices_of_roles(EXCLUSION_ROLES)
    if not exclusion:
        return
    signal, noise, clipped = batch.signal[rows], batch.noise[rows], batch.clipped[rows]
    has_area = batch.ck_area[rows] > 0
    # A leukocyte's CD45 is a membrane ring round its nucleus: where CK is only a leak of
    # DAPI, the CK area is the nucleus and the ring lies outside it. Read the markers over the
    # CK area grown by the membrane's reach (for the missed-CTC check).
    grow = max(1, int(round(rules.around_ck_um / batch.pixel_size_um)))
    around = grown(batch.area[rows], grow) & disk
    own = [i for i, role in enumerate(panel.roles()) if role in CTC_DYE_ROLES]
    worst = np.full(int(rows.sum()), -np.inf, np.float32)
    lit = np.zeros(around[:, disk].shape, bool)
    lit_by_role = {role: np.zeros_like(lit) for role in EXCLUSION_ROLES}
    # A partner lies beside the object: read it in a band round the CK area that leaves out
    # the pixels next to its edge, where CK leaking into a channel registered a pixel or two
    # off (a leak the fit takes only where it lines up) would light a rim all round.
    area = batch.area[rows]
    band = grown(area, max(1, int(round(rules.partner_reach_um / batch.pixel_size_um)))) & \
        ~grown(area, max(1, int(round(rules.partner_gap_um / batch.pixel_size_um)))) & disk
    readable = band[:, disk] & ~clipped[:, disk] & has_area[:, None]
    caps = [batch.cd45_leak_caps(rows) if i == batch.cd45 else rules.leak_cap(panel, i)
            for i in exclusion]
    roles = panel.roles()
    strongest = np.full(lit.shape, -np.inf, np.float32)
    for channel, excess in zip(exclusion, marker_excess(signal, noise, clipped, disk,
                                                        exclusion, own, caps)):
        # NaN (the area all saturated) stays NaN: no reading, no flag.
        worst = np.maximum(worst, over_area(excess, clipped, disk, around, has_area)[1])
        lit_here = readable & (excess > rules.cd45_level)
        lit |= lit_here
        # A lit pixel is the partner of the marker strongest there: one exclusion marker
        # leaking into another's channel (the leak fit takes only CK's and DAPI's) lights a
        # fainter copy of the same pixels, which must not name a second partner.
        mine = lit_here & (excess > strongest)
        for role_lit in lit_by_role.values():
            role_lit &= ~mine
        lit_by_role[roles[channel]] |= mine
        strongest = np.where(mine, excess, strongest)
    out["exclusion_around_ck"][rows] = worst
    um2 = batch.pixel_size_um ** 2
    out["partner_um2"][rows] = lit.sum(axis=1) * um2
    for role, role_lit in lit_by_role.items():
        out[f"partner_um2_{role}"][rows] = role_lit.sum(axis=1) * um2


def over_area(excess: np.ndarray, clipped: np.ndarray, disk: np.ndarray, area: np.ndarray,
               has_area: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median and upper quartile of a marker's excess (:func:`.leaks.marker_excess`) over an
    area."""
    # Upper quartile: a membrane ring covers the rim of the CK area, not all of it. A crop
    # without a CK area measures 0; one whose CK area is all saturated, NaN (no call).
    inside = area[:, disk] & ~clipped[:, disk] & has_area[:, None]
    q50, q75 = percentiles(excess, (50, 75), mask=inside).astype(excess.dtype, copy=False)
    return np.where(has_area, q50, 0.0), np.where(has_area, q75, 0.0)


def vouch_columns(batch, rows: np.ndarray, out: dict) -> None:
    # (``batch``: a ``measurements._Batch``; ``out``: its columns, NaN where unread)
    """``vouch_peak``: the brightest excess near the centre of the markers that can vouch for
    a CK-negative CTC (vimentin, EpCAM), once DAPI's and CK's leaks are taken off (DAPI
    leaking 6 % into EpCAM lit it over every nucleus: bare nuclei called ctc read EpCAM-lit)."""
    roles = batch.panel.roles()
    vouching = [i for i, role in enumerate(roles) if role in CK_NEGATIVE_CTC_ROLES]
    if not vouching:
        return
    own = [i for i, role in enumerate(roles) if role in CTC_DYE_ROLES]
    near = batch.core(0.5)[batch.disk]  # the disk's pixels within half the radius
    excess = marker_excess(batch.signal[rows], batch.noise[rows], batch.clipped[rows],
                           batch.disk, vouching, own,
                           [batch.rules.leak_cap(batch.panel, i) for i in vouching])
    out["vouch_peak"][rows] = np.max([e[:, near].max(axis=1) for e in excess], axis=0)
