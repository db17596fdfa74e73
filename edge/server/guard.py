"""Protection against slow and idle clients, as a small layer over uvicorn's h11 protocol.

uvicorn bounds the idle time between keep-alive requests (``timeout_keep_alive``) but not the time a
client may take to send its headers, and its ``limit_concurrency`` answers 503 only once headers have
arrived, so 500 half-open sockets hold 500 file descriptors forever. This protocol adds:

- a **header timeout**: from the connection's first byte (or its opening) to the end of the request
  headers; a client that trickles them is answered 408 and disconnected;
- a **connection limit**: beyond ``max_connections`` open connections a new one is answered 503 and
  closed at once, before anything is read from it.

The body timeout is the application's (``read_json``), so its 408 has the dialect's error shape.
Alternatives weighed: hypercorn's ``read_timeout`` is per read, so a trickle of one byte per interval
defeats it, and it has no connection limit; granian has both but brings its own process and signal
model, which the graceful drain of edge's generations would have to be rebuilt around.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("edge.server")



def _plain_response(status: bytes, text: bytes, extra: bytes = b"") -> bytes:
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n" + extra
            + b"content-length: " + str(len(text)).encode() + b"\r\n\r\n" + text)


_TIMEOUT_RESPONSE = _plain_response(b"408 Request Timeout", b"the request headers did not arrive in time")
_BUSY_RESPONSE = _plain_response(b"503 Service Unavailable", b"too many open connections; retry",
                                 b"retry-after: 1\r\n")


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float  # seconds from a request's first byte to the end of its headers
    max_connections: int


class GuardedH11Protocol(H11Protocol):
    def __init__(self, *args, limits: ConnectionLimits, **kwargs):
        super().__init__(*args, **kwargs)
        self.limits = limits
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            log.warning("connection refused: %d open connections, the limit is %d",
                        len(self.connections) - 1, self.limits.max_connections)
            transport.write(_BUSY_RESPONSE)
            transport.close()
            return
        self._arm_header_timer()  # a connection that never sends a byte is closed too

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE and self._header_timer is None:
            self._arm_header_timer()
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the headers are complete
            self._disarm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self.limits.header_timeout, self._headers_timed_out)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_timed_out(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.conn.our_state is h11.IDLE:  # nothing of a response is on the wire yet
            self.transport.write(_TIMEOUT_RESPONSE)
        self.transport.close()


def guarded_protocol(limits: ConnectionLimits) -> type[H11Protocol]:
    """The protocol class to give uvicorn as ``http``."""
    return functools.partial(GuardedH11Protocol, limits=limits)  # type: ignore[return-value]
