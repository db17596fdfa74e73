"""Image factories and a loopback HTTP server for the image-input tests (no network beyond 127.0.0.1)."""

from __future__ import annotations

import base64
import io
import struct
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from edge.runtime.images import ImagePolicy

PARAM = "messages[1].content[2].image_url"


def encode(image: Image.Image, fmt: str, **save_args) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save_args)
    return buffer.getvalue()


def noisy_rgb(width: int = 64, height: int = 48, seed: int = 0) -> Image.Image:
    """Noise does not compress: a truncated file really misses pixel data."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


def solid(color: tuple[int, ...], size: tuple[int, int] = (64, 48), mode: str = "RGB") -> Image.Image:
    return Image.new(mode, size, color)


def data_url(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims ``width`` x ``height`` with a few bytes of pixel data: a bomb's header."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


@pytest.fixture
def policy() -> ImagePolicy:
    return ImagePolicy()


# ------------------------------------------------------------------------------------ loopback server

class _Routes(BaseHTTPRequestHandler):
    """GET routes of the loopback image server; ``server.png`` is the image it serves."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        name = self.path.strip("/").split("?")[0].replace("-", "_").replace(".", "_")
        route = getattr(self, "_route_" + name, None)
        if route is None:
            self.send_error(404, "no such route")
        else:
            route()

    def _send(self, body: bytes, content_type: str = "image/png", length: bool = True) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass  # the client gave up first (the timeout tests)

    def _route_image_png(self) -> None:
        self.server.seen_hosts.append(self.headers["Host"])
        self._send(self.server.png)

    def _route_redirect(self) -> None:
        self.send_response(302)
        self.send_header("Location", "/image.png")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _route_big_declared(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(10**9))
        self.end_headers()

    def _route_big_streamed(self) -> None:
        # No Content-Length and a connection close at the end: only counting while reading catches it.
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            for _ in range(64):
                self.wfile.write(b"\x00" * 16384)
        except OSError:
            pass  # the client hung up once it had read past its cap

    def _route_slow(self) -> None:
        time.sleep(3)
        self._send(self.server.png)

    def _route_trickle(self) -> None:
        # Each byte arrives well inside a per-read timeout; only a wall-clock limit stops this.
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", "1000")
        self.end_headers()
        try:
            for _ in range(1000):
                self.wfile.write(b"\x00")
                self.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass

    def log_message(self, *args) -> None:
        pass


class LoopbackImageServer:
    def __init__(self, png: bytes):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Routes)
        self.httpd.daemon_threads = True
        self.httpd.png = png
        self.httpd.seen_hosts = []
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, route: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/{route}"

    @property
    def seen_hosts(self) -> list[str]:
        return self.httpd.seen_hosts


@pytest.fixture(scope="module")
def image_server():
    server = LoopbackImageServer(encode(solid((0, 128, 255)), "PNG"))
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()
