"""Who may use a review server: the page it opened, not every account on the machine.

The server listens on 127.0.0.1, which every local account reaches: without more, any of them
could read a sample's state and tiles through it (past the results folder's own permissions)
and post decisions or a sign-off under any reviewer's name. ``ctcnet review`` starts it with a
random token (:func:`new_token`) and opens the page at an address that carries it
(``?token=``), through a file only its own account can read (:func:`opening_page`), so that the
token is on no process's command line. The first request that carries the token is sent on to
the same page under the server's session path (:func:`session_prefix`, ``/s/<key>/``, a key
made from the token) with the token as a cookie of that path; every page, state, tile and
decision after it carries the cookie. A browser sends a cookie of 127.0.0.1 to every port
there, so a cookie of ``/`` reached any page another account serves on another port, which
then held the token: kept to a path no one else knows, it goes to this server's pages alone.
Requests without it are refused (403). The static report's files are asked for by
its own pages too, which are served sandboxed (an origin of their own: a planted page cannot
post as the reviewer) and so send no cookie; they are served under a key made from the token
(:func:`files_prefix`, ``/files/<key>/<sample>/...``), which the review page links to and
whose relative links keep. Another account holds neither: it reads the files no more than the
results folder's own permissions let it (a folder kept to its owner was read whole through
``/files/`` while a review ran).
"""

from __future__ import annotations

import hmac
import os
import secrets
import tempfile
from pathlib import Path

TOKEN_QUERY = "token"


def new_token() -> str:
    """A token no other account can guess (128 bits)."""
    return secrets.token_urlsafe(16)


def files_prefix(token: str | None) -> str:
    """The address under which a sample's own files are served to those without the cookie:
    ``/files/<key>/`` with a key made from the token (it opens the files and nothing else),
    ``/files/`` where the server has no token."""
    if token is None:
        return "/files/"
    key = hmac.new(token.encode(), b"ctcnet review files", "sha256").hexdigest()[:32]
    return f"/files/{key}/"


def session_prefix(token: str | None) -> str:
    """The path every page, state, tile and decision of a server with ``token`` is served
    under, ``/s/<key>`` (a key made from the token), which its cookie is kept to; "" where
    the server has no token."""
    if token is None:
        return ""
    key = hmac.new(token.encode(), b"ctcnet review session", "sha256").hexdigest()[:32]
    return f"/s/{key}"


def cookie_name(port: int) -> str:
    """The cookie of the server on ``port``: two servers on one host keep their own."""
    return f"ctcnet_review_{int(port)}"


def admitted(token: str | None, port: int, cookie_header: str | None,
             given: str | None) -> tuple[bool, bool]:
    """(whether a request is admitted, whether its answer sets the cookie): any where the
    server has no token; else one carrying the token as this port's cookie, or as the
    ``token`` query value ``given`` (the page's first address: its answer sets the cookie)."""
    if token is None:
        return True, False
    held = cookie_value(cookie_header, cookie_name(port))
    if held is not None and hmac.compare_digest(held, token):
        return True, False
    if given is not None and hmac.compare_digest(given, token):
        return True, True
    return False, False


def cookie_value(header: str | None, name: str) -> str | None:
    """The value of cookie ``name`` in a ``Cookie`` header, read pair by pair: a cookie of
    another program on 127.0.0.1 that the standard parser refuses (a JSON value, a space, an
    accent) before this one made the parser give up on the whole header, and every request
    was refused."""
    for pair in (header or "").split(";"):
        key, sep, value = pair.strip().partition("=")
        if sep and key.strip() == name:
            return value.strip().strip('"')
    return None


def set_cookie(token: str, port: int) -> str:
    """The ``Set-Cookie`` value that admits the page's later requests (never to scripts of a
    page, never sent by another site's, nor to another path than the session's)."""
    # Lax, not Strict: the page is opened from a file (``opening_page``), a navigation from
    # another site, which a Strict cookie is not sent on (every first page was a 403); the
    # path keeps it from other sites' pages all the same (they know no session path), and
    # posts are refused from any other origin (:mod:`request_gate`).
    return (f"{cookie_name(port)}={token}; HttpOnly; SameSite=Lax; "
            f"Path={session_prefix(token)}/")


def opening_page(url: str) -> Path:
    """A file only this account can read (0600) that sends a browser on to ``url`` (which
    carries the token): the browser is given the file's name, not the token, which any
    account could read on its command line."""
    fd, name = tempfile.mkstemp(prefix="ctcnet-review-", suffix=".html")
    with os.fdopen(fd, "w", encoding="utf-8") as page:
        page.write(f'<!doctype html><meta http-equiv="refresh" content="0;url={url}">'
                   f'<a href="{url}">the review</a>\n')
    return Path(name)
