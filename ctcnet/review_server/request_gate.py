"""Who a review server answers, request by request: loopback host names only (DNS
rebinding), no other site's fetches or posts, and the page it opened (the token and its
cookie under the session's path, :mod:`ctcnet.review_server.access`). A mixin of the server's
request handler (``self.app``, ``self.headers``, ``self.path``, ``self.server``)."""

from __future__ import annotations

from http import HTTPStatus
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

from ctcnet.review_server import access

LOOPBACK_HOSTS = {"127.0.0.1", "localhost"}


def _loopback(host: str) -> bool:
    """Whether a host name (of a Host header or an Origin, brackets and all) is loopback."""
    host = host.strip("[]")
    return host in LOOPBACK_HOSTS or host == "::1"


def query_value(query: str, name: str, keep_blank: bool = False) -> str | None:
    """Parameter ``name`` of a query (its first value; "" if empty, ``keep_blank``), or None."""
    values = parse_qs(query, keep_blank_values=keep_blank).get(name)
    return values[0] if values else None


def _without_token(query: str) -> str:
    """A query without the token: an address sent on to is one a browser keeps in its
    history."""
    return urlencode([(k, v) for k, v in parse_qsl(query, keep_blank_values=True)
                      if k != access.TOKEN_QUERY])


class RequestGate:
    """The checks a request passes before it is routed (see the module)."""

    def _host_ok(self) -> bool:
        return _loopback((self.headers.get("Host") or "").rsplit(":", 1)[0])

    def _admitted(self, in_session: bool) -> bool:
        """Whether the request comes from the page the server opened (its token, as the
        port's cookie under the session's path or the first address's query: :mod:`access`),
        or asks for the static report's files under the token's key
        (:func:`access.files_prefix`)."""
        port = self.server.server_address[1]
        ok, self._new_cookie = access.admitted(
            self.app.token, port, self.headers.get("Cookie") if in_session else None,
            query_value(urlsplit(self.path).query, access.TOKEN_QUERY))
        return ok or (self.command != "POST" and urlsplit(self.path).path.startswith(
            access.files_prefix(self.app.token)))

    def _cookie(self) -> None:
        """The token's cookie on the answer to the request that carried it in its query."""
        if getattr(self, "_new_cookie", False):
            self.send_header("Set-Cookie", access.set_cookie(self.app.token,
                                                             self.server.server_address[1]))

    def _origin_ok(self) -> bool:
        """A request a browser sends from a page says its origin: only this server's own
        pages (loopback, this port: a page another local program serves on another port is
        another origin) may post (a browser's preflight stops the others already; this does
        not rest on it). A request without one (a script, curl) is not a page's."""
        origin = self.headers.get("Origin")
        if origin is None:
            return True
        try:
            parts = urlsplit(origin)
            port = parts.port  # (a port that is no number raises: no page's origin)
        except ValueError:
            return False
        return parts.scheme == "http" and _loopback(parts.hostname or "") and \
            port == self.server.server_address[1]

    def _fetched_from_elsewhere(self) -> bool:
        """Whether a browser fetches this for another site's page (``Sec-Fetch-Site``
        cross-site or same-site: another port of this host too) other than by navigating to
        it: an ``<img>`` of a tile answered 200 or 404 would tell that page whether a sample
        id (often a record number) is served here."""
        site = self.headers.get("Sec-Fetch-Site")
        return site in ("cross-site", "same-site") and \
            self.headers.get("Sec-Fetch-Mode") != "navigate"

    def _session(self) -> bool:
        """Whether the request is under the server's session path
        (:func:`access.session_prefix`), then taken off ``self.path``: the routes read as
        a server's without a token."""
        prefix = access.session_prefix(self.app.token)
        if prefix and urlsplit(self.path).path.startswith(prefix + "/"):
            self.path = self.path[len(prefix):]
            return True
        return False

    def _to_session_folder(self) -> bool:
        """The session's path without its closing slash (typed, or cut short) sent on to
        it: the cookie is kept to the folder, so it was refused."""
        prefix = access.session_prefix(self.app.token)
        url = urlsplit(self.path)
        if not prefix or url.path != prefix:
            return False
        query = _without_token(url.query)  # (and not permanent: no browser keeps it)
        self.send_response(HTTPStatus.FOUND)
        self.send_header("Location", prefix + "/" + (f"?{query}" if query else ""))
        self.send_header("Content-Length", "0")
        self.end_headers()
        return True

    def _to_session(self) -> None:
        """The first address (the token in its query) sent on to the same page under the
        session's path, with the cookie kept to that path (:mod:`access`)."""
        url = urlsplit(self.path)
        query = _without_token(url.query)
        self.send_response(HTTPStatus.FOUND)
        self.send_header("Location", access.session_prefix(self.app.token) + url.path
                         + (f"?{query}" if query else ""))
        self.send_header("Content-Length", "0")
        self.send_header("Cache-Control", "no-store")
        self._cookie()
        self.end_headers()
