"""ctcnet.inference.options: what predict says of a model before it runs."""


def test_a_reported_class_beside_ctc_and_cluster_is_said_to_be_unguarded(caplog):
    """A lab's taxonomy reporting ctc_emt: predict says that its calls are counted, listed
    and queued for their doubt, but their markers not checked by the guard; the shipped ones
    say nothing."""
    from ctcnet.inference.options import say_what_other_reported_classes_lack
    from ctcnet.io.taxonomy import load_taxonomy
    from ctcnet.nn.classifier import load_model
    from ctcnet.nn.registry import get_model

    spec = load_model(get_model("ctcnet-core3").checkpoint)[1]
    with caplog.at_level("WARNING"):
        assert say_what_other_reported_classes_lack(spec) == []
    assert not caplog.text
    emt = spec.replace(taxonomy=load_taxonomy({
        "classes": ["ctc", "ctc_emt", "wbc", "cluster", "debris"],
        "reported": ["ctc", "ctc_emt", "cluster"]}))
    with caplog.at_level("WARNING"):
        assert say_what_other_reported_classes_lack(emt) == ["ctc_emt"]
    assert "the marker guard does not check their markers" in caplog.text
    assert '"checked_as": "ctc"' in caplog.text  # how to have it checked
    # The same class including the simulator's ctc_dim, or saying it, is checked as a CTC:
    # nothing to warn of.
    caplog.clear()
    for entry in ({"name": "ctc_emt", "includes": ["ctc_dim"]},
                  {"name": "ctc_emt", "checked_as": "ctc"}):
        checked = spec.replace(taxonomy=load_taxonomy({
            "classes": ["ctc", entry, "wbc", "cluster", "debris"],
            "reported": ["ctc", "ctc_emt", "cluster"]}))
        with caplog.at_level("WARNING"):
            assert say_what_other_reported_classes_lack(checked) == []
    assert not caplog.text


def test_a_model_of_exports_given_a_cartridge_is_said_to_read_exports_only(caplog):
    """The export model chosen by --model for a scan runs (a person may mean to compare), but
    says that its calls on a cartridge are not what it was trained and measured on; the scan
    models say nothing."""
    from ctcnet.inference.options import say_if_a_model_of_exports_reads_scans
    from ctcnet.nn.classifier import load_model
    from ctcnet.nn.registry import get_model

    for name, warned in (("ctcnet-core3-export", True), ("ctcnet-core3", False)):
        caplog.clear()
        spec = load_model(get_model(name).checkpoint)[1]
        with caplog.at_level("WARNING"):
            assert say_if_a_model_of_exports_reads_scans(spec) is warned
        assert ("reads 8-bit composite exports only" in caplog.text) is warned


def test_options_a_notebook_gets_wrong_are_refused_not_read_as_something_else():
    """A string where a switch belongs ("no" is true: compensation turned on), a class name
    typed otherwise than the model's (the border rule turned off: cut cells counted), an
    unknown frame pool (a ValueError as the run started): each changed counts or failed
    late, unsaid."""
    import pytest

    from ctcnet.errors import InputError
    from ctcnet.inference.options import PredictOptions, edge_cut_class
    from ctcnet.io.taxonomy import Taxonomy
    from ctcnet.nn.classifier import load_model
    from ctcnet.nn.registry import get_model

    for given, said in (({"compensate": "no"}, "compensate is True, False or None"),
                        ({"marker_calls": "no"}, "marker_calls is True or False"),
                        ({"edge_cut_as": 0}, "edge_cut_as is a class name or None"),
                        ({"frame_pool": "bogus"}, "frame_pool is one of auto, threads, "
                                                  "processes"),
                        ({"pixel_size": 50.0}, "pixel_size: 50.0 um per pixel is not a "
                                               "plausible"),
                        ({"pixel_size": "Auto"}, "pixel_size: expected a number of um"),
                        # (failed at the report, once a whole cartridge had run)
                        ({"report": "html"}, "report is a RunReport"),
                        ({"report": True}, "report is a RunReport"),
                        ({"on_frame_done": "log"}, "on_frame_done is a function or None")):
        with pytest.raises(InputError, match=said):
            PredictOptions(**given)
    spec = load_model(get_model("ctcnet-default").checkpoint)[1]
    with pytest.raises(InputError, match="edge_cut_as 'Debris' is none of the model's classes"):
        edge_cut_class(spec, PredictOptions(edge_cut_as="Debris"))
    assert edge_cut_class(spec, PredictOptions()) == "debris"
    assert edge_cut_class(spec, PredictOptions(edge_cut_as=None)) is None
    no_debris = spec.replace(taxonomy=Taxonomy.from_dict({"classes": ["ctc", "wbc",
                                                                     "cluster"]}))
    assert edge_cut_class(no_debris, PredictOptions()) is None  # the default, not refused
    for fine in (0.5, "auto", "fit", None):
        assert PredictOptions(pixel_size=fine).pixel_size == fine
    from ctcnet.report import run_report

    assert PredictOptions(report=run_report).report is run_report
    assert PredictOptions(report=False).report is None  # (a crop folder's end read False's)


def test_a_pixel_size_given_for_a_cartridge_is_said_unused_once(caplog):
    """From Python the size went unused without a word (the command line said so)."""
    import logging

    from ctcnet.core.said_once import forget_said
    from ctcnet.inference.options import PredictOptions, check_cartridge_options
    from ctcnet.nn.classifier import load_model
    from ctcnet.nn.registry import get_model

    spec = load_model(get_model("ctcnet-default").checkpoint)[1]
    forget_said()
    with caplog.at_level(logging.WARNING):
        check_cartridge_options(spec, PredictOptions())
        assert "is for crop folders" not in caplog.text
        check_cartridge_options(spec, PredictOptions(pixel_size=0.5))
        check_cartridge_options(spec, PredictOptions(pixel_size=0.5))
    assert caplog.text.count("is for crop folders") == 1
