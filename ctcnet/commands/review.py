"""``ctcnet review``: confirm, reject or relabel a run's candidates in the browser.

Serves a predict ``--out`` folder on 127.0.0.1 (see :mod:`ctcnet.review_server.server`) and opens
the review page. Decisions go to ``RESULTS/<sample>/review.csv`` at once, keyed by run and event
position (they survive predict running again) and under a file lock (several servers or
people on one folder lose nothing), and summary.json's ``reviewed`` counts and index.html
are brought up to date with them; ``ctcnet crops RESULTS --reviewed`` turns them into
training crops.
"""

from __future__ import annotations

import argparse
import contextlib

from ctcnet.errors import InputError

HELP = ("Review a run's candidates in the browser: confirm, reject or relabel, each decision "
        "saved at once (<sample>/review.csv), with summary.json's reviewed counts and "
        "index.html brought up to date.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``ctcnet review`` to its subparser."""
    parser.add_argument("results", metavar="RESULTS",
                        help="a ctcnet predict --out folder (or one sample's folder in it)")
    parser.add_argument("--port", type=int, default=8765,
                        help="port on 127.0.0.1 (default 8765; 0 picks a free one)")
    parser.add_argument("--no-browser", action="store_true",
                        help="only print the address; do not open a browser")
    parser.add_argument("--reviewer", default=None,
                        help="name recorded with each decision (default: the login name; "
                             "the page can change it)")
    parser.add_argument("--scans", default=None,
                        help="where the scans are now, if they moved since predict (tiles "
                             "not in the gallery are cut from the original frames): the "
                             "cartridge, or for several samples the folder holding their "
                             "cartridges")
    parser.add_argument("--palette", choices=("cellsearch", "colourblind"),
                        default="cellsearch",
                        help="the overlay panel's colours: cellsearch (CK green, CD45 red: one "
                             "yellow to a red-green colour-blind eye) or colourblind (CK "
                             "orange, CD45 cyan, DAPI blue); colourblind cuts every tile from "
                             "the frames (the gallery's are drawn in cellsearch)")
    parser.add_argument("--no-saliency", action="store_true",
                        help="never a saliency row on tiles cut from the frames (by default "
                             "the page's s key asks for one, and the model is loaded then)")


def run(args: argparse.Namespace) -> int:
    """Run ``ctcnet review``: serve the review page on 127.0.0.1 until interrupted; returns the
    exit status."""
    import webbrowser

    # the library: imported when the command runs (see ctcnet.commands)
    from ctcnet.core.run_log import run_log
    from ctcnet.review_server import access
    from ctcnet.review_server.server import make_server, server_url

    if not 0 <= args.port <= 65535:
        raise InputError(f"--port {args.port} is not a port number")
    token = access.new_token()
    with run_log(args.results, "review") as log, \
            _log_kept_from_first_write(log, args.results) as keep_log:
        server = make_server(args.results, args.port, args.reviewer, not args.no_saliency,
                             args.scans, palette=args.palette, token=token)
        server.app.on_write = keep_log
        url = f"{server_url(server)}?{access.TOKEN_QUERY}={token}"
        print(f"ctcnet review: serving {args.results} at {url} (Ctrl-C stops; the address "
              "admits its page alone: keep it to yourself)", flush=True)
        opening = None if args.no_browser else access.opening_page(url)
        if opening is not None:
            webbrowser.open(opening.as_uri())
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            try:  # (the decisions being saved finish first: a second Ctrl-C ends the wait)
                server.server_close()
            finally:
                if opening is not None:
                    opening.unlink(missing_ok=True)
        print("ctcnet review: stopped; decisions are in each sample's review.csv")
        log.ended(0)
    return 0


@contextlib.contextmanager
def _log_kept_from_first_write(log, results):
    """The review's log file (``logs/review-*.log``: what ran, its warnings, who decided)
    begun by the first decision or sign-off saved, or a sample's first warning (a summary
    found edited and written again): a look at an archive writes nothing, and a folder that
    cannot be written is said once already."""
    import logging
    import os

    def opener() -> None:
        if not log.opened and os.access(results, os.W_OK):
            with log.lock:  # (request threads log beside it)
                log.open()

    class OpenOnWarning(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            # A sample's warnings are of what the server writes (a summary found edited,
            # written again); others (a folder left out, read-only media) write nothing.
            if record.name == "ctcnet.review_server.sample":
                opener()

    watcher = OpenOnWarning(logging.WARNING)
    logging.getLogger("ctcnet").addHandler(watcher)
    try:
        yield opener  # (for the server's first save)
    finally:
        logging.getLogger("ctcnet").removeHandler(watcher)
