"""Serving optuna-dashboard safely: loopback unless asked, read-only when asked (always when remote), one line
for every failure a user can cause.

optuna-dashboard has no authentication, and its API deletes studies together with their artifact files
(`DELETE /api/studies/<id>`); its only server is wsgiref. So autoshield serves its WSGI app itself, behind a guard
that refuses every method but GET, HEAD and OPTIONS in read-only mode, and answers a missing artifact file with a
404 and one line instead of a 500 and a traceback.
"""

from __future__ import annotations

import ipaddress
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from autoshield.core.errors import AutoshieldError

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_ARTIFACT = re.compile(r"^/artifacts/\d+(?:/\d+)?/([0-9a-fA-F-]+)$")
# optuna-dashboard shows every attribute on one unbroken line (`white-space: nowrap`), so one long value (a
# policy, per-victim verdicts) widens a trial page to thousands of pixels, and it shows artifacts as 200 x 150 px
# thumbnails, in which a sheet of 30 images is unreadable. This style, added to the pages autoshield serves, lets
# values wrap inside the window and shows each sheet at up to the page's width.
WRAP_STYLE = (
    b"<style>main p,main .MuiBox-root{white-space:normal!important;overflow-wrap:anywhere}"
    b"main .MuiCard-root:has(img){width:auto!important;max-width:100%}"
    b"main .MuiCard-root:has(img) *{height:auto!important;max-height:none!important;position:static!important}"
    b"main .MuiCard-root img{width:auto!important;max-width:100%}"
    b"</style>"
)


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and `localhost`: only this machine can reach them."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name that may resolve anywhere, or every interface ("0.0.0.0" parses as not loopback)


def _answer(start_response: Callable[..., Any], status: str, message: str, *extra: tuple[str, str]) -> list[bytes]:
    body = (message + "\n").encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))), *extra])
    return [body]


def guarded(app: WSGIApp, *, read_only: bool, artifacts: Path, log: Callable[[str], None]) -> WSGIApp:
    """`app` behind the guard: mutating methods refused with 405 when `read_only`; artifacts whose file is gone
    answered with 404 and one logged line."""

    def guard(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "")
        if read_only and method not in SAFE_METHODS:
            return _answer(
                start_response,
                "405 Method Not Allowed",
                "this autoshield dashboard is read-only",
                ("Allow", ", ".join(sorted(SAFE_METHODS))),
            )
        if (found := _ARTIFACT.match(path)) and not (artifacts / found.group(1)).is_file():
            log(f"artifact {found.group(1)} is missing from {artifacts} (moved or deleted); answered 404")
            return _answer(start_response, "404 Not Found", "artifact file missing")
        if path.startswith(("/api/", "/artifacts/")):
            return app(environ, start_response)
        return _styled(app, environ, start_response)

    return guard


def _styled(app: WSGIApp, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The app's answer, with `WRAP_STYLE` in the head of an (unencoded) HTML page."""
    captured: dict[str, Any] = {}

    def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        captured.update(status=status, headers=headers)
        return lambda data: None  # bottle returns its body; it never calls write()

    body = b"".join(app(environ, capture))
    headers = captured["headers"]
    named = {key.lower(): value for key, value in headers}
    if named.get("content-type", "").startswith("text/html") and "content-encoding" not in named:
        body = body.replace(b"</head>", WRAP_STYLE + b"</head>", 1)
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"] + [("Content-Length", str(len(body)))]
    start_response(captured["status"], headers)
    return [body]


class _QuietHandler(WSGIRequestHandler):
    """wsgiref logs every request; only failures are worth a line."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if str(code).isdigit() and int(code) >= 500:
            super().log_request(code, size)


def listen(app: WSGIApp, *, host: str, port: int) -> WSGIServer:
    """A server bound to (host, port), or one line saying why it cannot be."""
    try:
        return make_server(host, port, app, handler_class=_QuietHandler)
    except OSError as error:
        reason = error.strerror or str(error)
        raise AutoshieldError(f"cannot listen on {host}:{port}: {reason} (another dashboard? choose --port)") from None


def log_line(message: str) -> None:
    print(f"dashboard: {message}", file=sys.stderr, flush=True)
