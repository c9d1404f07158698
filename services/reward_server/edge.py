"""The HTTP edge: what a connection may cost the server before the app sees a request.

uvicorn's parser takes headers of any size (and joins a long header's pieces in quadratic
time), keeps a connection that never finishes its headers or its body, and accepts connections
until the process runs out of file descriptors, at which point even the probes are refused.
``guarded_protocol`` is uvicorn's own httptools protocol with four limits added, each a setting:

- the request line and headers: at most ``max_header_bytes`` (431, then close), counted as the
  bytes arrive, before the parser joins them;
- the head must arrive within ``header_timeout_s`` of the connection (or of the previous
  response), the body within ``body_timeout_s`` of the head: a slow client is dropped, with a
  408 where the app has not begun on its request (an idle keep-alive connection is uvicorn's
  ``timeout_keep_alive``);
- at most ``max_connections`` open connections (default: from the open-file limit); past them
  a reserve of ``probe_connections`` answers only the probes (``/healthz``, ``/readyz``,
  ``/metrics``; anything else 503 with Retry-After) and must send its head within 2 s, and past
  the reserve a connection is answered 503 and closed at once, so the descriptors never run out;
- with ``health_port`` set, a second listener that answers only the probes, with connections
  of its own: what floods the service port cannot reach it (the Kubernetes probes use it).

A proxy in front is not needed for any of this; ``serve`` runs uvicorn with this protocol, so
the README's first command, compose and Kubernetes get the same edge.
"""
from __future__ import annotations

import logging
import resource
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("harmo.edge")

PROBES = (b"/healthz", b"/readyz", b"/metrics")


def raise_open_file_limit() -> int:
    """Raise this process's soft open-file limit to its hard limit; the soft limit after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def connection_limit(configured: int | None, probe_connections: int, open_files: int) -> int:
    """The connection cap: the setting, else what the open-file limit leaves after the probe
    reserve and the process's own files (workers' pipes, model files, Redis, logs)."""
    if configured is not None:
        return configured
    return max(16, min(4096, open_files - probe_connections - max(64, open_files // 8)))


def _response(status: bytes, message: str, extra: bytes = b"") -> bytes:
    body = ('{"detail": "%s"}' % message).encode()
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\nconnection: close\r\n" + extra + b"\r\n" + body)


def guarded_protocol(settings: Any, open_files: int) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with the limits of ``settings`` (see the module docstring)."""
    max_head = settings.max_header_bytes
    header_timeout, body_timeout = settings.header_timeout_s, settings.body_timeout_s
    reserve = settings.probe_connections
    cap = connection_limit(settings.max_connections, reserve, open_files)
    health_port = settings.health_port
    health_open: set[int] = set()  # ids of the health listener's connections

    class GuardedHttpTools(HttpToolsProtocol):
        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._head_open, self._head_bytes, self._carry = True, 0, b""
            self._timer = None
            self._probe_only = False
            if health_port is not None and self.server is not None and self.server[1] == health_port:
                self._probe_only = True
                health_open.add(id(self))
                if len(health_open) > reserve:
                    self._refuse(b"503 Service Unavailable", "too many probe connections", b"retry-after: 1\r\n")
                    return
                self._arm(min(header_timeout, 2.0), "headers")
                return
            n = len(self.connections) - len(health_open)
            if n > cap + reserve:  # past the reserve: answered and closed, the descriptor goes back at once
                self._refuse(b"503 Service Unavailable", f"the server is at its limit of {cap} connections",
                             b"retry-after: 1\r\n")
                return
            if n > cap:
                self._probe_only = True  # in the reserve: probes only, and quickly
                self._arm(min(header_timeout, 2.0), "headers")
                return
            self._arm(header_timeout, "headers")

        def connection_lost(self, exc) -> None:
            self._disarm()
            health_open.discard(id(self))
            super().connection_lost(exc)

        # -- timers ----------------------------------------------------------------------
        def _arm(self, seconds: float, what: str) -> None:
            self._disarm()
            self._timer = self.loop.call_later(seconds, self._expired, what, seconds)

        def _disarm(self) -> None:
            if getattr(self, "_timer", None) is not None:
                self._timer.cancel()
                self._timer = None

        def _expired(self, what: str, seconds: float) -> None:
            self._timer = None
            if self.transport.is_closing():
                return
            log.info("closing a connection from %s: its %s took longer than %gs", self.client, what, seconds)
            self._refuse(b"408 Request Timeout", f"the request's {what} did not arrive within {seconds:g}s")

        def _refuse(self, status: bytes, message: str, extra: bytes = b"") -> None:
            if self.cycle is None or self.cycle.response_complete:  # nothing answered yet on this request
                self.transport.write(_response(status, message, extra))
            self.transport.close()

        # -- the head's size -------------------------------------------------------------
        def data_received(self, data: bytes) -> None:
            if self._head_open:
                window = self._carry + data
                end = window.find(b"\r\n\r\n")
                taken = (end + 4 - len(self._carry)) if end >= 0 else len(data)
                if self._head_bytes + taken > max_head:
                    self._head_open = False
                    self._refuse(b"431 Request Header Fields Too Large",
                                 f"the request line and headers pass {max_head} bytes")
                    return
                self._head_bytes += taken
                self._carry = window[-3:]
            super().data_received(data)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if not self._head_open:  # the next request on a kept-alive connection
                self._head_open, self._head_bytes, self._carry = True, 0, b""
            if self._timer is None:
                self._arm(header_timeout, "headers")

        def on_headers_complete(self) -> None:
            self._head_open = False
            self._arm(body_timeout, "body")
            if self._probe_only and httptools_path(self.url) not in PROBES:
                why = ("this port answers only the probes" if id(self) in health_open else
                       f"the server is at its limit of {cap} connections")
                self._refuse(b"503 Service Unavailable", why, b"retry-after: 1\r\n")
                return
            super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            if not self.transport.is_closing():  # refused: the rest of the request is not read
                super().on_body(body)

        def on_message_complete(self) -> None:
            self._disarm()
            if not self.transport.is_closing():
                super().on_message_complete()

    return GuardedHttpTools


def httptools_path(url: bytes) -> bytes:
    return url.split(b"?", 1)[0]
