"""The marker guard's per-crop measurements and the marker fusion as torch graph ops, so they
run batched beside the network (on its device) and travel inside its ONNX export.

:class:`MarkerGraph` computes, from the raw crops the network reads, the columns of
:func:`ctcnet.inference.guard.measure` that the marker fusions read
(:data:`ctcnet.inference.marker_fusion.MEASURES`, and CD45's peak for the cartridge fusion's
gate) and ``partner_um2``, step for step as the
numpy code does (same pixels, same percentile ranks, same sums in the same float types where
it matters), so the numbers agree up to float rounding:

* background and noise: the 10th / 30th ``nearest`` percentiles of every second pixel, by
  TopK (as :class:`~ctcnet.nn.normalise.Normalise` reads them), the clipped-background floor
  included;
* the 3x3 mean with mirrored edges, as shifted sums in numpy's order;
* the centred CK area: the connected part (4-neighbours) of the CK mask holding the best
  central pixel, as a flood fill from that pixel: ``flood_steps`` cross-shaped dilations
  within the mask. A fixed count (an ONNX graph has no data-dependent loop here); the column
  ``area_unfinished`` says where the fill still grew at its last step (the area then is a
  part of scipy's component). The default reaches any pixel of the disk within 4-neighbour
  path length ``flood_steps`` of the seed: every convex area and almost every real one;
* the leak fits: the normal equations and the same number of coordinate-descent sweeps as
  :func:`~ctcnet.inference.guard.leaks.box_least_squares` (the sweeps, not a closed form: the
  fit is stopped, not converged, where nucleus and cytoplasm overlap, and parity needs the
  same stop);
* masked percentiles by a sort (numpy's ``linear`` method), masked maxima, and the shape of
  a channel of its own (:func:`~ctcnet.inference.guard.shapes.own_structure`) in
  float64 as numpy computes it.

:class:`FusionHead` is :func:`ctcnet.inference.marker_fusion.fused_proba` (standardise,
linear, softmax) in float64 on the network's probabilities and those measurements.

What stays outside the graph: the columns that compare a crop with others (the DNA content
and focus references of the leukocytes of a frame or sample), the nucleus count (a shape
analysis by h-domes), and the flags and calls built on them.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ctcnet.core.robust import (
    NORMAL_QUANTILES,
    Q_HIGH,
    Q_LOW,
    percentile_indices,
)
from ctcnet.errors import InputError
from ctcnet.inference.guard.leaks import COPY_MISMATCH, box_least_squares
from ctcnet.inference.guard.masks import box_with_margin, disk_core
from ctcnet.inference.guard.rules import CTC_DYE_ROLES, RULES, GuardRules
from ctcnet.inference.marker_fusion import LEAST_PROBA, MEASURES, check_fusion
from ctcnet.inference.spillover import CLIPPED_NOISE_SHARE, NOISE_FLOOR, SAMPLE_STEP
from ctcnet.io.marker_names import EXCLUSION_ROLES

log = logging.getLogger(__name__)

# The graph's measurement columns, in output order: what the fusion reads, then the band
# round the CK area an exclusion marker lights, CD45's brightest 3x3 mean in the disk (the
# guard's ``peak_<k>`` of the CD45 channel before its arcsinh, which the cartridge fusion's
# gate reads), the rest of the CD45 line (``GuardRules.cd45_positive``: CD45 over the cell's
# core where there is no CK area, the share of the area clipped at the camera's ceiling in
# CD45), then whether the flood fill was cut short.
COLUMNS = (*MEASURES, "partner_um2", "cd45_peak", "cd45_over_cell", "cd45_at_ceiling",
           "area_unfinished")
# The widest box of the disk a row of which packs into an int64's bits (the top one left
# clear: a step's shift to the left must not turn the sign).
MAX_PACKED_WIDTH = 62
# Leak fit sweeps: box_least_squares's default, read from its signature so the two stay one.
SWEEPS = box_least_squares.__defaults__[0]


def flood_steps_for(pixel_size_um: float, rules: GuardRules = RULES) -> int:
    """Dilations the CK area's flood fill takes by default: the disk's diameter in pixels and
    a half more (a path from the centre's half-radius core round a concave edge)."""
    return int(np.ceil(3.0 * rules.radius_um / pixel_size_um)) + 2


class MarkerGraph(nn.Module):
    """Raw (N, C, S, S) counts -> (N, len(COLUMNS)) float32 guard measurements (noise units;
    ``ck_area`` in pixels, ``partner_um2`` in um^2), the values of
    :func:`ctcnet.inference.guard.measure` for the same crops, panel, pixel size and rules."""

    def __init__(self, panel, crop_size: int, pixel_size_um: float, rules: GuardRules = RULES,
                 flood_steps: int | None = None):
        super().__init__()
        self.rules, self.pixel_size_um = rules, float(pixel_size_um)
        s = int(crop_size)
        self.crop_size = s
        self.flood_steps = int(flood_steps or flood_steps_for(pixel_size_um, rules))
        radius_px = rules.radius_um / pixel_size_um
        full_disk = disk_core(s, s, radius_px)
        (self.y0, self.y1), (self.x0, self.x1) = box_with_margin(full_disk, 1)
        box = (slice(self.y0, self.y1), slice(self.x0, self.x1))
        disk = full_disk[box]
        self.h, self.w = disk.shape
        if self.w > MAX_PACKED_WIDTH:  # (a traceback, where a lab's fine-pixel model met it)
            raise InputError(f"the markers' graph reads the guard's {2 * rules.radius_um:g} um "
                             f"disk as rows of at most {MAX_PACKED_WIDTH} px; at "
                             f"{pixel_size_um:g} um/px it is {self.w} px wide: export this "
                             "model without --markers (ctcnet predict reads its markers "
                             "in numpy)")
        # A row of a mask as the bits of one int64: the flood fill's steps then touch a
        # fortieth of the values they would as a pixel plane.
        self.register_buffer("bits", torch.tensor([1 << i for i in range(self.w)],
                                                  dtype=torch.int64), persistent=False)

        def plane(mask):
            return torch.from_numpy(np.ascontiguousarray(mask, np.float32))[None]

        self.register_buffer("disk", plane(disk), persistent=False)
        self.register_buffer("core_half", plane(disk_core(s, s, 0.5 * radius_px)[box]),
                             persistent=False)
        self.register_buffer("off_disk", torch.from_numpy(~disk.reshape(-1))[None],
                             persistent=False)
        self.register_buffer("high", torch.from_numpy(panel.saturation_levels)
                             .view(1, -1, 1, 1), persistent=False)
        roles = panel.roles()
        self.ck, self.dna, self.cd45 = (panel.index_of_role(r)
                                        for r in ("epithelial", "nucleus", "leukocyte"))
        self.exclusion = panel.indices_of_roles(EXCLUSION_ROLES)
        self.own = panel.indices_of_roles(CTC_DYE_ROLES)
        self.others = [i for i in range(len(roles)) if i != self.cd45]
        # Each channel's leak allowance (the panel's known leaks raise it), fixed in the graph.
        self.caps = [rules.leak_cap(panel, i) for i in range(len(roles))]
        self.min_area_px = rules.copy_min_area_um2 / pixel_size_um ** 2
        self.grow = {name: max(1, int(round(um / pixel_size_um))) for name, um in
                     (("around", rules.around_ck_um), ("reach", rules.partner_reach_um),
                      ("gap", rules.partner_gap_um))}

    # -- the steps -------------------------------------------------------------------------
    def background(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, C) background and noise: ``spillover.robust_background``."""
        n, c = x.shape[:2]
        sample = x[:, :, ::SAMPLE_STEP, ::SAMPLE_STEP].reshape(n, c, -1)
        m = sample.shape[-1]
        i_low, i_high = percentile_indices(m, (Q_LOW, Q_HIGH), "nearest")
        lowest = torch.topk(sample, i_high + 1, dim=-1, largest=False, sorted=False)[0]
        q_high = lowest.amax(dim=-1)
        q_low = torch.topk(lowest, i_low + 1, dim=-1, largest=False, sorted=False)[0] \
            .amax(dim=-1)
        # A background clipped to black: the noise of a share of the crop's brightest channel
        # (numpy's linear 99th percentile, in float64 as numpy reads it).
        virtual = (m - 1) * 0.99
        below = int(np.floor(virtual))
        gamma = virtual - below
        top = torch.topk(sample, m - below, dim=-1, largest=True, sorted=True)[0].double()
        a, b = top[..., m - 1 - below], top[..., max(m - 2 - below, 0)]
        p99 = a + (b - a) * gamma if gamma < 0.5 else b - (b - a) * (1 - gamma)
        bright = p99.float() - q_high
        share = CLIPPED_NOISE_SHARE * bright.amax(dim=1, keepdim=True)
        clipped = q_high <= sample.amin(dim=-1)
        floor = torch.where(clipped, torch.clamp(share, min=NOISE_FLOOR),
                            torch.full_like(q_high, NOISE_FLOOR))
        z_low, z_high = NORMAL_QUANTILES[Q_LOW], NORMAL_QUANTILES[Q_HIGH]
        noise = torch.maximum((q_high - q_low) / (z_high - z_low), floor)
        return q_high - z_high * noise, noise

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        """(N, len(COLUMNS)) measurements of raw counts."""
        x = raw.float()
        n = x.shape[0]
        nan = torch.full((n,), float("nan"), dtype=torch.float32, device=x.device)
        out = dict.fromkeys(COLUMNS, nan)
        if self.ck is None:
            return torch.stack([out[c] for c in COLUMNS], dim=1)
        background, noise = self.background(x)
        box = x[:, :, self.y0:self.y1, self.x0:self.x1]
        signal = mean3x3(box - background[:, :, None, None])
        z = signal / noise[:, :, None, None]
        disk = self.disk > 0
        clipped = (box >= self.high).float().amax(dim=1, keepdim=True)
        # Grown by a pixel (the 3x3 filter): any saturated pixel of the 3x3 neighbourhood.
        clipped = square_dilation(clipped)[:, 0] > 0
        ck_z = torch.where(disk, z[:, self.ck], -torch.inf)
        centre = torch.where(self.core_half > 0, ck_z, -torch.inf)
        peak_centre = centre.flatten(1).amax(dim=1)
        level = torch.clamp(0.25 * peak_centre, min=self.rules.area_level)[:, None, None]
        mask = ck_z > level
        area, unfinished = self.central_component(mask, centre)
        ck_area = area.flatten(1).sum(dim=1).float()
        has_area = ck_area > 0
        out["ck_peak"] = ck_z.flatten(1).amax(dim=1)
        if self.cd45 is not None:
            out["cd45_peak"] = torch.where(disk, z[:, self.cd45], -torch.inf).flatten(1) \
                .amax(dim=1)
        out["ck_area"] = ck_area
        out["area_unfinished"] = unfinished.float()
        usable = area & ~clipped
        std = (box - background[:, :, None, None]) / noise[:, :, None, None]
        if self.dna is not None:
            dna_z = torch.where(area, z[:, self.dna], -torch.inf).flatten(1).amax(dim=1)
            out["dna_in_ck"] = torch.where(has_area, dna_z, torch.zeros_like(dna_z))
            clipped_share = (area & clipped).flatten(1).sum(dim=1).double() / \
                torch.clamp(ck_area, min=1.0).double()
            comparable = (ck_area >= self.min_area_px) & \
                (clipped_share <= self.rules.max_clipped_share)
            _, dna_own = own_structure(std[:, self.dna], std[:, self.ck], usable)
            out["dna_own_structure"] = torch.where(comparable, dna_own, nan)
            out["ck_own_structure"] = own_structure(std[:, self.ck], std[:, self.dna],
                                                    usable)[1]
        else:
            comparable = torch.zeros_like(has_area)
        # The box's pixels, those off the disk read as clipped: left out of every leak fit
        # and reading as numpy's, which takes the disk's pixels out (a Gather of them cost
        # more in onnxruntime than the fits themselves).
        flat_signal = signal.flatten(2)                                # (N, C, h * w)
        flat_clipped = clipped.flatten(1) | self.off_disk              # (N, h * w)
        flat_area = area.flatten(1)
        fits = {}

        def excess(targets, sources, caps):
            key = (tuple(targets), tuple(sources))
            if key not in fits:
                fits[key] = marker_excess(flat_signal, noise, flat_clipped, targets, sources,
                                          caps)
            return fits[key]

        # CD45's leak cap, once for the CD45 columns and those round CK (as numpy reads it).
        cd45_cap = self.cd45_leak_cap(std, usable, comparable) if self.cd45 is not None \
            else None
        if self.cd45 is not None:
            (cd45_excess,) = excess([self.cd45], self.others, [cd45_cap])
            out["cd45_core"], out["cd45_over_ck"] = over_area(
                cd45_excess, flat_clipped, flat_area, has_area)
            out["cd45_over_cell"], out["cd45_at_ceiling"] = self.cd45_over_cell(
                cd45_excess, box, area, flat_clipped, has_area)
        if self.exclusion:
            out["exclusion_around_ck"], out["partner_um2"] = self.around(
                excess, area, flat_clipped, has_area, cd45_cap)
        return torch.stack([out[c] for c in COLUMNS], dim=1)

    def central_component(self, mask: torch.Tensor, score: torch.Tensor
                          ) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, h, w) the connected part of ``mask`` holding its best-scoring central pixel
        (``masks.central_component``), and (N,) whether the fill still grew at its last
        step."""
        best = torch.where(mask, score, -torch.inf).flatten(1).argmax(dim=1)
        cells = torch.arange(self.h * self.w, device=mask.device)
        seed = (cells[None] == best[:, None]).view(mask.shape) & mask
        allowed = pack(mask, self.bits)
        region = before = pack(seed, self.bits)
        for _ in range(self.flood_steps):
            before = region
            region = torch.bitwise_and(packed_cross(region), allowed)
        unfinished = (region != before).long().sum(dim=1) > 0  # no ReduceMax of bool in ONNX
        return unpack(region, self.bits), unfinished

    def cd45_over_cell(self, cd45_excess, box, area, flat_clipped, has_area):
        """``cd45_over_cell`` (CD45's upper quartile over the half-radius core where there is
        no CK area, NaN elsewhere) and ``cd45_at_ceiling`` (the share of the CK area, or of
        that core, where CD45's counts reach its channel's ceiling): ``_cd45_columns``."""
        core = self.core_half[0] > 0                                   # (h, w)
        everywhere = torch.ones_like(has_area)
        cell = over_area(cd45_excess, flat_clipped, core.flatten()[None].expand_as(flat_clipped),
                         everywhere)[1]
        bare = ~has_area
        over_cell = torch.where(bare, cell, torch.full_like(cell, float("nan")))
        # (by logic, not Where: onnxruntime has no Where kernel of booleans)
        read = ((bare[:, None, None] & core[None]) | (has_area[:, None, None] & area)).flatten(1)
        at_top = (box[:, self.cd45] >= self.high[0, self.cd45]).flatten(1)
        share = (at_top & read).sum(dim=1).float() / \
            torch.clamp(read.sum(dim=1).float(), min=1.0)
        return over_cell, share

    def cd45_leak_cap(self, std, usable, comparable):
        """``_Batch.cd45_leak_caps``: CD45's ``leak_cap``, or ``copy_leak`` where CD45 over the CK
        area is no more than a copy of CK (a display export's CK shown in its CD45 plane)."""
        rules, cap = self.rules, self.caps[self.cd45]
        if rules.copy_leak <= cap or self.ck is None:
            return torch.full_like(comparable, cap, dtype=torch.float32)
        share, structure = own_structure(std[:, self.cd45], std[:, self.ck], usable)
        copies = comparable & (share <= rules.copy_leak) & \
            (structure < rules.cd45_copy_structure)
        return torch.where(copies, torch.full_like(share, rules.copy_leak),
                           torch.full_like(share, cap)).float()

    def around(self, excess, area, flat_clipped, has_area, cd45_cap):
        """``exclusion_around_ck`` and ``partner_um2`` (``around.around_columns``);
        ``cd45_cap``: :meth:`cd45_leak_cap`'s, for the CD45 channel among the markers."""
        rules = self.rules
        # One chain of 4-neighbour steps gives each growth on its way.
        region, done, grown = pack(area, self.bits), 0, {}
        for name, steps in sorted(self.grow.items(), key=lambda item: item[1]):
            for _ in range(steps - done):
                region = packed_cross(region)
            done = steps
            grown[name] = unpack(region, self.bits).flatten(1)
        band = grown["reach"] & ~grown["gap"]
        readable = band & ~flat_clipped & has_area[:, None]
        caps = [cd45_cap if i == self.cd45 else
                torch.full_like(has_area, self.caps[i], dtype=torch.float32)
                for i in self.exclusion]
        worst = torch.full(has_area.shape, -torch.inf, device=has_area.device)
        lit = torch.zeros_like(readable)
        for marker in excess(self.exclusion, self.own, caps):
            worst = torch.maximum(worst, over_area(marker, flat_clipped, grown["around"],
                                                   has_area)[1])
            lit = lit | (readable & (marker > rules.cd45_level))
        return worst, lit.float().sum(dim=1) * self.pixel_size_um ** 2


# -- graph pieces ---------------------------------------------------------------------------

def mean3x3(images: torch.Tensor) -> torch.Tensor:
    """``spillover.mean3x3``: the 3x3 mean with mirrored edges (a one-pixel mirror is the edge
    pixel repeated), summed in numpy's order (rows of three, then three of those)."""
    shape = images.shape
    flat = images.reshape(-1, 1, *shape[-2:])
    p = F.pad(flat, (1, 1, 1, 1), mode="replicate")
    rows = p[:, :, :-2] + p[:, :, 1:-1] + p[:, :, 2:]
    total = rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:]
    return (total / 9.0).reshape(shape)


def mean3x3_double(images: torch.Tensor) -> torch.Tensor:
    """:func:`mean3x3` of (N, h, w) float64 images by slices (no Pad kernel of that type is
    needed)."""
    p = torch.cat([images[:, :1], images, images[:, -1:]], dim=1)
    p = torch.cat([p[:, :, :1], p, p[:, :, -1:]], dim=2)
    rows = p[:, :-2] + p[:, 1:-1] + p[:, 2:]
    return (rows[:, :, :-2] + rows[:, :, 1:-1] + rows[:, :, 2:]) / 9.0


def square_dilation(region: torch.Tensor) -> torch.Tensor:
    """(N, 1, h, w) 0/1 region grown by one 8-neighbour step (a 3x3 maximum), separably."""
    p = F.pad(region, (1, 1, 1, 1))
    rows = torch.maximum(torch.maximum(p[:, :, :-2], p[:, :, 1:-1]), p[:, :, 2:])
    return torch.maximum(torch.maximum(rows[..., :-2], rows[..., 1:-1]), rows[..., 2:])


def pack(mask: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """(N, h, w) bool -> (N, h) int64, pixel j of a row as bit j."""
    return (mask.long() * bits).sum(dim=-1)


def unpack(rows: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """:func:`pack` undone: (N, h) int64 -> (N, h, w) bool."""
    return torch.bitwise_and(rows[..., None], bits) != 0


def packed_cross(rows: torch.Tensor) -> torch.Tensor:
    """(N, h) packed rows grown by one 4-neighbour step (``masks.grown``'s step, within the
    crop's box: a bit shifted past the row's width is cut off by the mask it is ANDed with,
    or by :func:`unpack`). The left shift as a multiplication by 2; the right shift as a
    shift (ONNX BitShift: a truncating division by 2 is exported through float32, which
    drops the bits past the 24th)."""
    zero = torch.zeros_like(rows[:, :1])
    sideways = torch.bitwise_or(rows * 2, torch.bitwise_right_shift(rows, 1))
    up_down = torch.bitwise_or(torch.cat([zero, rows[:, :-1]], dim=1),
                               torch.cat([rows[:, 1:], zero], dim=1))
    return torch.bitwise_or(torch.bitwise_or(rows, sideways), up_down)


def own_structure(target: torch.Tensor, source: torch.Tensor, mask: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """``shapes.own_structure`` (share of the best copy of ``source`` and the
    structure left of ``target``), in float64 as numpy computes it; structure NaN where the
    mask is empty."""
    t = torch.where(mask, target, 0.0).double()
    s = torch.where(mask, source, 0.0).double()
    share = torch.clamp((s * t).sum(dim=(1, 2)) /
                        torch.clamp((s * s).sum(dim=(1, 2)), min=1e-12), min=0.0)
    residual = target.double() - share[:, None, None] * source.double()
    count = mask.sum(dim=(1, 2)).double()
    per = torch.clamp(count, min=1.0)
    zero = torch.zeros_like(residual)
    raw = (torch.where(mask, residual, zero) ** 2).sum(dim=(1, 2)) / per
    smooth = (torch.where(mask, mean3x3_double(residual), zero) ** 2).sum(dim=(1, 2)) / per
    noise = torch.clamp((raw - smooth) * 9.0 / 8.0, min=1e-6)
    structure = (smooth - noise / 9.0) / noise
    return share, torch.where(count > 0, structure, torch.nan).float()


def marker_excess(signal, noise, clipped, targets, sources, caps) -> list[torch.Tensor]:
    """``leaks.marker_excess`` over the pixels not ``clipped``: (N, C, P) signal, (N, C)
    noise, (N, P) clipped; one (N, P) excess per target, each fitted with its (N,) cap."""
    if not sources:
        return [signal[:, t] / noise[:, t, None] for t in targets]
    usable = (~clipped).float()
    leaking = signal[:, sources] * usable[:, None]                       # (N, K, P)
    k = len(sources)
    gram = leaking @ leaking.transpose(1, 2)
    trace = sum(gram[:, i, i] for i in range(k))
    # numpy adds the ridge in float64 and casts the sum back to the gram's float32.
    eye = torch.eye(k, dtype=torch.float64, device=signal.device)
    gram = (gram.double() + (1e-6 * trace).double()[:, None, None] * eye + 1e-6).float()
    out = []
    for t, cap in zip(targets, caps):
        wanted = signal[:, t] * usable
        rhs = (leaking @ wanted[:, :, None])[:, :, 0]
        shares = box_shares(gram, rhs, cap)
        copy = (shares[:, None] @ leaking)[:, 0]
        residual = wanted - copy
        # leaks.beyond_mismatch: what an imperfect copy of the leak can leave either way.
        slack = COPY_MISMATCH * copy.abs()
        residual = torch.sign(residual) * torch.clamp(residual.abs() - slack, min=0.0)
        out.append(residual / noise[:, t, None])
    return out


def box_shares(gram: torch.Tensor, rhs: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """``leaks.box_least_squares`` with low 0: the same cyclic coordinate descent, step for
    step (``SWEEPS`` sweeps)."""
    k = rhs.shape[1]
    diag = [torch.clamp(gram[:, i, i], min=1e-12) for i in range(k)]
    share = [torch.minimum(torch.clamp(rhs[:, i] / diag[i], min=0.0), high) for i in range(k)]
    for _ in range(SWEEPS):
        for i in range(k):
            rest = sum(gram[:, i, j] * share[j] for j in range(k))
            rest = (rhs[:, i] - (rest - gram[:, i, i] * share[i])) / diag[i]
            share[i] = torch.minimum(torch.clamp(rest, min=0.0), high)
    return torch.stack(share, dim=1)


def over_area(excess, clipped, area, has_area) -> tuple[torch.Tensor, torch.Tensor]:
    """``around.over_area``: median and upper quartile (numpy's linear method) of the
    excess over the unclipped area; 0 without a CK area, NaN where it is all clipped."""
    inside = area & ~clipped & has_area[:, None]
    ranked = torch.sort(torch.where(inside, excess, torch.inf), dim=1).values
    count = inside.sum(dim=1)
    last = torch.clamp(count - 1, min=0)
    quantiles = []
    for q in (50, 75):
        pos = last.double() * (q / 100)
        lo = torch.floor(pos)
        hi = torch.minimum(lo + 1, last.double())
        a = ranked.gather(1, lo.long()[:, None])[:, 0].double()
        b = ranked.gather(1, hi.long()[:, None])[:, 0].double()
        t = pos - lo
        diff = b - a
        value = torch.where(t >= 0.5, b - diff * (1 - t), a + diff * t)
        value = torch.where(count > 0, value, torch.nan).float()
        quantiles.append(torch.where(has_area, value, torch.zeros_like(value)))
    return quantiles[0], quantiles[1]


class FusionHead(nn.Module):
    """``marker_fusion.fused_proba`` (float64): (N, K) probabilities and the graph's
    measurements -> (N, K) fused probabilities (float32)."""

    def __init__(self, fusion: dict, class_names):
        super().__init__()
        check_fusion(fusion, class_names)
        for name in ("mean", "scale", "weights", "bias"):
            self.register_buffer(name, torch.tensor(fusion[name], dtype=torch.float64),
                                 persistent=False)
        self.columns = [COLUMNS.index(m) for m in MEASURES]

    def forward(self, proba: torch.Tensor, measured: torch.Tensor) -> torch.Tensor:
        """Fused (N, K) probabilities of the network's and the (N, M) measurements."""
        parts = [torch.log(torch.clamp(proba.double(), LEAST_PROBA, 1.0))]
        for i in self.columns:
            value = measured[:, i].double()
            missing = ~torch.isfinite(value)
            parts += [_asinh(torch.where(missing, 0.0, value))[:, None],
                      missing.double()[:, None]]
        x = (torch.cat(parts, dim=1) - self.mean) / self.scale
        return torch.softmax(x @ self.weights.T + self.bias, dim=1).float()


def _asinh(x: torch.Tensor) -> torch.Tensor:
    """asinh as sign(x) log(|x| + sqrt(x^2 + 1)): onnxruntime has no float64 Asinh kernel
    (float64 within 1e-15 of numpy's arcsinh over the measurements' range)."""
    magnitude = x.abs()
    return torch.log(magnitude + torch.sqrt(magnitude * magnitude + 1.0)) * torch.sign(x)

