"""``ctcnet review``'s web server: the interactive review page on 127.0.0.1.

The standard library's ``http.server`` is enough for a few reviewers on loopback: no framework,
no login (the socket is bound to 127.0.0.1 only). A framework (Starlette) was weighed: it
would need an ASGI server beside it (uvicorn) in the torch-free install, and the tile cutter's
dropping of requests whose page went away, the file locks and the stale-run checks would stay
as they are; the routing it would replace is the short table below. Routes:

* ``GET /`` lists the samples of the results folder (one sample: straight to its page);
* ``GET /review/<sample>`` the page (``review_page.html``, keyboard-first; ``?reading=second``
  for a second reader, blind to the first);
* ``GET /api/<sample>/state`` the run's id, candidates (each with the reasons it is on the
  list: :mod:`ctcnet.report.reasons`, and its markers' mean in noise units), their tiles,
  decisions so far, the counts (the model's tally beside the reviewed ones), the decisions
  that attach to no event of this run (``unattached``), the journal's ``stamp``, and for the
  first reading the sign-off and the agreement with a second reading; ``?reading=second``
  the second reading's own;
* ``GET /api/<sample>/state?since=STAMP`` what a page that has the journal as of ``STAMP``
  needs to catch up with decisions made elsewhere (another tab, another server): nothing
  (``"unchanged": true``) while the file is as it was, else every decision and the counts;
* ``GET /api/<sample>/agreement`` the two readings compared: Cohen's kappa and the
  disagreements, for adjudication (:mod:`ctcnet.review.agreement`), and the sign-off;
* ``POST /api/<sample>/decision`` ``{"event_id", "call", "reviewer", "run_id", "reading"}``,
  saved at once (``call``: ``confirm``, ``reject``, a class name, or ``undecided`` to take a
  decision back; ``event_id`` a JSON integer); see :mod:`ctcnet.review.decisions`. A decision
  of the first reading rewrites summary.json's ``reviewed`` counts and index.html; the answer
  carries the journal's stamps before and after it (``previous``, ``stamp``);
* ``POST /api/<sample>/decisions`` ``{"event_ids": [...], "call", ...}``: one call on up to
  500 events at once (the page's grid: a page of tiles of one call confirmed in one action);
* ``POST /api/<sample>/signoff`` ``{"reviewer", "run_id"}``: the sample signed off
  (:mod:`ctcnet.review.signoff`), written to summary.json and index.html;
* ``GET /api/<sample>/tile/<event_id>.png`` a tile cut from the original frame, for the
  events the gallery has no picture of (:mod:`ctcnet.review_server.sample_images`); ``?saliency=1``
  adds the saliency row (the model is loaded, and torch imported, only then);
* ``GET /api/<sample>/context/<event_id>.png`` the frame round the event, its crop outlined;
* ``GET /files/<sample>/<path>`` the sample's own files (gallery pages, index.html, tables);
  also under the token's key, ``/files/<key>/<sample>/<path>`` (:func:`access.files_prefix`),
  for the sandboxed report pages, which send no cookie.

A request that names the run it was made for (``run_id`` in a decision, ``?run=`` on tiles
and gallery pages: the page sends both) and names another one gets 409, ``"stale": true``;
while predict is writing, 503. Errors are JSON, ``{"error": ...}``; a malformed request gets
400. A tile request whose page went away while it waited is dropped, and a client that hangs
up is no error.

File requests are confined to the sample's folder: the path is decoded once, ``..`` segments
are refused, and the resolved file (symlinks followed) must lie inside the folder. A POST must
be JSON and the Host header must be a loopback name, so a web page elsewhere in the reviewer's
browser cannot post decisions or read results through this server (DNS rebinding).
"""

from __future__ import annotations

import gzip
import json
import logging
import mimetypes
import os
import re
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from ctcnet.core.printable import printable_name
from ctcnet.errors import CtcnetError, InputError, is_resource_error
from ctcnet.review.records_read import review_records_read
from ctcnet.review_server import access
from ctcnet.review_server.app import ReviewApp, UnknownSample
from ctcnet.review_server.request_gate import RequestGate, query_value
from ctcnet.review_server.requests import BadRequest, parse_json, parse_reading, saved_text
from ctcnet.review_server.sample_states import (
    READ_ONLY_ERRNOS,
    READ_ONLY_TEXT,
    ResultsBeingWritten,
    ResultsChanged,
    cannot_write_text,
)
from ctcnet.review_server.tiles import ClientGone, client_connected

log = logging.getLogger(__name__)

PAGE = Path(__file__).with_name("review_page.html")
MAX_BODY = 65536  # bytes: a grid page's 500 event ids fit many times over
GZIP_FROM_BYTES = 65536  # a JSON answer this long or longer goes compressed where asked
# POST /api/<sample>/<name>: the Sample method that answers it.
POSTS = {"decision": "decide", "decisions": "decide_many", "signoff": "sign_off"}


def run_of(query: str) -> str | None:
    """The ``run`` parameter of a request's query: the run the page was loaded for."""
    return query_value(query, "run")


def tile_route(rest: str) -> tuple[str, int] | None:
    """("tile" or "context", event id) of an address's ``<kind>/<id>.png``, else None."""
    kind, _, name = rest.partition("/")
    if kind not in ("tile", "context") or not name.endswith(".png"):
        return None
    number = name[:-len(".png")]
    if not number.isascii() or not number.isdigit():  # (int() reads "6_2" as 62, " 62" too)
        raise LookupError(rest)
    return kind, int(number)


def without_secrets(line: str) -> str:
    """A request line with what opens the server taken out: the token (a query's ``token``,
    its name percent-encoded or not) and the files' key (``/files/<key>/``), each ``...``: a
    service's captured stderr would keep them."""
    def query(match: re.Match) -> str:
        name = match.group(2)
        return match.group(1) + name + ("=..." if unquote(name).lower() == "token"
                                        else match.group(3))

    line = re.sub(r"([?&])([^=&\s\"]+)(=[^&\s\"]*)", query, line)
    return re.sub(r"(/files/)[0-9a-f]{16,}/", r"\1.../", line)


def inline_images(html: bytes, resolve) -> bytes:
    """A report page's ``<img src="...png">`` of its own folder as data URIs: served
    sandboxed (an origin of its own), its image requests are another site's to this server,
    which answers none of them ("3 of 3 images failed to load"); ``resolve`` maps a relative
    source to the file it names inside the sample's folder (None: not one, left as it is)."""
    import base64

    def inline(match: re.Match) -> bytes:
        target = resolve(unquote(match.group(2).decode("utf-8", "replace")))
        if target is None:
            return match.group(0)
        data = base64.b64encode(target.read_bytes())
        return match.group(1) + b"data:image/png;base64," + data + match.group(3)

    return re.sub(rb'(<img[^>]*?\ssrc=")([^":]+?\.png)(")', inline, html)


NOT_ADMITTED = ("this review server answers the page it opened (the address `ctcnet review` "
                "printed, with its ?token=), not other programs or accounts; a page of a "
                "server since restarted holds the old token, and a bookmark of a page "
                "without it none: open the address printed")


class ReviewHandler(RequestGate, BaseHTTPRequestHandler):
    """Answers the review page's requests (pages, tiles, JSON, decisions) from the server's app,
    on loopback host names only."""
    app: ReviewApp  # set on the subclass that make_server builds
    server_version = "ctcnet-review"

    # A connection that sends nothing (or a body shorter than it said) is let go after this
    # many seconds rather than hold its thread for good.
    timeout = 60

    def log_message(self, fmt, *args):  # the library logs; no lines on stderr per request
        """Send the request line to the debug log instead of stderr, control characters
        escaped (a request line cannot write on the reviewer's terminal)."""
        log.debug("%s %s", self.address_string(), printable_name(without_secrets(fmt % args)))

    def _send(self, status: int, body: bytes, content_type: str,
              sandboxed: bool = False, encoding: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if encoding:
            self.send_header("Content-Encoding", encoding)
            self.send_header("Vary", "Accept-Encoding")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        # Never inside another site's frame (a click there would be a decision here); a
        # results folder's own files run in an origin of their own, so a page planted there
        # cannot post decisions as the reviewer.
        self.send_header("X-Frame-Options", "DENY")
        # The session's path in no Referer (a report page served here, or any it links to,
        # would read it: with it, a page on another port is sent the cookie).
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Security-Policy", "frame-ancestors 'none'"
                         # (downloads allowed: the report's events.csv link is one, which a
                         # sandbox refuses without a word)
                         + ("; sandbox allow-scripts allow-popups allow-downloads"
                            if sandboxed else ""))
        self._cookie()
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data) -> None:
        body = json.dumps(data).encode("utf-8")
        if len(body) >= GZIP_FROM_BYTES and \
                "gzip" in self.headers.get("Accept-Encoding", "").lower():
            # A list of tens of thousands of candidates is megabytes of repeated words: a
            # sample of 26,000 sent 17 MB uncompressed.
            self._send(status, gzip.compress(body, compresslevel=5), "application/json",
                       encoding="gzip")
            return
        self._send(status, body, "application/json")

    def _error(self, status: HTTPStatus, message: str | None = None, **extra) -> None:
        """Every error is JSON, ``{"error": message}`` (and ``"stale": true`` when the page
        shows a run the folder no longer holds), so the page can say what went wrong."""
        self._json(status, {"error": message or status.phrase, **extra})

    def handle(self):
        """Handle one connection; a client that hung up is logged, not raised."""
        # A client that hangs up (a page moving on, a tab closed) is no error of the server.
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError) as err:
            log.debug("%s went away: %s", self.address_string(), err)

    def finish(self):
        """Flush and close the connection; a client that hung up is logged, not raised."""
        try:
            super().finish()
        except (BrokenPipeError, ConnectionResetError) as err:
            log.debug("%s went away: %s", self.address_string(), err)

    def _answer(self, route, input_status: HTTPStatus) -> None:
        """Run ``route`` and answer what it raises: stale runs 409 / 503, unknown names 404,
        an InputError ``input_status`` (a malformed request's 400; on a GET, a problem of the
        results, such as a scan that moved: 409), the machine's resources 503, anything
        unforeseen 500 (logged): no request is left without an answer but a gone client's."""
        try:
            return route()
        except (ClientGone, BrokenPipeError, ConnectionResetError) as err:
            log.debug("%s %s: the client went away (%s)", self.command, self.path,
                      type(err).__name__)
            self.close_connection = True
            return None
        except ResultsChanged as err:
            return self._error(HTTPStatus.CONFLICT, str(err), stale=True)
        except ResultsBeingWritten as err:
            return self._error(HTTPStatus.SERVICE_UNAVAILABLE, str(err), stale=True)
        except UnknownSample as err:
            return self._error(HTTPStatus.NOT_FOUND, str(err))
        except LookupError:
            return self._error(HTTPStatus.NOT_FOUND)
        except PermissionError as err:  # a file another account keeps from this one
            return self._error(HTTPStatus.FORBIDDEN, cannot_write_text(err))
        except BadRequest as err:
            return self._error(HTTPStatus.BAD_REQUEST, str(err))
        except InputError as err:
            return self._error(input_status, str(err))
        except CtcnetError as err:
            return self._error(HTTPStatus.CONFLICT, str(err))
        except Exception as err:  # a bug: said to the page, logged with its traceback
            if is_resource_error(err):  # the machine's (open files, memory): no file's fault
                log.warning("review server: %s", err)
                return self._error(HTTPStatus.SERVICE_UNAVAILABLE, "the server ran out of "
                                   f"resources ({err}): raise ulimit -n, or free memory")
            log.exception("review server: %s %s failed", self.command, printable_name(self.path))
            return self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"server error: {err}")

    def do_HEAD(self):
        """Answer a HEAD request as a GET (the headers the GET would send)."""
        self.do_GET()

    def _no_such_method(self):
        """Any other method: a JSON 405, as every error here is (the stock page was HTML)."""
        self._error(HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command} is not served: GET or "
                    "POST")

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _no_such_method

    def do_GET(self):
        """Serve a page, tile or JSON answer; refuse host names other than loopback (DNS
        rebinding)."""
        if not self._host_ok():
            return self._error(HTTPStatus.FORBIDDEN, "only loopback host names are served")
        if self._fetched_from_elsewhere():
            return self._error(HTTPStatus.FORBIDDEN, "served to the review's own pages only")
        if urlsplit(self.path).path == "/favicon.ico":  # (a browser's own ask: no 403 said)
            self.send_response(HTTPStatus.NO_CONTENT)
            return self.end_headers()
        if self._to_session_folder():
            return
        in_session = self._session()
        if not self._admitted(in_session):
            if self.headers.get("Sec-Fetch-Mode") == "navigate" or \
                    "text/html" in (self.headers.get("Accept") or ""):  # a person's page
                return self._send(HTTPStatus.FORBIDDEN, (
                    "<!doctype html><title>ctcnet review</title><p>" + NOT_ADMITTED +
                    ".</p>\n").encode(), "text/html; charset=utf-8")
            return self._error(HTTPStatus.FORBIDDEN, NOT_ADMITTED)
        # The first address, a page: on to the session's path (a script's ?token= on each
        # request is answered where it asks).
        page = urlsplit(self.path).path
        if self._new_cookie and not in_session and (page == "/" or page.startswith("/review/")):
            return self._to_session()
        self._answer(self._get, HTTPStatus.CONFLICT)

    def _state(self, sample, query: str, run_id: str | None) -> dict:
        """A sample's state for its page (``since``: what changed since that stamp): its
        records read as one moment's, under the decisions lock (another server's sign-off,
        read between its history and its record, read "edited since"); summary.json brought
        up to a sign-off that moved once the lock is let go."""
        since = query_value(query, "since")
        reading = parse_reading(query_value(query, "reading", True))
        with review_records_read(sample.folder, wait_s=0.0):
            if since is None:  # (with where the static report is: no cookie there)
                body = {**sample.state(self.app.reviewer, self.app.saliency, reading),
                        "files": access.files_prefix(self.app.token),
                        # Said on the page before a first decision is refused.
                        "read_only": None if os.access(sample.folder, os.W_OK)
                        else READ_ONLY_TEXT}
            else:
                sample.check_run(run_id)  # a page of another run must reload, not merge
                body = sample.changes(since, reading)
        if "signoff" in body:
            sample.write_if_signoff_moved(body["signoff"])
        return body

    def _get(self):
        url = urlsplit(self.path)
        path, run_id = url.path, run_of(url.query)
        keyed = access.files_prefix(self.app.token)
        if path.startswith(keyed):  # the files under the token's key: as /files/ itself
            path = "/files/" + path[len(keyed):]
        parts = path.split("/", 3)  # '', head, sample, rest (still URL-encoded)
        if path == "/":
            self.app.look_again()  # samples a running batch finished since
            if len(self.app.folders) == 1 and not self.app.run_undone():  # (or the list says)
                self.send_response(HTTPStatus.FOUND)
                self.send_header("Location", access.session_prefix(self.app.token) +
                                 f"/review/{quote(next(iter(self.app.folders)), safe='')}")
                self.send_header("Content-Length", "0")
                self._cookie()
                return self.end_headers()
            return self._send(200, self.app.index_html().encode(), "text/html; charset=utf-8")
        if parts[1] == "review" and len(parts) == 3:
            if unquote(parts[2]) not in self.app.folders:
                self.app.look_again()
            if unquote(parts[2]) not in self.app.folders:
                raise LookupError(parts[2])
            # A reading the page would be refused its data for: refused here, with a 400 a
            # script or monitor reads (not a page that opens to an error).
            parse_reading(query_value(url.query, "reading", True))
            return self._send(200, PAGE.read_bytes(), "text/html; charset=utf-8")
        if parts[1] == "api" and len(parts) == 4 and parts[3] == "state":
            return self._json(200, self._state(self.app.sample(unquote(parts[2])), url.query,
                                               run_id))
        if parts[1] == "api" and len(parts) == 4 and parts[3] == "agreement":
            sample = self.app.sample(unquote(parts[2]))
            sample.check_run(run_id)
            # With the sign-off as it holds: a second reading's decision moves it on, and the
            # first reader's page polls its own journal only.
            with review_records_read(sample.folder, wait_s=0.0):
                body = {**sample.agreement(stamped=True), "signoff": sample.signoff(
                    sample.decisions.matched(sample.run))}
            return self._json(200, body)
        tile = tile_route(parts[3]) if parts[1] == "api" and len(parts) == 4 else None
        if tile is not None:
            kind, event_id = tile
            png = self.app.tile_png(
                unquote(parts[2]), event_id, run_id,
                saliency=query_value(url.query, "saliency") == "1", context=kind == "context",
                wanted=lambda: client_connected(self.connection))
            return self._send(200, png, "image/png")
        if parts[1] == "files" and len(parts) == 4:
            if run_id is not None:  # a gallery page asked for by the run the page shows
                self.app.sample(unquote(parts[2])).check_run(run_id)
            target = self.app.file_path(unquote(parts[2]), parts[3])
            if target is None:
                raise LookupError(parts[3])
            kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
            body = target.read_bytes()
            if kind == "text/html":  # its gallery inline (see inline_images)
                body = inline_images(body, lambda rel: self.app.file_path(
                    unquote(parts[2]), str(Path(parts[3]).parent / rel)))
            return self._send(200, body, kind, sandboxed=True)
        raise LookupError(path)

    def do_POST(self):
        """Record review decisions or a sign-off (JSON only); refuse host names other than
        loopback (DNS rebinding)."""
        if not self._host_ok():
            return self._error(HTTPStatus.FORBIDDEN, "only loopback host names are served")
        if not self._origin_ok():
            return self._error(HTTPStatus.FORBIDDEN, "only the review's own pages may post")
        if not self._admitted(self._session()):
            return self._error(HTTPStatus.FORBIDDEN, NOT_ADMITTED)
        self._answer(self._post, HTTPStatus.BAD_REQUEST)

    def _post(self):
        parts = urlsplit(self.path).path.split("/", 3)
        if len(parts) != 4 or parts[1] != "api" or parts[3] not in POSTS:
            raise LookupError(self.path)
        # JSON only: a form on another site cannot send it without a CORS preflight we refuse.
        if (self.headers.get("Content-Type") or "").split(";")[0].strip().lower() != \
                "application/json":  # (a media type's case is none of its meaning)
            return self._error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send application/json")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise InputError("Content-Length is not a number") from None
        if not 0 < length <= MAX_BODY:
            raise InputError("empty or oversized body")
        try:
            raw = self.rfile.read(length)
        except TimeoutError:  # a body shorter than its Content-Length: the client's, not ours
            raise InputError(f"the body ended before its Content-Length ({length} bytes)") \
                from None
        try:
            body = parse_json(raw)
        except (ValueError, RecursionError) as err:  # (arrays nested thousands deep)
            raise InputError(f"the body is not JSON: {str(err)[:200]}") from None
        sample = self.app.sample(unquote(parts[2]))
        try:
            result = getattr(sample, POSTS[parts[3]])(body, self.app.reviewer)
        except OSError as err:  # e.g. a read-only results folder: the page says "not saved"
            log.error("cannot save a %s in %s: %s", parts[3], sample.folder, err)
            if err.errno in READ_ONLY_ERRNOS:  # an archive read back, as it should be
                return self._error(HTTPStatus.FORBIDDEN, f"cannot write the {parts[3]}: "
                                   f"{cannot_write_text(err)} ({err.strerror or err})")
            return self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"cannot write the "
                               f"{parts[3]}: {err.strerror or err}")
        if self.app.on_write is not None:
            self.app.on_write()
        # Who saved what, for the review's log file (not the console).
        log.info("%s", saved_text(sample.name, parts[3], body, self.app.reviewer))
        return self._json(200, result)


class ReviewServer(ThreadingHTTPServer):
    """The HTTP server with its app (``app``); closing it stops the tiles cut ahead."""

    app: ReviewApp
    # Connections waiting to be accepted: socketserver's 5 reset a page's burst of tile
    # requests beside other reviewers' decisions (9 of 28 decisions sent at once were reset).
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type[ReviewHandler],
                 app: ReviewApp) -> None:
        # The app is set before the socket is bound: a failed bind (a port another server
        # holds) calls server_close from within the base constructor, which needs it.
        self.app = app
        self._requests: list[threading.Thread] = []
        self._requests_lock = threading.Lock()
        super().__init__(address, handler)

    # How long a stop waits for the requests in progress (a decision's journal line, its
    # seal and the summary it updates take a tenth of a second): socketserver joins no
    # daemon thread, so a Ctrl-C in a burst of decisions ended the process between those
    # writes (a summary behind the journal, a saved decision never answered). Daemon
    # threads still, so a connection a browser opened ahead and left idle holds the stop no
    # longer than this.
    stop_wait_s = 3.0

    def process_request(self, request, client_address) -> None:
        """Handle the request in a daemon thread of its own, kept until the stop has waited
        for it (``ThreadingMixIn.process_request``, with the thread kept)."""
        thread = threading.Thread(target=self.process_request_thread,
                                  args=(request, client_address), daemon=True)
        with self._requests_lock:
            self._requests = [t for t in self._requests if t.is_alive()]
            self._requests.append(thread)
        thread.start()

    def server_close(self) -> None:
        """Close the socket, stop the tiles being cut ahead and let the requests in progress
        finish (at most ``stop_wait_s``)."""
        super().server_close()
        self.app.tiles.close()
        deadline = time.monotonic() + self.stop_wait_s
        with self._requests_lock:
            running = list(self._requests)
        for thread in running:
            thread.join(max(0.0, deadline - time.monotonic()))


def make_server(results: str | Path, port: int = 0, reviewer: str | None = None,
                saliency: bool = True, scans: str | Path | None = None,
                warm_up: bool = True, palette: str = "cellsearch",
                token: str | None = None) -> ReviewServer:
    """A review server on 127.0.0.1:``port`` (0: a free port); call ``serve_forever``.
    ``warm_up``: read the display levels and cut the first tiles in the background now.
    ``palette``: the overlay's colours (``ctcnet.report.colours.PALETTES``); another than the
    gallery's has every tile cut from the frames. ``token``: requests must carry it
    (:mod:`access`; None: any local program is answered)."""
    app = ReviewApp(results, reviewer, saliency, scans, palette)
    app.check_one_servable()
    app.token = token
    handler = type("BoundReviewHandler", (ReviewHandler,), {"app": app})
    try:
        server = ReviewServer(("127.0.0.1", int(port)), handler, app)
    except OSError as err:  # e.g. another review server on that port: one line, exit 2
        raise CtcnetError(f"cannot listen on 127.0.0.1:{port}: {err.strerror or err} "
                          "(another server there? --port 0 picks a free port)") from None
    server.daemon_threads = True
    if warm_up:
        app.warm_up()
    return server


def server_url(server: ThreadingHTTPServer) -> str:
    """The address the server listens on, as a URL."""
    host, port = server.server_address[:2]
    return f"http://{host}:{port}/"

