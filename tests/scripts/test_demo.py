"""``./run demo``'s closing table: drawn against counted, held and sent to review, each drawn
CTC's and cluster's fate, and how to open the review page."""

import re
from pathlib import Path

from conftest import load_script


def test_demo_shows_what_was_counted_held_and_sent_to_review(tmp_path, capsys):
    demo = load_script(Path(__file__).resolve().parents[2] / "scripts" / "demo.py")
    assert demo.main(["--frames", "1", "--events-per-frame", "300", "--out",
                      str(tmp_path)]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if "drawn" in line and "counted" in line)
    assert header.split() == ["class", "drawn", "calls:", "counted", "held", "listed"]
    fates = {kind: next((line for line in out.splitlines() if f"drawn {kind}:" in line), None)
             for kind in ("CTCs", "clusters")}
    assert fates["CTCs"] is not None
    for kind, fate in fates.items():
        if fate is None:  # a cartridge the simulator drew no cluster in
            continue
        drawn = int(fate.split(f"drawn {kind}:")[1].split(";")[0])
        # The counted ones on the review list are said among the counted, not beside them.
        among = re.search(r"\((\d+) of them on the review list\)", fate)
        told = [int(part.split()[-1])
                for part in re.sub(r" \(.*?\)", "", fate.split(";")[1]).split(",")]
        assert drawn > 0 and sum(told) == drawn  # every one accounted for, once
        assert among is not None and int(among.group(1)) <= told[0]
    results = next(p.parent for p in (tmp_path / "results").glob("*/summary.json"))
    assert f"ctcnet review {results}" in out


def test_the_demo_runs_again_over_results_an_earlier_version_left(tmp_path, capsys):
    """A second ``./run demo`` after an upgrade classifies anew: the results folder is the
    demo's own, and predict would refuse to add to a run made with other settings."""
    import json

    demo = load_script(Path(__file__).resolve().parents[2] / "scripts" / "demo.py")
    args = ["--frames", "1", "--events-per-frame", "300", "--out", str(tmp_path)]
    assert demo.main(args) == 0
    manifest = next((tmp_path / "results").glob("*/parts/run.json"))
    record = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**record, "guard": {"an": "earlier version's"}}))
    capsys.readouterr()
    assert demo.main(args) == 0
    assert "reusing the demo cartridge" in capsys.readouterr().out
    assert json.loads(manifest.read_text()) == record
