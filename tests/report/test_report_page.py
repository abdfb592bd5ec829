"""A run's index.html: what its display note says of the tiles."""


def test_the_report_names_the_overlays_colour_of_each_channel():
    from ctcnet.report.report_page import display_note

    note = display_note({"channels": ["CK", "CD45", "DAPI", "VIM"], "pixel_size_um": 0.64})
    assert "overlays them in colour (CK green, CD45 red, DAPI blue, VIM cyan)" in note
