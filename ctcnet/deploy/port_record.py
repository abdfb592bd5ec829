"""What predict does beside the graph that a port of the ONNX file must do as well, as the
file's ``cropping`` metadata says it (docs/deploying.md says it in prose): where an event's
centre lies, how its crop is cut, filled and resized from a frame (or fitted from a crop
folder's crop), how an event the frame border cuts is filed, and where the decision rule
applies, and what it does with a background subtracted and clipped at 0. Built from the
constants predict works with, so it cannot drift."""

from __future__ import annotations

from ctcnet.detect.clipped_background import CLIPPED_SHARES
from ctcnet.detect.cropping import cropping_contract
from ctcnet.detect.detection import DetectConfig
from ctcnet.inference.options import PredictOptions


def cropping_record() -> dict:
    """How predict makes the crops the graph reads from a scan's frames (the ``cropping``
    key): the event's centre as detection gives it, then the window, fill and resize."""
    config = DetectConfig()
    low, high = (round(100 * share) for share in CLIPPED_SHARES)
    return {"centre": f"the object's centroid weighted by the detection image on the frame "
                      f"binned f x f, f = max(1, round({config.work_pixel_um} / scanner_um)), "
                      f"as x = (cx + 0.5) * f - 0.5 (likewise y), in frame pixels whose "
                      f"centres lie on integers",
            **cropping_contract(),
            # What predict decides beside the graph, which a port counting as predict does
            # needs (said in docs/deploying.md too).
            "edge_cut": f"an event whose object has a border pixel of the frame at "
                        f"{config.edge_fraction:g} or more of its peak in the detection image "
                        f"is cut by the border: predict files it as "
                        f"{PredictOptions.edge_cut_as!r} whatever the graph says (summary.json "
                        f"edge_cut_as; --keep-edge-calls keeps the graph's call), and shows it "
                        f"to a person where the graph calls a reported class or finds one the "
                        f"likeliest before the prior (on scan_fused_probabilities where the "
                        f"file has them): review reason counted_class_cut_by_border",
            "clipped_background": f"a frame or crop channel {low}-{high} % of whose pixels (every "
                                  f"second one) are exactly 0 had its background subtracted "
                                  f"and clipped: predict draws those pixels again as a "
                                  f"Gaussian background's lower half, at the level and noise "
                                  f"the pixels over 0 show (ctcnet.detect.clipped_background), "
                                  f"before anything reads it; a camera's counts never meet it",
            "decision_applies": "ctcnet_spec's decision (log weights, review band) is the "
                                "cartridge's: a crop folder is called at the balanced prior, "
                                "the most probable class"}
