"""A run's HTML page (``index.html``): the summary, the counts (the model's tally, the
reviewed counts and the sign-off beside them, the same keys the review page shows), skipped
frames, the gallery pages and timings; and summary.json written back with it as the review
server saves decisions.
"""

from __future__ import annotations

import html
import math
import re
import time
from pathlib import Path

from ctcnet.core.json_text import strict_json
from ctcnet.core.printable import unmeasured_text
from ctcnet.core.provenance import software_text
from ctcnet.inference.counts import Counts
from ctcnet.inference.result_state import (
    RESEARCH_USE,
    automatic_figures,
    channel_order_doubt,
    figures_text,
    result_state,
    signoff_holds,
)
from ctcnet.inference.summary import RunSummary
from ctcnet.io.atomic import atomic_path, atomic_write_text
from ctcnet.report.colours import overlay_legend
from ctcnet.report.counts_table import counts_table
from ctcnet.report.page_frame import PAGE_END, page_start
from ctcnet.report.reasons import counted_words, review_list_text
from ctcnet.review.signoff_words import changes_text, signoff_text


def html_table(rows: list[tuple[str, object]]) -> str:
    """Rows of (heading, value) as an HTML table, both escaped."""
    cells = "".join(f'<tr><th scope="row">{html.escape(str(k))}</th>'
                    f"<td>{html.escape(str(v))}</td></tr>"
                    for k, v in rows)
    return f"<table>{cells}</table>"


def page_images(pages: list[dict], name: str) -> str:
    """Gallery pages (``path``, ``width``) as images, shown at twice their pixel size (crops
    are small), never wider than the window; each links to itself, to see it whole. Its
    text (a screen reader's) names the events it shows, top to bottom, where the page's
    record has them, and the captions drawn into it follow as a list, folded."""
    return "".join(f'<p><a href="{html.escape(p["path"])}"><img src="'
                   f'{html.escape(p["path"])}" style="width: min(100%, {2 * p["width"]}px)" '
                   f'alt="{html.escape(_page_text(p, name, i))}"></a></p>'
                   + _captions_list(p, name, i)
                   for i, p in enumerate(pages, 1))


def _page_text(page: dict, name: str, number: int) -> str:
    """A gallery page in words: ``ctc page 1: events #12, #40 (...)``."""
    ids = page.get("event_ids") or []
    if not ids:
        return f"{name} page {number}"
    where = ("their captions in words below the image" if page.get("captions") else
             "each one's call, reasons and markers: events.csv, or the review page's list")
    return (f"{name} page {number}: events " + ", ".join(f"#{i}" for i in ids) +
            f", top to bottom ({where})")


def _captions_list(page: dict, name: str, number: int) -> str:
    """The captions drawn into a gallery page, as text (a page recorded before they were
    kept has none)."""
    captions = page.get("captions") or []
    if not captions:
        return ""
    items = "".join(f"<li>{html.escape(c)}</li>" for c in captions)
    # Folded on a screen; on paper a folded list prints its summary alone, so it is printed
    # open (a record's PDF held the line "its captions in words" and none of them).
    return (f'<details class="screen-only"><summary>{html.escape(name)} page {number}: its '
            f"captions in words</summary><ol>{items}</ol></details>"
            f'<div class="print-only"><p>{html.escape(name)} page {number}, its captions in '
            f"words:</p><ol>{items}</ol></div>")


# Says on the page whether every image loaded (and tells a headless browser in data-*).


def gallery_note(gallery: dict, tally: Counts, category: str) -> str:
    """The line under a gallery's heading: its events (shown of how many), and for a class
    whose calls the guard held some of, how many of them are counted."""
    note = (f"{gallery['shown']} of {gallery['total']} shown"
            if gallery["shown"] < gallery["total"] else f"{gallery['total']} event(s)")
    if tally.held.get(category):  # the gallery's calls are more than the class's count
        note += (f": {tally.counted.get(category, 0)} counted, {tally.held[category]} held by "
                 "the guard (not counted)")
    return note


def compensation_text(spillover: dict | None) -> str:
    """Whether ``--compensate`` took CK's leak off the crops before the model, and how much:
    it moves the calls and counts, and the page a person signs must say so."""
    if not spillover:
        return "off (the crops as scanned)"
    leaks = ", ".join(f"{k} {v:.1%}" for k, v in (spillover.get("leaks") or {}).items())
    return (f"on (--compensate): {spillover.get('source', 'CK')}'s leak taken off the crops "
            f"before the model ({leaks or 'none measured'}; measured on "
            f"{spillover.get('ck_events', '?')} {spillover.get('source', 'CK')}-bright events): "
            "counts differ from a run without it")


def _prior_text(prior: str | None) -> str:
    """The class prior a cartridge's calls were made at, in words."""
    if prior in (None, "cartridge"):
        return "cartridge prevalence (the model's decision rule)"
    if prior == "balanced":
        return ("the model's training prior (balanced; a model without a decision rule for "
                "cartridges calls far more CTCs than a cartridge holds: "
                "scripts/fit_decision.py fits one)")
    return f"the stated prior {prior}"


def _border_text(s) -> str:
    """The events the frame border cuts: how they are filed and how many are shown for it."""
    if not s.edge_cut:
        return "0"
    shown = (s.review_list or {}).get("by_reason", {}).get("counted_class_cut_by_border", 0)
    filed = f"filed as {s.edge_cut_as}: only whole cells count" if s.edge_cut_as else \
        "kept as called"
    return f"{s.edge_cut} ({filed}" + (f"; {shown} {counted_words(s.tally.reported)} among "
                                       "them shown for review" if shown else "") + ")"


def display_note(panel: dict, crop_px: int | None = None,
                 model_um: float | None = None) -> str:
    """How to read a gallery tile, the overlay's colours named for this run's panel, and the
    tile's field (``crop_px`` pixels at the model's ``model_um``): the report names the scan's
    pixel size elsewhere, which is not the tiles'."""
    from ctcnet.io.panel import Panel

    read = Panel.from_dict(panel)
    legend = overlay_legend(read.names, read.roles())
    field = (f"each tile {crop_px} px at the model's {model_um:g} um/px, {crop_px * model_um:.0f}"
             " um across whatever the scan's pixel size; " if crop_px and model_um else "")
    return (f"<p>Gallery tiles: {field}each channel on one scale for the whole sample (black: its "
            "background; white: a high percentile of its cells; logarithmic above a few noise "
            "units), so a dim marker looks dim yet visible; "
            "above each channel its mean over the object (m) and its peak (pk) in noise units; "
            f"the last panel overlays the nucleus, the CTC marker and CD45 in colour "
            f"({html.escape(legend)}); the ticks on "
            "every panel mark the event's centre, the dotted box its object, the hatch what "
            "lies past the frame's border.<span class=\"screen-only\"> A page is drawn here "
            "at twice its size; click it to open its file (zoom the browser in to read it "
            "larger).</span></p>")


def partners_html(partners: dict | None) -> str:
    """The counted clusters by the partners their markers read (``data-partners``), or ''."""
    if not partners:
        return ""
    text = ", ".join(f"{k} {v}" for k, v in sorted(partners.items(), key=lambda kv: -kv[1]))
    return (f'<p id="cluster-partners"><b>Counted clusters by partner</b> (what the markers '
            f"read attached to the CTC, on the automatic count's cluster calls; a cluster a "
            f"review confirms, relabels or takes out is not reread here): "
            f"{html.escape(text)}</p>")


def unread_markers_html(unread: dict | None) -> str:
    """The scan's planes the model does not read: per plane the counted CTCs above the
    sample's leukocytes (``summary.json``'s ``unread_markers``), or ''."""
    if not unread:
        return ""
    parts = []
    for name, r in unread["planes"].items():
        leak, past = r.get("ck_leak"), r.get("ck_leak_past_allowance")
        reviewed = (unread.get("after_review") or {}).get(name) or {}
        parts.append(f"{name}: {r['counted_ctcs_above']} of {r['counted_ctcs']} counted CTCs"
                     f"{unmeasured_text(r)} above {r['above_level']:g} (the {r['leukocytes']} "
                     f"leukocytes' median {r['leukocyte_median']:g}, sd {r['leukocyte_sd']:g})"
                     + (f", CK's leak into it {leak:.1%} on the CTCs" if leak is not None else "")
                     + (": PAST THE ALLOWANCE, a leak of CK the figure cannot tell from the "
                        "marker, or the marker on most CTCs" if past else "")
                     + (f"; after review {reviewed['counted_ctcs_above']} of "
                        f"{reviewed['counted_ctcs']}" if reviewed.get("counted_ctcs_above")
                        is not None else "")
                     if r["above_level"] is not None else
                     f"{name}: {r['leukocytes']} leukocytes, too few for a reference")
    return (f'<p id="unread-markers"><b>Planes the model does not read</b> (each event\'s '
            f"mean over its object in them: events.csv, mean_&lt;plane&gt;; of the automatic "
            f"count's CTC calls, and of those counted after a review where one was made; above: "
            f"{html.escape(unread['rule'].split(';')[0])}): "
            f"{html.escape('; '.join(parts))}</p>")


def _utc(seconds: float | None) -> str:
    """When the counts were made, in UTC with its zone named (n/a: not recorded)."""
    if seconds is None:
        return "n/a"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))


def text_html(text: str) -> str:
    """A line written for the console and summary.json as a page shows it: escaped, a
    command in backticks (`ctcnet review`) set as code, not shown with its backticks."""
    return re.sub(r"`([^`<>]+)`", r"<code>\1</code>", html.escape(text))


def state_html(state: dict) -> str:
    """The result's headline (``result_state``) and the research-use line, first on the page
    (``data-state``), so a reader sees whether a number may be read before reading it."""
    css = "state-" + state["state"].replace(" ", "-")
    return (f'<p id="result-state" class="state {css}" data-state="'
            f'{html.escape(state["state"])}">{text_html(state["text"])}</p>'
            f'<p class="ruo" id="research-use">{html.escape(RESEARCH_USE)}</p>')


def automatic_figures_html(summary: RunSummary, state: dict, signed: bool = False) -> str:
    """Before a sign-off, the automatic counts with their intervals just under the headline
    (``automatic-figures``): a printed page 1 ended above the counts table; '' once signed off
    (``signed``: a partial sample's too, whose state stays partial: the headline gives the
    figures to report) or for a failed sample (no count)."""
    if signed or state["state"] in ("signed off", "failed"):
        return ""
    text = figures_text(automatic_figures(summary.to_dict()))
    return (f'<p id="automatic-figures"><b>Automatic counts</b> (not signed off; per class '
            f"below): {html.escape(text)}</p>" if text else "")


def reviewed_galleries_html(record: dict | None, so_far: dict | None = None) -> str:
    """Above the galleries, what the review changed of the calls they show: a signed-off
    sample's (the record's ``changed``), else the decisions' so far (``so_far``, under review
    or its sign-off no longer holding): a gallery showed a call a person rejected as a
    counted one, beside a headline giving the count after review."""
    holds = bool(record) and signoff_holds({"signoff": record})
    changed = record.get("changed") if holds else so_far
    if not changed:
        return ""
    whose = "the signed-off review" if holds else "the review so far (" + (
        "its sign-off no longer holds" if record else "not signed off") + ")"
    return ('<p id="reviewed-galleries"><b>The galleries show the calls as predict made '
            f"them;</b> {whose} changed {html.escape(changes_text(changed, shown=1000))}.</p>")


def signoff_html(record: dict | None) -> str:
    """The sign-off line under the counts (``data-signoff``: its status, or ``none``)."""
    status = "none" if record is None else record.get("status", "current")
    return (f'<p id="signoff" data-signoff="{html.escape(status)}"><b>Sign-off:</b> '
            f"{html.escape(signoff_text(record))}</p>")


def write_html(out_dir: Path, summary: RunSummary, gallery_info: dict | None = None,
               signoff: dict | None = None, durable: bool = True,
               changed: dict | None = None) -> None:
    """index.html: summary, counts (the tally's, and the reviewed ones once there are
    decisions, with the sign-off: ``signoff``, a record of
    :func:`ctcnet.review.signoff.signoff_record`, shown once there are decisions), skipped
    frames, timings and the gallery pages (``gallery_info``: the summary's own by
    default; ``changed``: what the decisions so far changed of their calls, where the review
    is not signed off). ``durable``: fsync'd before it is renamed into place."""
    s = summary
    gallery_info = (s.gallery or {}) if gallery_info is None else gallery_info
    frames = s.frames
    status = [("status", s.status)]
    status += [("events not classified (non-finite output)", s.failed_events)] \
        if s.failed_events else []
    volume = s.volume_read_ml
    # The lab's own record of the scan (cartridge.json's keys ctcnet does not read: a draw
    # date, a site, an operator), as a signed report names them.
    lab = [(str(k), str(v)) for k, v in (s.cartridge_info or {}).items()]
    simulated = " (simulated: a ground truth lies beside its frames)" if s.ground_truth else ""
    overview = [("sample", s.sample_id + simulated), *lab, *status, ("input", s.input),
                ("events", s.events),
                ("sent to review", review_list_text(s.review_list, s.tally.review_events,
                                                    s.tally.reported)),
                ("cut by the frame border", _border_text(s)),
                ("blood volume read", "n/a (no frame processed)" if not volume else
                 f"{volume:.3g} mL of {s.blood_volume_ml:.3g} mL"
                 + (" (assumed: cartridge.json states none)"
                    if s.blood_volume_stated is False else "")),
                ("frames processed", f"{frames.processed} of {frames.total + frames.missing}"
                 + (f" ({frames.missing} missing from the scan folder)" if frames.missing
                    else "")),
                ("frames skipped", frames.skipped),
                ("counted at", _utc(s.counted_at)),
                # By its name first (a record names the model, not a path on one machine).
                ("model", (f"{Path(s.model.path).stem}: {s.model.path} " if s.model.path
                           else "a model given in memory ")
                 + f"({s.model.arch}, its spec written by ctcnet {s.model.version}"
                 # (whole: a printed record alone proves which file and network made the
                 # calls; 16 digits matched a summary, not a model)
                 + (f", file SHA-256 {s.model.sha256}" if s.model.sha256 else "")
                 + (f", network SHA-256 {s.network_sha256}" if s.network_sha256 else "") + ")"
                 + _made_by_text(s.frames_made_by)),
                ("calls made at", _prior_text(s.model.prior)),
                ("spillover compensation", compensation_text(s.spillover)),
                ("software", software_text(s.software, s.ctcnet_version)),
                ("backend / device", f"{s.backend} / {s.device}"),
                ("panel", ", ".join(c["name"] for c in s.panel["channels"])
                 + f" at {s.panel['pixel_size_um']} um/px" + _unread_channels(s)),
                *([("counted as", _counted_as(s.counted_as))] if s.counted_as else [])]
    truth = s.ground_truth or {}
    if "detection" in truth:  # a simulated cartridge: how detection and calls compare
        det = truth["detection"]
        overview += [("detection recall (simulated truth)",
                      _share_or_none(det["recall"], "no true event in the frames read")),
                     ("detection precision",
                      _share_or_none(det["precision"], "no event detected")),
                     ("true counts", ", ".join(f"{k} {v}" for k, v in
                                                 truth["true_counts"].items()))]
    timings = [(k, f"{v:.2f} s") for k, v in s.timings_s.items()]
    skipped = "".join(f"<li><b>{html.escape(x['frame'])}</b>: {html.escape(x['reason'])}</li>"
                      for x in s.skipped_frames)
    problems = "".join(f"<li>{text_html(p)}</li>" for p in s.problems)
    sections = []
    for cat, g in gallery_info.items():
        note = gallery_note(g, s.tally, cat)
        images = page_images(g["pages"], cat)
        title = "uncertain events (review)" if cat == "review" else f"{cat} calls"
        if cat == "review" and s.tally.reported:
            # "sent to review" above counts every call; the reported ones have their galleries.
            note += (f"; sent to review and not called "
                     f"{html.escape(' or '.join(s.tally.reported))} (those are in their own "
                     "galleries)")
        # (an empty gallery starts no printed page: a negative's record was blank pages)
        sections.append(f'<section class="gallery{"" if images else " empty"}"><h2>'
                        f"{html.escape(title)}</h2><p>{note}</p>"
                        f"{images or '<p>none</p>'}</section>")
    state = result_state({**s.to_dict(), "signoff": signoff})
    page = f"""{page_start(s.sample_id)}
{state_html(state)}
{automatic_figures_html(s, state, signoff_holds({"signoff": signoff}))}
{html_table(overview)}
<h2>Counts</h2>
{counts_table(s.tally, s.reviewed, no_result=s.status == "failed",
              signed=signoff_holds({"signoff": signoff}),
              order_in_doubt=channel_order_doubt({"problems": s.problems}))}
{partners_html(s.clusters_by_partner)}
{unread_markers_html(s.unread_markers)}
{signoff_html(signoff) if s.reviewed is not None or signoff is not None else ''}
<p class="screen-only">Tables: <a href="events.csv">events.csv</a>,
<a href="events.parquet">events.parquet</a>, <a href="summary.json">summary.json</a></p>
{f'<h2>Skipped frames</h2><ul>{skipped}</ul>' if skipped else ''}
{f'<h2>Problems found in the scan folder</h2><ul>{problems}</ul>' if problems else ''}
{display_note(s.panel, s.model.crop_size, s.model.pixel_size_um) if sections else ''}
{reviewed_galleries_html(signoff, changed) if sections else ''}
{''.join(sections)}
<div class="screen-only"><h2>Timings</h2>{html_table(timings)}</div>
{PAGE_END}"""
    if durable:
        atomic_write_text(out_dir / "index.html", page)
    else:  # rewritten as decisions are saved: renamed into place, see write_summary_and_page
        with atomic_path(out_dir / "index.html") as tmp:
            tmp.write_text(page, encoding="utf-8")


def _made_by_text(made: dict | None) -> str:
    """``; its frames' calls made by: onnx, ctcnet 0.1.0 (6e2f77d275be) 3 frames`` where a
    resumed run's frames were made by another backend or ctcnet (``frames_made_by``)."""
    if not made:
        return ""
    return "; its frames' calls made by: " + "; ".join(f"{who} {n} frame(s)"
                                                        for who, n in made.items())


def _share_or_none(value, why_none: str) -> str:
    """A share to three places, or what leaves it without one (null or NaN: nothing to
    divide by)."""
    return f"{value:.3f}" if value is not None and math.isfinite(value) else f"n/a ({why_none})"


def _unread_channels(s: RunSummary) -> str:
    """`` (the scan's EpCAM, Vimentin not read by this model)`` where the scan's files hold
    channels the model does not read (the run's plane order), else ``""``."""
    order = (s.run_fingerprint or {}).get("plane_order") or {}
    file, read = order.get("file") or [], set(order.get("read") or [])
    unread = [name for i, name in enumerate(file) if i not in read]
    return f" (the scan's {', '.join(unread)} not read by this model)" if unread else ""


def _counted_as(counted_as: dict) -> str:
    """What the counts include, in a line: each reported class's definition, then whether a
    cell without CK is counted (:func:`ctcnet.inference.run_summary.count_definition`)."""
    classes = "; ".join(f"{name}: {text.rstrip('.')}" if text else
                        f"{name} (no description in the model's taxonomy)"
                        for name, text in (counted_as.get("classes") or {}).items())
    note = " ".join(counted_as.get(key) or "" for key in ("unguarded_planes", "ck_negative",
                                                          "not_guarded", "not_reported")).strip()
    return f"{classes}. {note}".strip() if classes else note


def write_summary_and_page(out_dir: str | Path, summary: RunSummary,
                           signoff: dict | None = None, changed: dict | None = None) -> None:
    """summary.json and, where the run wrote one, index.html again from ``summary`` (the review
    server, as decisions are saved), with the sample's sign-off (``signoff``:
    :func:`ctcnet.review.signoff.signoff_record`'s) under ``"signoff"`` beside the counts
    (``changed``: the decisions' changes of the calls, said above the galleries):
    the page first, so a summary.json newer than the events table means a finished write.
    A page whose gallery the summary does not list (written before summaries recorded it) is
    left as it is rather than rewritten without it."""
    out_dir = Path(out_dir)
    if (out_dir / "index.html").exists() and summary.gallery is not None:
        write_html(out_dir, summary, signoff=signoff, durable=False, changed=changed)
    data = summary.to_dict()
    if signoff is not None:  # RunSummary leaves keys it does not know alone on reading
        data["signoff"] = signoff
        data["result_state"] = result_state(data)
    # Renamed into place, not fsync'd: review.csv (fsync'd per decision) is the record, and
    # these are made from it again at the next decision or server start.
    with atomic_path(out_dir / "summary.json") as tmp:
        tmp.write_text(strict_json(data, indent=2) + "\n", encoding="utf-8")
