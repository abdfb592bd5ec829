"""What names the model a run or a report was made with: its file (absolute path, SHA-256),
its network (a checkpoint's digest, shared by its fp32 ONNX export), its card's name and a
fine-tune's base (:func:`model_record`), the fields an evaluation's reports carry
(:func:`scored_by`), the line a log gives it, the check of a model a lab pinned by its
digest (:func:`check_model_digest`), and what made a frame's calls (:func:`made_by`: the
backend, model file and software a journal records per frame); and the model file a
summary.json names, in either of its layouts (:func:`model_file_of`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from ctcnet.core.paths import absolute
from ctcnet.errors import InputError
from ctcnet.io.digests import file_sha256


def model_path(backend) -> str | None:
    """The file the backend's model was loaded from, absolute, as a run's summary records
    it: a lab's model named relative to where predict ran is found from anywhere later
    (None: a model given in memory)."""
    return absolute(backend.model_path) if backend.model_path else None


def model_sha256(backend) -> str | None:
    """The SHA-256 of the file the backend's model was loaded from (None: a model given in
    memory), as a run's summary records it."""
    return file_sha256(backend.model_path) if backend.model_path else None


def network_sha256(backend) -> str:
    """The SHA-256 naming the network that runs (a run's fingerprint records it): an ONNX
    graph's checkpoint's, so a checkpoint and its fp32 export are one network; else the
    model file's."""
    identity = getattr(backend, "model_identity", None)
    return identity() if identity else file_sha256(backend.model_path)


def model_record(backend) -> dict:
    """What a report names its model by, for an audit months later: the file (absolute path,
    SHA-256), the network (``network_sha256``: a checkpoint's, also for its fp32 ONNX export,
    which a run's fingerprint records), its name where a card lies beside it (a shipped
    model, a fine-tune), and the base model a fine-tune was made from."""
    path = backend.model_path
    if path is None:
        return {"path": None, "sha256": None}  # a model given in memory
    sha256 = file_sha256(path)  # hashed once: the network's too, where the file is it
    identity = getattr(backend, "model_identity", None)
    record = {"path": absolute(path), "sha256": sha256,
              "network_sha256": identity() if identity else sha256}
    try:  # a card beside it (a shipped model's, a fine-tune's): the model has a name
        from ctcnet.nn.registry import get_model

        record["name"] = get_model(str(path)).name
    except (InputError, OSError, ValueError):
        pass  # no card, or a JSON file that is none: no name
    base = (getattr(backend.spec, "training", None) or {}).get("finetune", {}).get("base")
    if isinstance(base, dict):
        record["finetuned_from"] = {k: base.get(k) for k in ("path", "sha256")}
    return record


def check_model_digest(backend, expected: str) -> None:
    """Refuse (InputError) a model whose file's SHA-256 and network's SHA-256
    (:func:`network_sha256`) both differ from ``expected``, a digest or its first 12 or more
    hex digits: a lab that validated one model runs that one, not whatever an upgrade or a
    copied file put at its path."""
    given = expected.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{12,64}", given):
        raise InputError(f"--model-sha256 takes a SHA-256 in hex (at least its first 12 "
                         f"digits), got {expected!r}")
    record = model_record(backend)
    if record["sha256"] is None:
        raise InputError("--model-sha256: the model was given in memory, not as a file")
    if not any(str(digest).startswith(given)
               for digest in (record["sha256"], record["network_sha256"])):
        raise InputError(f"the model is not the one --model-sha256 names ({given}): its file's "
                         f"SHA-256 is {record['sha256']}, its network's "
                         f"{record['network_sha256']} (an upgrade, or another file at this "
                         "path?); run with the model validated, or give its digest",
                         record["path"])


def model_line(backend) -> str:
    """The model in a log's words: its file and the two digests (:func:`model_record`)."""
    record = model_record(backend)
    return (f"model {record['path']} (file sha256 {record['sha256']}, network sha256 "
            f"{record.get('network_sha256')})")


def scored_by(backend) -> dict:
    """What an evaluation's report names of what made it, for a validation record: the model
    (``model``, its absolute path; ``model_sha256``; :func:`model_record`), the software and
    when (UTC)."""
    from ctcnet.core.provenance import software_record

    record = model_record(backend)
    return {"model": record["path"], "model_sha256": record["sha256"], "model_record": record,
            "software": software_record(),
            "written_at": datetime.now(UTC).isoformat(timespec="seconds")}


def model_file_of(summary: dict) -> tuple[str | None, str | None]:
    """(path, SHA-256) of the model file a summary.json (as parsed) names: a cartridge's
    ``model`` record, or a crop set's ``model`` path beside its ``model_sha256``."""
    model = summary.get("model")
    if isinstance(model, dict):
        return model.get("path"), model.get("sha256")
    return model, summary.get("model_sha256")


def made_by(backend_name: str, software: dict, model_file_sha256: str | None = None) -> str:
    """What computed a frame, as its record keeps it: the backend (a model's ``.pt`` and its
    ``.onnx`` resume each other's runs: their numbers agree to about 1e-6) and the model
    file's SHA-256 (its first 12 digits: another file of the same network, a run resumed on a
    re-exported or altered copy, is said), ctcnet's version and the code's digest (its first
    12 digits), or the commit where a record holds no digest."""
    # The code's digest names what ran wherever it came from: a commit differs for code that
    # does not (a docs-only commit between a run's start and its resume is the same build) and
    # misses an edited checkout or an installed package, whose version two builds share.
    commit, code = software.get("commit"), software.get("code_sha256")
    named = (f"code {code[:12]}" if code else
             commit[:12] + (" modified" if software.get("modified") else "") if commit else None)
    model = f" (file {model_file_sha256[:12]})" if model_file_sha256 else ""
    return f"{backend_name}{model}, ctcnet {software.get('ctcnet')}" + \
        (f" ({named})" if named else "")


def frames_made_by(entries, this_run: str | None = None) -> dict[str, int] | None:
    """How many of the frame records ``entries`` each backend and software made, where another
    than ``this_run`` (:func:`made_by`) made any (a run resumed on another copy of the model,
    or by another ctcnet: every frame of a run resumed with nothing left to do is one), or
    more than one did; None where this run made them all (or no record says)."""
    made: dict[str, int] = {}
    for entry in entries:
        who = entry.get("made_by") or "not recorded"
        made[who] = made.get(who, 0) + 1
    others = set(made) - {this_run} if this_run else set()
    return made if len(made) > 1 or others else None


def same_model_file(one: str, other: str) -> bool:
    """Whether two :func:`made_by` records name one model file: the same backend, and the
    same file where both name theirs (an earlier ctcnet's record names none)."""
    def model(made: str) -> tuple[str, str | None]:
        backend, _, rest = made.split(",")[0].partition(" (file ")
        return backend, rest.rstrip(")") or None

    (backend, file), (other_backend, other_file) = model(one), model(other)
    return backend == other_backend and (file is None or other_file is None or file == other_file)
