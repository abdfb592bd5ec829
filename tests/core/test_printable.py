"""Names from outside shown on a console or in a log: no terminal control reaches either."""

import logging

from ctcnet.core.printable import PrintableFormatter, printable


def test_control_and_bidi_characters_are_escaped_line_breaks_kept():
    assert printable("r00c00\x1b[2J\x1b[31m.tif") == "r00c00\\x1b[2J\\x1b[31m.tif"
    assert printable("gpj.\u202eexe") == "gpj.\\u202eexe"
    assert printable("two\nlines\tand a tab") == "two\nlines\tand a tab"
    assert printable("Müller-Ünal 017") == "Müller-Ünal 017"


def test_a_logged_file_name_reaches_the_console_escaped():
    record = logging.LogRecord("ctcnet.io", logging.WARNING, __file__, 1,
                               "%s: not read", ("frame\x1b]0;owned\x07.tif",), None)
    line = PrintableFormatter("%(levelname)s %(name)s: %(message)s").format(record)
    assert "\x1b" not in line and "\x07" not in line
    assert line == "WARNING ctcnet.io: frame\\x1b]0;owned\\x07.tif: not read"


def test_a_file_names_bytes_that_are_not_utf8_are_written_as_those_bytes():
    import os

    from ctcnet.core.printable import printable

    name = os.fsdecode(b"cart\xe9 \xff")  # as Python reads such a name: lone surrogates
    assert printable(name) == "cart\\xe9 \\xff"
    printable(name).encode("utf-8")  # a UTF-8 log file or terminal takes it
    assert printable("carté") == "carté"


def test_a_name_with_a_line_break_is_one_line_in_a_message():
    """A folder named line1<LF>line2<TAB>tab split a warning and the run's log line in two."""
    from ctcnet.core.printable import printable_name
    from ctcnet.errors import InputError

    assert printable_name("line1\nline2\ttab\x1b") == "line1\\nline2\\ttab\\x1b"
    said = str(InputError("input not found", "/scans/line1\nline2"))
    assert said == "/scans/line1\\nline2: input not found" and "\n" not in said


def test_a_tables_text_cells_run_as_no_formula_in_its_csv():
    """A crop named =HYPERLINK(...).tif gave predictions.csv a formula a spreadsheet runs."""
    import pandas as pd

    from ctcnet.core.printable import spreadsheet_table

    table = pd.DataFrame({"path": ['=HYPERLINK("x").tif', "ctc/a.tif"],
                          "sample_id": ["@SUM(1+1)", "P1"], "p_ctc": [0.5, 0.25]})
    out = spreadsheet_table(table)
    assert out["path"].tolist() == ['\'=HYPERLINK("x").tif', "ctc/a.tif"]
    assert out["sample_id"].tolist() == ["'@SUM(1+1)", "P1"]
    assert out["p_ctc"].tolist() == [0.5, 0.25] and table["path"][0].startswith("=")


def test_an_iso_time_reads_as_every_page_gives_times():
    from ctcnet.core.printable import utc_text

    assert utc_text("2026-12-02T14:31:55+00:00") == "2026-12-02 14:31:55 UTC"
    assert utc_text("2026-12-02T15:31:55+01:00") == "2026-12-02 14:31:55 UTC"
    assert utc_text("2026-12-02T14:31:55Z") == "2026-12-02 14:31:55 UTC"
    assert utc_text("yesterday") == "yesterday" and utc_text(None) == "None"


def test_a_stated_share_keeps_the_decimals_it_was_stated_with():
    from ctcnet.core.printable import stated_percent

    assert [stated_percent(x) for x in (0.01, 0.95, 0.005, 0.995, 0.07, 1.0)] == \
        ["1%", "95%", "0.5%", "99.5%", "7%", "100%"]
