"""The leaks of other dyes into a marker's channel, fitted and taken off: what is left of a
marker once every copy of the other channels' patterns that their spillover could carry is
removed (:func:`marker_excess`), by a least-squares fit with each share bounded
(:func:`box_least_squares`). Pure numpy; the guard's measurements read CD45 and the other
exclusion markers through it.
"""

from __future__ import annotations

import numpy as np

# A leak's copy is not exactly its source's pattern: the channels' optics differ a little (the
# spillover estimate's ``SYSTEMATIC``). So what is left of a marker within this share of the
# fitted copy, either way, is the copy's mismatch, not the marker. It matters where CK is
# bright and leaks much: on a simulated scanner leaking 30 % of CK into CD45 with CK at
# 500-1,100 noise units, CTCs kept an upper quartile of 2-8 noise units of CD45 over their CK
# (median below 0) and were read CD45-positive; with it, 13 of them were not (10 more
# counted). On the golden cartridge and 5 other cartridges of the usual look, and on 2,800
# crops (600 of them under the bleed-through shift), no call or flag changed (3 events' review
# band, which reads these measurements, did); on the 20 counting cartridges
# (10 frames each) one more CTC was counted (187 -> 188 of 193), events shown 0.774 % ->
# 0.781 %, false CTC calls unchanged (0.122 per 1,000 events).
COPY_MISMATCH = 0.05


def marker_excess(signal: np.ndarray, noise: np.ndarray, clipped: np.ndarray,
                  disk: np.ndarray, targets: list[int], sources: list[int],
                  max_leaks: list[float | np.ndarray]) -> list[np.ndarray]:
    """(N, P) each ``targets`` marker's excess over the disk's pixels (in that channel's
    ``noise`` units, (N, C)) once leaks are taken off.

    A dye may leak into a target channel as a copy of its own pattern at up to ``max_leaks``
    of its counts (one per target: a share, (N,) shares per crop, or (N, K) per crop and
    source, where one source's leak is known apart from the others'): fit the target over the
    disk as a sum of the ``sources`` channels (least squares, each share clipped to [0, that
    allowance]) and keep what is left beyond ``COPY_MISMATCH`` of the fitted copy. A real CD45
    membrane has its own pattern (or, on a CK+CD45+ leukocyte, a ratio no leak has). The
    targets share the sources' normal equations, so their fits are solved as one batch.
    """
    if not sources:
        return [(signal[:, t][:, disk] / noise[:, t, None]).astype(np.float32) for t in targets]
    usable = (~clipped)[:, disk][:, None, :]
    leaking = signal[:, sources][:, :, disk] * usable                # (N, K, P)
    gram = np.einsum("nip,njp->nij", leaking, leaking)
    gram += 1e-6 * np.trace(gram, axis1=1, axis2=2)[:, None, None] * np.eye(len(sources)) \
        + 1e-6
    wanted = [signal[:, t][:, disk] * usable[:, 0] for t in targets]  # (N, P) each
    rhs = np.concatenate([np.einsum("nip,np->ni", leaking, w) for w in wanted])
    n, k = len(signal), len(sources)
    high = np.concatenate([_per_source(np.asarray(m, rhs.dtype), n, k) for m in max_leaks])
    shares = box_least_squares(np.concatenate([gram] * len(targets)), rhs, 0.0, high)
    excess = []
    for j, (target, target_wanted) in enumerate(zip(targets, wanted)):
        copy = np.einsum("ni,nip->np", shares[j * n:(j + 1) * n], leaking)
        residual = beyond_mismatch(target_wanted - copy, copy)
        excess.append((residual / noise[:, target, None]).astype(np.float32))
    return excess


def _per_source(allowance: np.ndarray, n: int, k: int) -> np.ndarray:
    """(N, K) shares from one share, (N,) per crop or (N, K) per crop and source."""
    return np.broadcast_to(allowance[:, None] if allowance.ndim == 1 else allowance, (n, k))


def beyond_mismatch(residual: np.ndarray, copy: np.ndarray) -> np.ndarray:
    """``residual`` shrunk toward zero by ``COPY_MISMATCH`` of the fitted ``copy``, pixel by
    pixel (what a leak's imperfect copy can leave either way)."""
    slack = COPY_MISMATCH * np.abs(copy)
    return np.sign(residual) * np.maximum(np.abs(residual) - slack, 0.0)


def box_least_squares(gram: np.ndarray, rhs: np.ndarray, low: float,
                      high: float | np.ndarray, sweeps: int = 60) -> np.ndarray:
    """Per row, ``argmin_s |A s - t|^2`` with every ``s_i`` in ``[low, high]`` (``high``: one
    bound, (N,) bounds per row or (N, K) per row and share), from the normal equations
    (``gram`` = A'A (N, K, K),
    ``rhs`` = A't (N, K)); cyclic coordinate descent, all rows at once.

    Solving unconstrained and clipping afterwards is not this: the nucleus and the cytoplasm
    overlap, so their leak shares trade off, and one clipped at 0 or at ``high`` leaves the
    other wrong (a bright CTC's 10 % CK leak then reads as CD45).
    """
    n, k = rhs.shape
    high = _per_source(np.asarray(high, rhs.dtype), n, k)
    diag = np.maximum(np.einsum("nii->ni", gram), 1e-12)
    share = np.clip(rhs / diag, low, high)
    # The loop runs sweeps x K times on a frame's few rows, so its cost is numpy's per-call
    # overhead: each coordinate's columns are taken out once, and each step works in place.
    own = [(gram[:, i], gram[:, i, i].copy(), rhs[:, i].copy(), diag[:, i].copy(),
            np.ascontiguousarray(high[:, i])) for i in range(k)]
    before, bits = np.empty_like(share), f"i{share.dtype.itemsize}"
    for sweep in range(sweeps):
        check = sweep % CONVERGED_CHECK == CONVERGED_CHECK - 1
        if check:
            np.copyto(before, share)
        for i, (row, gram_ii, rhs_i, diag_i, high_i) in enumerate(own):
            rest = np.einsum("nj,nj->n", row, share)
            rest -= gram_ii * share[:, i]
            np.subtract(rhs_i, rest, out=rest)
            rest /= diag_i
            np.maximum(rest, low, out=rest)
            np.minimum(rest, high_i, out=share[:, i])
        # A sweep that leaves every share bit for bit as it was reads the same shares in every
        # sweep after it, so they would change nothing: the same numbers, sooner (a third of
        # a frame's fits settle within 30 sweeps). Bits, not ==: -0.0 == 0.0.
        if check and np.array_equal(before.view(bits), share.view(bits)):
            break
    return share


# How often (in sweeps) box_least_squares checks whether its shares have settled: each check
# costs two numpy calls, a sweep 6 per share.
CONVERGED_CHECK = 4
