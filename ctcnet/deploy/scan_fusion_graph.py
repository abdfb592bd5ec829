"""The cartridge marker fusion (:mod:`ctcnet.inference.scan_fusion`) as torch graph ops, so that
an ONNX export with the markers gives instrument software the posterior ``ctcnet predict``
reads on a cartridge's events: the review band's (the shipped default model's fusion) or the
calls' (a fusion whose ``role`` is ``calls``).

:class:`ScanFusionHead` reads the network's probabilities and the marker graph's measurements
(:class:`~ctcnet.deploy.marker_graph.MarkerGraph`) of the same crops and does what
:func:`~ctcnet.inference.scan_fusion.apply_scan_fusion` does per event:

* the measurements as predict makes them on a cartridge (:meth:`ScanFusionHead.as_predict_reads`);
* where the fusion applies (:func:`~ctcnet.inference.scan_fusion.fusion_rows`, its gate): a
  counted class holds ``counted_p`` of the network's probability, or the markers read as a
  CTC's (CK's peak, DAPI inside the CK area, CD45's peak no more than a leak of CK);
* there, the fused posterior (:class:`~ctcnet.deploy.marker_graph.FusionHead`, float64);
  elsewhere the network's probabilities;
* then the CellSearch line: on those rows, CD45 positive by the guard's line
  (``GuardRules.cd45_positive``: over the CK area, over the cell's core without one, or clipped
  at the camera's ceiling) leaves no CTC probability.

Predict measures in numpy only the rows its gate picks; the graph measures every crop, and
the gate picks the same rows (its columns agree with numpy's up to float rounding, so a value
within rounding of a gate's level may fall the other way). What the graph cannot read is the
frame's registration (the median move between CK and DAPI over a frame's events, by which
predict moves the copy before it reads DAPI's and CK's shapes of their own): on a frame in
register it is none, and the two agree; on planes out of register they need not.
"""

from __future__ import annotations

import torch
from torch import nn

from ctcnet.deploy.marker_graph import COLUMNS, FusionHead
from ctcnet.inference.guard.rules import RULES, GuardRules
from ctcnet.inference.scan_fusion import DEFAULT_GATE
from ctcnet.nn.calls import COUNTED_CLASSES


class ScanFusionHead(nn.Module):
    """(N, K) probabilities and (N, len(COLUMNS)) measurements -> (N, K) float32: the
    cartridge fusion's posterior where its gate applies, the network's elsewhere, no CTC
    probability over the CD45 line."""

    def __init__(self, fusion: dict, class_names, panel, rules: GuardRules = RULES):
        super().__init__()
        names = list(class_names)
        self.fused = FusionHead(fusion, names)
        self.gate = {**DEFAULT_GATE, **(fusion.get("gate") or {})}
        self.counted = [names.index(c) for c in COUNTED_CLASSES if c in names]
        self.ctc = names.index("ctc") if "ctc" in names else None
        self.has_cd45 = panel.index_of_role("leukocyte") is not None
        self.rules, self.dna_level = rules, float(rules.dna_level)
        self.column = {c: COLUMNS.index(c) for c in
                       ("ck_peak", "dna_in_ck", "dna_own_structure", "cd45_peak")}

    def rows(self, proba: torch.Tensor, measured: torch.Tensor) -> torch.Tensor:
        """(N,) bool: the fusion applies (``scan_fusion.fusion_rows``; NaN compares false,
        as in numpy)."""
        gate, col = self.gate, self.column
        rows = proba[:, self.counted].sum(dim=1) >= gate["counted_p"] if self.counted else \
            torch.zeros(proba.shape[0], dtype=torch.bool, device=proba.device)
        ck_peak = measured[:, col["ck_peak"]]
        markers = (ck_peak >= gate["ck_peak"]) & \
            (measured[:, col["dna_in_ck"]] >= gate["dna_in_ck"])
        if self.has_cd45:
            markers = markers & (measured[:, col["cd45_peak"]] <=
                                 gate["cd45_peak_share"] * ck_peak + gate["cd45_peak_floor"])
        return (rows | markers) & torch.isfinite(proba).all(dim=1)

    def as_predict_reads(self, measured: torch.Tensor) -> torch.Tensor:
        """The measurements as predict reads a cartridge's events
        (:func:`~ctcnet.inference.guard.measure_for_guard`), which the fusion was fitted on:
        DAPI's shape of its own only where DAPI inside the CK area reaches the guard's DNA
        level (NaN elsewhere, read as missing). On the demo cartridge the fused posterior of
        57 of 3,544 events was up to 0.08 off predict's without this."""
        own = torch.arange(measured.shape[1], device=measured.device) == \
            self.column["dna_own_structure"]
        low_dna = ~(measured[:, self.column["dna_in_ck"]] >= self.dna_level)  # NaN: low
        return torch.where(own[None] & low_dna[:, None], torch.nan, measured)

    def forward(self, proba: torch.Tensor, measured: torch.Tensor) -> torch.Tensor:
        """The posterior a cartridge's rule or review band reads, per crop."""
        measured = self.as_predict_reads(measured)
        rows = self.rows(proba, measured)
        out = torch.where(rows[:, None], self.fused(proba, measured), proba.float())
        if self.ctc is None:
            return out
        # The guard's CD45 line (NaN, not read, compares false: nothing taken).
        positive = rows & self.rules.cd45_positive(
            lambda name: measured[:, COLUMNS.index(name)])
        is_ctc = torch.arange(out.shape[1], device=out.device) == self.ctc
        zeros = torch.zeros_like(out)
        out = torch.where(positive[:, None] & is_ctc[None], zeros, out)
        # A row the markers gave to CTC alone (the rest underflowed): the network's other
        # classes, failing those all alike, as predict's fuse; a row of zeros is called ctc.
        for fallback in (proba.float(), torch.ones_like(out)):
            empty = positive & (out.sum(dim=1) <= 0)
            out = torch.where(empty[:, None], torch.where(is_ctc[None], zeros, fallback), out)
        total = out.sum(dim=1, keepdim=True)
        return torch.where(positive[:, None] & (total > 0), out / total, out)
