"""Running the app: the listening socket bound before the model loads, uvicorn with the connection
guard, and a shutdown that drains generations instead of cutting them.

On SIGTERM or SIGINT uvicorn stops accepting and closes idle connections; edge then answers every
request that has not produced an event yet (503), lets running generations go on for
``--shutdown-grace`` seconds, stops the rest (each stream ends with an error event, chat's with
``[DONE]``), and exits within grace + 2 s.
"""

from __future__ import annotations

import socket

import uvicorn
from starlette.applications import Starlette

from edge.server.guard import ConnectionLimits, guarded_protocol
from edge.settings import Settings

_EXIT_MARGIN_SECONDS = 1.0  # after the grace, for stopped streams to send their last frames


class StartupError(RuntimeError):
    """A fault found before serving (port, host, cache folder): one clear line, then exit."""


def bind_socket(host: str, port: int) -> socket.socket:
    """Bound (not yet listening) before the model is loaded, so a port in use or a host that does not
    resolve is reported at once; uvicorn later serves on this very socket."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as error:
        raise StartupError(f"cannot listen on {host}:{port}: the host does not resolve ({error.strerror})") from None
    listener = socket.socket(family, kind, proto)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(address)
    except OSError as error:
        listener.close()
        raise StartupError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    return listener


class _DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: Starlette):
        super().__init__(config)
        self.edge_app = app

    async def shutdown(self, sockets=None) -> None:
        admission = getattr(self.edge_app.state, "admission", None)
        if admission is not None:
            admission.begin_drain()
        await super().shutdown(sockets)


def serve(app: Starlette, settings: Settings, listener: socket.socket) -> None:
    limits = ConnectionLimits(header_timeout=settings.header_timeout, max_connections=settings.max_connections)
    config = uvicorn.Config(
        app, http=guarded_protocol(limits), log_config=None, access_log=False, log_level=settings.log_level,
        timeout_keep_alive=settings.idle_timeout,  # type: ignore[arg-type] - a float works
        timeout_graceful_shutdown=settings.shutdown_grace + _EXIT_MARGIN_SECONDS,  # type: ignore[arg-type]
        backlog=max(128, settings.max_connections))
    _DrainingServer(config, app).run(sockets=[listener])
