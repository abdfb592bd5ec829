"""Review gallery tiles: channels side by side, overlay, and the per-channel saliency row."""

import numpy as np

from ctcnet.inference.backends import TorchBackend
from ctcnet.io.panel import default_panel
from ctcnet.io.taxonomy import default_taxonomy
from ctcnet.nn.spec import ModelSpec
from ctcnet.report.review import GAP, heat_colours, render_tiles


def test_tiles_gain_a_saliency_row(rng):
    panel = default_panel()
    crops = rng.normal(150, 5, (3, 5, 32, 32)).astype(np.float32)
    plain = render_tiles(crops, panel, scale=2)
    assert plain.shape == (3, 64, 6 * (64 + GAP), 3)
    saliency = np.zeros((3, 5, 32, 32), np.float32)
    saliency[:, 1, 10:20, 10:20] = 1.0  # the CK channel drove the call
    tiles = render_tiles(crops, panel, scale=2, saliency=saliency)
    assert tiles.shape == (3, 2 * 64 + 2 * GAP, 6 * (64 + GAP), 3)
    heat_row = tiles[:, 64 + 2 * GAP:]
    ck_cell = heat_row[:, 30:32, (64 + GAP) + 30]        # inside the salient square, CK column
    dapi_cell = heat_row[:, 30:32, 30]                   # same place, DAPI column: dark
    assert ck_cell.min() > 200 and dapi_cell.max() < 10
    assert np.array_equal(heat_colours(np.array([0.0, 1.0])), [[0, 0, 0], [1, 1, 1]])


def test_torch_backend_explains_calls(tmp_path, rng, tiny_model_file):
    tiny_model_file(tmp_path / "m.pt", crop_size=32, width=8)
    explain = TorchBackend(tmp_path / "m.pt", device="cpu").explainer()
    crops = rng.normal(150, 5, (4, 5, 32, 32)).astype(np.float32)
    crops[:, 1, 12:20, 12:20] += 300
    maps = explain(crops, [0, 1, 2, 3])
    assert maps.shape == crops.shape and np.isfinite(maps).all()
    assert maps.min() >= 0 and maps.max() <= 1


def test_gallery_rows_keep_each_category_so_no_class_crowds_out_another():
    import pandas as pd

    from ctcnet.inference.gallery import gallery_categories, gallery_rows
    from ctcnet.io.panel import default_panel

    spec = ModelSpec("compact", default_panel(), default_taxonomy())
    # Many confident clusters, one CTC, two uncertain leukocytes, one sure leukocyte.
    events = pd.DataFrame({"class": ["cluster"] * 6 + ["ctc", "wbc", "wbc", "wbc"],
                           "confidence": [0.99] * 6 + [0.95, 0.5, 0.4, 0.99],
                           "review": [False] * 7 + [True, True, False]},
                          index=range(100, 110))
    rows = gallery_rows(events, spec, per_category=2)
    assert sorted(rows.tolist()) == [0, 1, 6, 7, 8]  # 2 clusters, the CTC, both reviews
    assert list(gallery_categories(events, spec)) == ["ctc", "cluster", "review"]
