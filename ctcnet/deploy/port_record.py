"""What predict does beside the graph that a port of the ONNX file must do as well, as the
file's ``cropping`` metadata says it (docs/deploying.md says it in prose): where an event's
centre lies, how its crop is cut, filled and resized from a frame (or fitted from a crop
folder's crop), how an event the frame border cuts is filed, and where the decision rule
applies, and what it does with a background subtracted and clipped at 0; and, for a model that
reads composite exports, how predict reads such a composite before the graph (the
``composite_input`` metadata). Built from the constants predict works with, so it cannot
drift."""

from __future__ import annotations

from ctcnet.detect.clipped_background import CLIPPED_SHARES
from ctcnet.detect.cropping import cropping_contract
from ctcnet.detect.detection import DetectConfig
from ctcnet.inference.options import PredictOptions
from ctcnet.io import annotations


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


def composite_record() -> dict:
    """How predict reads an 8-bit colour composite export (a crop folder whose panel.json says
    ``"composite": "rgb"``) before a model that reads exports sees it (the
    ``composite_input`` key): the planes named by the export, the levels as they are, and what
    is turned, refused or filled first."""
    white, spread = annotations.WHITE_LEVEL, annotations.NEUTRAL_SPREAD
    return {
        "planes": "the R, G, B planes carry the markers panel.json names in that order (the "
                  "export's own colours, e.g. CK red, CD45 green, DAPI blue); each is given "
                  "to the model channel of that name (metadata channels), never by position",
        "values": "the planes' 8-bit levels 0-255 cast to float32, not rescaled (the "
                  "normalisation inside the graph reads each crop's own background)",
        "orientation": "an EXIF orientation (1-8) is applied first, as "
                       "PIL.ImageOps.exif_transpose does",
        "alpha": "an alpha plane is dropped",
        "sixteen_bit_png": "a 16-bit colour PNG whose levels are all multiples of 257 is read "
                           "as levels // 257; other 16-bit colour files are refused",
        "marks": f"a light frame at the crop's edges (planes at least "
                 f"{annotations.FRAME_LEVEL}, within {spread} of each other, on "
                 f"{annotations.FRAME_FILL:g} of an edge line) is filled from the pixels "
                 f"inside it, then burnt-in scale bars (every plane at least {white}, within "
                 f"{spread}) and their labels are filled from the pixels round them "
                 f"(ctcnet.io.annotations.without_marks), before anything reads the crop: "
                 f"each pixel of a mark takes the planes of the nearest pixel that is none "
                 f"(Euclidean distance, the indices scipy.ndimage.distance_transform_edt "
                 f"returns)",
        "resize": "then as cropping.crop_folder, from the crop's stated pixel size",
    }
