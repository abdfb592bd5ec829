"""A batch job's log (stderr no terminal) says how far a run is in plain lines."""

import io

from rich.console import Console

from ctcnet.inference.progress import PlainProgress, progress_bar, skipped_note


def test_a_log_file_gets_a_line_a_minute_and_one_as_the_task_ends():
    out = io.StringIO()
    now = [0.0]
    progress = PlainProgress(Console(file=out, width=200), every_s=60, clock=lambda: now[0])
    with progress:
        task = progress.add_task("S1", total=600, events=0)
        for frame in range(600):
            now[0] = frame * 0.5  # 300 s in all
            progress.update(task, advance=1, events=(frame + 1) * 900)
    lines = out.getvalue().splitlines()
    assert len(lines) == 5  # at 60, 120, 180, 240 s and as it ends (299.5 s)
    assert lines[0] == "S1: 121 of 600 (20 %), 108,900 events, 1 min 0 s"
    assert lines[-1].startswith("S1: 600 of 600 (100 %), 540,000 events")


def test_a_cartridge_line_says_its_skipped_frames():
    out = io.StringIO()
    progress = PlainProgress(Console(file=out, width=200), clock=lambda: 0.0)
    task = progress.add_task("S1", total=3, events=0, skipped_note="")
    progress.update(task, advance=2, events=500)
    progress.update(task, advance=1, skipped_note=skipped_note(1))
    assert out.getvalue().splitlines()[-1] == \
        "S1: 3 of 3 (100 %), 500 events, 1 frame skipped, 0 min 0 s"
    assert skipped_note(0) == "" and skipped_note(2) == ", 2 frames skipped"
    # Frames cartridge.json lists that are not there: "4 of 4 (100 %)" is not the whole scan.
    assert skipped_note(0, 1) == ", 1 listed frame missing"
    assert skipped_note(2, 3) == ", 2 frames skipped, 3 listed frames missing"


def test_a_terminal_gets_the_bar_and_a_file_the_lines(monkeypatch):
    from rich import console

    monkeypatch.setattr(console.Console, "is_terminal", property(lambda self: False))
    assert isinstance(progress_bar(10, False), PlainProgress)
    assert not isinstance(progress_bar(10, True), PlainProgress)  # quiet: the disabled bar


def test_a_log_file_gets_the_lines_when_the_environment_forces_colour(monkeypatch, capsys):
    """FORCE_COLOR (CI runners, container images) made rich take a log file for a terminal:
    the bar's redraws went into the log and the plain line was lost."""
    import sys

    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    progress = progress_bar(2, False, events=True)
    assert isinstance(progress, PlainProgress)
    with progress:
        task = progress.add_task("S1", total=2, events=0, new_note="", skipped_note="")
        progress.update(task, advance=2, events=7)
    err = capsys.readouterr().err
    assert "S1: 2 of 2 (100 %), 7 events" in err and "\x1b" not in err


def test_a_resumed_cartridge_counts_its_journal_frames_done():
    out = io.StringIO()
    progress = PlainProgress(Console(file=out, width=200), clock=lambda: 0.0)
    task = progress.add_task("S1", total=3, completed=2, events=0, new_note=" new",
                             skipped_note="")
    progress.update(task, advance=1, events=90)
    assert out.getvalue().splitlines()[-1] == "S1: 3 of 3 (100 %), 90 new events, 0 min 0 s"


def test_a_plain_progress_line_of_a_long_sample_id_is_one_line():
    """A 200-byte sample id on an 80-column console that is no terminal (a log file): one
    line, so grep finds the sample's line whole."""
    import io

    from rich.console import Console

    out = io.StringIO()
    progress = PlainProgress(Console(file=out, width=80), clock=lambda: 0.0)
    task = progress.add_task("Müller " + "ä" * 150, total=2)
    progress.update(task, advance=2)
    assert out.getvalue().count("\n") == 1 and "ä: 2 of 2 (100 %)" in out.getvalue()
