"""Image input for every wire dialect: fetch, validate, normalize and fit an image to its token budget.

The three dialects (OpenAI chat ``image_url`` parts, OpenAI Responses ``input_image``, Anthropic
``image`` blocks) all end here, so the device is guarded in one place. A crafted request must not take
it down or make it fetch arbitrary URLs:

- ``data:`` URLs (base64) are always accepted; ``file://`` only inside the operator's allowed
  directories; ``http(s)://`` only when the operator turned remote fetching on, never to loopback,
  private, link-local, multicast or reserved addresses, never following redirects.
- Bytes are capped before decoding, pixels are capped from the header before decoding, and only the
  decoders of the five supported formats (PNG, JPEG, WebP, GIF, BMP) ever see client bytes.
- Everything llama.cpp gets is plain RGB (EXIF orientation applied, alpha composited on white), already
  resized to the token budget the request's ``detail`` asks for (see ``fit_size``).

Every refusal is an ``InvalidRequestError`` whose ``param`` is the caller's parameter path and whose
message says what was wrong. All functions here block (disk, network, decoding): call them off the
event loop.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import io
import ipaddress
import math
import os
import socket
import ssl
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import numpy as np
from PIL import Image, ImageOps

from edge.errors import InvalidRequestError

MiB = 1024 * 1024

# Pillow format name -> media type. Only these decoders are ever run on client bytes.
SUPPORTED_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif",
                     "BMP": "image/bmp"}
_SUPPORTED_LIST = "PNG, JPEG, WebP, GIF or BMP"
# Declared media types we accept (the bytes are still sniffed; a declaration is only a first filter).
_ACCEPTED_MEDIA_TYPES = {*SUPPORTED_FORMATS.values(), "image/jpg", "image/x-ms-bmp", "application/octet-stream"}

# Gemma 4's vision encoder: 16 px patches, pooled 3 x 3 into one soft token, so one token covers a
# 48 x 48 px tile (the "unified" gemma4uv variant folds the pooling into a 48 px patch: same tile).
GEMMA4_TILE_PX = 16 * 3
# The soft-token budgets Gemma 4 was trained with (Hugging Face's Gemma4ImageProcessor accepts only these).
GEMMA4_TOKEN_BUDGETS = (70, 140, 280, 560, 1120)
DETAIL_LEVELS = ("low", "auto", "high")


@dataclass(frozen=True)
class ImagePolicy:
    """What the operator lets requests do with images. Defaults suit a laptop serving local clients.

    max_bytes: encoded size of one inline or file image (base64 is decoded first; 20 MiB as OpenAI).
    max_pixels: width x height read from the header, checked before decoding (decompression bombs);
        a decoded RGBA image costs 4 bytes per pixel, so 50 MP is at most ~200 MB transiently.
    max_images: images in one request.
    allowed_dirs: directories whose files ``file://`` URLs may name; empty refuses ``file://``.
    remote_fetch: whether ``http(s)://`` URLs are fetched at all.
    fetch_timeout_s: wall-clock limit of one remote fetch (connect + headers + body), DNS excepted.
    remote_max_bytes: byte cap of one remote image, enforced while streaming.
    allow_private_networks: also fetch from loopback/private/link-local addresses. For tests against a
        loopback server only: on a device it lets a request reach the LAN and the device's own services.
    auto_tokens: the token budget of ``detail: auto`` (and of Anthropic images, which have no detail).
    high_tokens: the token budget of ``detail: high``; small devices may lower it (encode time grows
        with it). ``detail: low`` is always the smallest budget, 70.
    """

    max_bytes: int = 20 * MiB
    max_pixels: int = 50_000_000
    max_images: int = 16
    allowed_dirs: tuple[Path, ...] = ()
    remote_fetch: bool = False
    fetch_timeout_s: float = 10.0
    remote_max_bytes: int = 20 * MiB
    allow_private_networks: bool = False
    auto_tokens: int = 280
    high_tokens: int = 1120

    def __post_init__(self) -> None:
        object.__setattr__(self, "allowed_dirs", tuple(Path(d) for d in self.allowed_dirs))
        for name in ("max_bytes", "max_pixels", "max_images", "remote_max_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"ImagePolicy.{name} must be positive")
        if self.fetch_timeout_s <= 0:
            raise ValueError("ImagePolicy.fetch_timeout_s must be positive")
        for name in ("auto_tokens", "high_tokens"):
            if getattr(self, name) not in GEMMA4_TOKEN_BUDGETS:
                raise ValueError(f"ImagePolicy.{name} must be one of {GEMMA4_TOKEN_BUDGETS}")


@dataclass(frozen=True, eq=False)
class LoadedImage:
    """A validated image, ready for ``VisionProjector.tokenize``.

    ``pixels`` is H x W x 3 uint8 RGB already fitted to ``token_budget``: both sides are multiples of
    the 48 px tile, so the projector (created with ``vision.options_for_fitted_images``) keeps the size
    and the image costs exactly ``n_tokens`` soft tokens in the context."""

    pixels: np.ndarray
    source_format: str  # Pillow's name: PNG, JPEG, WEBP, GIF, BMP
    detail: str
    token_budget: int
    original_size: tuple[int, int]  # (width, height) after EXIF orientation, before fitting
    n_tokens: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "n_tokens", tokens_for_size(self.width, self.height))

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    def to_png(self) -> bytes:
        """The fitted pixels as PNG (lossless; for logs, caches, or an ``ImagePart``)."""
        buffer = io.BytesIO()
        Image.fromarray(self.pixels, "RGB").save(buffer, "PNG", compress_level=1)
        return buffer.getvalue()


# --------------------------------------------------------------------------------------------- budgets

def token_budget(detail: str | None, policy: ImagePolicy, param: str) -> int:
    """``detail`` -> soft-token budget: low 70, auto ``policy.auto_tokens`` (280, the reference
    processor's default), high ``policy.high_tokens`` (1120). 140 and 560 are reachable through the
    policy. ``param`` names the detail field for the error."""
    budgets = {"low": GEMMA4_TOKEN_BUDGETS[0], "auto": min(policy.auto_tokens, policy.high_tokens),
               "high": policy.high_tokens}
    detail = "auto" if detail is None else detail  # an omitted detail field
    if detail not in budgets:
        raise _invalid(f"detail must be one of {', '.join(DETAIL_LEVELS)}, got {detail!r}", param)
    return budgets[detail]


def fit_size(width: int, height: int, max_tokens: int, tile: int = GEMMA4_TILE_PX) -> tuple[int, int]:
    """The largest (width, height), both multiples of ``tile``, with the image's aspect ratio and at
    most ``max_tokens`` tiles: the rule of Hugging Face's Gemma 4 processor, which scales small images
    up and large ones down to fill the budget. llama.cpp's own resize (mtmd-image.cpp,
    ``calc_size_preserved_ratio``) rounds to the nearest tile and can land above the budget, and its
    budget is per projector rather than per image, hence fitting here."""
    scale = math.sqrt(max_tokens * tile * tile / (width * height))
    fitted_w = math.floor(width * scale / tile) * tile
    fitted_h = math.floor(height * scale / tile) * tile
    # A very thin image floors one side to zero: give it one tile and as many along the other side
    # as the aspect ratio and the budget allow.
    if fitted_w == 0:
        fitted_w, fitted_h = tile, min(max(1, height // width), max_tokens) * tile
    elif fitted_h == 0:
        fitted_w, fitted_h = min(max(1, width // height), max_tokens) * tile, tile
    return fitted_w, fitted_h


def tokens_for_size(width: int, height: int, tile: int = GEMMA4_TILE_PX) -> int:
    """Soft tokens of a fitted image (one per tile), as llama.cpp's gemma4v projector counts them."""
    return (width // tile) * (height // tile)


# ------------------------------------------------------------------------------------------ public API

def check_image_count(count: int, policy: ImagePolicy, param: str) -> None:
    """Refuse a request with more images than the policy allows (before loading any of them)."""
    if count > policy.max_images:
        raise _invalid(f"the request has {count} images; this server accepts at most {policy.max_images} "
                       "per request", param, code="too_many_images")


def load_image(url: str, policy: ImagePolicy, param: str, detail: str | None = "auto", *,
               detail_param: str | None = None) -> LoadedImage:
    """Load the image a URL names: ``data:`` (base64), ``file://`` or ``http(s)://`` as the policy allows.

    ``param`` is the wire path of the URL (``messages[1].content[2].image_url``); ``detail_param`` that
    of the detail field, by default ``param + ".detail"``."""
    budget = token_budget(detail, policy, detail_param or f"{param}.detail")
    scheme = _scheme(url)
    if scheme == "data":
        data = _read_data_url(url, policy, param)
    elif scheme == "file":
        data = _read_file_url(url, policy, param)
    elif scheme in ("http", "https"):
        data = _fetch_remote(url, policy, param)
    else:
        raise _invalid(f"unsupported image URL {_shorten(url)!r}: use a data: URL with base64 image data"
                       " (or an http(s):// or file:// URL where the server allows them)", param,
                       code="image_url_not_allowed")
    return _decode(data, policy, param, detail, budget)


def load_image_base64(data: str, media_type: str | None, policy: ImagePolicy, param: str,
                      detail: str | None = "auto") -> LoadedImage:
    """Anthropic's ``{"type": "base64", "media_type": ..., "data": ...}`` source: the size is checked
    before the base64 is decoded."""
    budget = token_budget(detail, policy, f"{param}.detail")
    _check_media_type(media_type, param)
    return _decode(_decode_base64(data, policy, param), policy, param, detail, budget)


def load_image_bytes(data: bytes, media_type: str | None, policy: ImagePolicy, param: str,
                     detail: str | None = "auto") -> LoadedImage:
    """Already-decoded image bytes (e.g. an Anthropic base64 source the protocol model decoded)."""
    budget = token_budget(detail, policy, f"{param}.detail")
    _check_media_type(media_type, param)
    return _decode(data, policy, param, detail, budget)


def _scheme(url: str) -> str:
    # Only the first few characters: a data URL can be megabytes long.
    head = url[:12]
    return head.split(":", 1)[0].strip().lower() if ":" in head else ""


# ------------------------------------------------------------------------------------------ data: URLs

def _read_data_url(url: str, policy: ImagePolicy, param: str) -> bytes:
    header, comma, payload = url.split(":", 1)[1].partition(",")
    if not comma:
        raise _invalid("malformed data: URL: no ',' between the header and the data", param)
    fields = [part.strip().lower() for part in header.split(";")]
    if "base64" not in fields[1:]:
        raise _invalid("data: URL must be base64-encoded (data:image/png;base64,...)", param)
    _check_media_type(fields[0] or None, param)  # before decoding: a wrong type costs nothing
    return _decode_base64(payload, policy, param)


def _decode_base64(payload: str, policy: ImagePolicy, param: str) -> bytes:
    payload = "".join(payload.split())  # some clients wrap base64 at 76 columns
    # Check the size the payload would decode to before decoding it: an oversized one costs no memory.
    _check_byte_cap(len(payload) * 3 // 4 - payload[-2:].count("="), policy.max_bytes, param)
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as error:
        raise _invalid(f"the image's base64 data is invalid ({error})", param, "invalid_image") from None


def _check_media_type(media_type: str | None, param: str) -> None:
    if media_type and media_type.split(";")[0].strip().lower() not in _ACCEPTED_MEDIA_TYPES:
        raise _invalid(f"unsupported image media type {media_type!r}: send {_SUPPORTED_LIST}", param,
                       code="unsupported_image_format")


# ----------------------------------------------------------------------------------------- file:// URLs

def _read_file_url(url: str, policy: ImagePolicy, param: str) -> bytes:
    if not policy.allowed_dirs:
        raise _invalid("file:// image URLs are disabled on this server; send the image inline as a data: "
                       "URL (base64)", param, code="image_url_not_allowed")
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise _invalid(f"file:// URL must name a local path (file:///path), got host {parts.netloc!r}", param)
    path = Path(url2pathname(parts.path))
    if not path.is_absolute():
        raise _invalid("file:// URL must name an absolute path", param)
    resolved = _inside_allowed_dirs(path, policy, param)
    return _read_regular_file(resolved, policy.max_bytes, param)


def _inside_allowed_dirs(path: Path, policy: ImagePolicy, param: str) -> Path:
    # resolve() removes '..' and follows symlinks, so the containment check sees the real target.
    # Containment is checked before existence, so a refusal tells nothing about files elsewhere.
    resolved = path.resolve()
    for allowed in policy.allowed_dirs:
        if resolved.is_relative_to(allowed.resolve()):
            return resolved
    raise _invalid(f"image path {str(path)!r} is outside the directories this server allows", param,
                   code="image_url_not_allowed")


def _read_regular_file(path: Path, max_bytes: int, param: str) -> bytes:
    # O_NOFOLLOW: the checked path cannot be swapped for a symlink in between; O_NONBLOCK: a FIFO
    # cannot hang the open.
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise _invalid(f"image file {str(path)!r} does not exist", param) from None
    except OSError as error:
        raise _invalid(f"image file {str(path)!r} cannot be read ({error.strerror})", param) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # a directory, device or FIFO
        os.close(fd)
        raise _invalid(f"image path {str(path)!r} is not a regular file", param)
    with os.fdopen(fd, "rb") as file:
        data = file.read(max_bytes + 1)
    _check_byte_cap(len(data), max_bytes, param)
    return data


# --------------------------------------------------------------------------------------- remote images

def _fetch_remote(url: str, policy: ImagePolicy, param: str) -> bytes:
    if not policy.remote_fetch:
        raise _invalid("remote image URLs are disabled on this server; send the image inline as a data: "
                       "URL (base64)", param, code="image_url_not_allowed")
    parts = urlsplit(url)
    try:
        host, port = parts.hostname, parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError:
        raise _invalid(f"image URL {_shorten(url)!r} has an invalid port", param) from None
    if not host:
        raise _invalid(f"image URL {_shorten(url)!r} has no host", param)
    if parts.username or parts.password:
        raise _invalid("image URLs with credentials (user:password@host) are not fetched", param)
    try:
        host = host.encode("idna").decode("ascii")  # the Host header and SNI need the ASCII form
    except UnicodeError:
        raise _invalid(f"image URL host {host!r} is not a valid host name", param) from None
    address = _resolve_allowed_address(host, port, policy, param)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _get_pinned(parts.scheme.lower(), host, port, address, target, policy, param, _shorten(url))


def _resolve_allowed_address(host: str, port: int, policy: ImagePolicy, param: str) -> str:
    """Resolve once, check every address, and return the one to connect to: connecting to this checked
    address (not the name again) is what stops DNS rebinding from swapping in a private one."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise _invalid(f"could not resolve the image host {host!r} ({error})", param,
                       code="image_fetch_failed") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    blocked = [address for address in addresses if not _is_public(address)]
    if blocked and not policy.allow_private_networks:
        raise _invalid(f"image host {host!r} resolves to {blocked[0]}, a loopback, private, link-local, "
                       "multicast or reserved address; the server does not fetch from those", param,
                       code="image_url_not_allowed")
    return str(addresses[0])


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # ::ffff:127.0.0.1 reaches 127.0.0.1
            return _is_public(address.ipv4_mapped)
        if address in _NAT64:  # a NAT64 gateway forwards to the embedded IPv4 address
            return _is_public(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    # is_global is False for private, loopback, link-local, CGNAT, reserved and unspecified ranges;
    # multicast counts as global to ipaddress, so it is excluded separately.
    return address.is_global and not address.is_multicast


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to a pre-checked address; the Host header still carries the URL's host name."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = self.pinned_sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """As above over TLS: SNI and certificate verification use the URL's host name, not the address."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        self._tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self._tls)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self.pinned_sock = self._tls.wrap_socket(sock, server_hostname=self.host)


def _get_pinned(scheme: str, host: str, port: int, address: str, target: str, policy: ImagePolicy,
                param: str, shown_url: str) -> bytes:
    connection_type = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
    connection = connection_type(host, port, address, policy.fetch_timeout_s)
    # Socket timeouts bound each read, not the whole fetch (a server can trickle a byte at a time):
    # a watchdog shuts the socket down once the wall-clock limit is spent.
    watchdog = _Watchdog(connection, policy.fetch_timeout_s)
    try:
        with watchdog:
            connection.request("GET", target, headers={"Accept": "image/*", "Accept-Encoding": "identity",
                                                       "User-Agent": "edge-image-fetch"})
            response = connection.getresponse()
            _check_response(response, policy, param, shown_url)
            body = _read_capped(response, policy.remote_max_bytes, param)
            if watchdog.fired or response.length:  # cut short: by the watchdog or by the server
                raise http.client.IncompleteRead(body, response.length)
            return body
    except InvalidRequestError:
        raise
    except (OSError, http.client.HTTPException, ValueError) as error:
        if watchdog.fired or isinstance(error, TimeoutError):  # wall clock, or one read's own timeout
            raise _invalid(f"fetching the image from {shown_url!r} took longer than "
                           f"{policy.fetch_timeout_s:g} s", param, code="image_fetch_failed") from None
        raise _invalid(f"could not fetch the image from {shown_url!r} ({error or type(error).__name__})",
                       param, code="image_fetch_failed") from None
    finally:
        connection.close()


class _Watchdog:
    """Shuts a connection's socket down after ``seconds``, failing whatever read is blocked on it."""

    def __init__(self, connection: http.client.HTTPConnection, seconds: float):
        self._connection = connection
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self.fired = False

    def _fire(self) -> None:
        self.fired = True
        # pinned_sock, not sock: http.client drops ``sock`` once the response owns the connection.
        sock = getattr(self._connection, "pinned_sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> "_Watchdog":
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()


def _check_response(response: http.client.HTTPResponse, policy: ImagePolicy, param: str,
                    shown_url: str) -> None:
    if 300 <= response.status < 400:
        # A redirect could point anywhere (a private address included): never followed.
        location = _shorten(response.getheader("Location") or "")
        raise _invalid(f"the image URL {shown_url!r} redirects ({response.status}) to {location!r}; "
                       "redirects are not followed, send the final URL", param, code="image_fetch_failed")
    if response.status != 200:
        raise _invalid(f"fetching the image from {shown_url!r} failed: HTTP {response.status} "
                       f"{response.reason}", param, code="image_fetch_failed")
    length = response.getheader("Content-Length")
    if length and length.isdigit():
        _check_byte_cap(int(length), policy.remote_max_bytes, param)


def _read_capped(response: http.client.HTTPResponse, max_bytes: int, param: str) -> bytes:
    chunks, total = [], 0
    while chunk := response.read(64 * 1024):
        total += len(chunk)
        _check_byte_cap(total, max_bytes, param, streaming=True)
        chunks.append(chunk)
    return b"".join(chunks)


# ------------------------------------------------------------------------------------ decode + normalize

def _decode(data: bytes, policy: ImagePolicy, param: str, detail: str | None, budget: int) -> LoadedImage:
    _check_byte_cap(len(data), policy.max_bytes, param)
    image = _open(data, param)
    _check_pixel_cap(image.size, policy.max_pixels, param)
    source_format = image.format
    try:
        upright_size = _upright_size(image)
        target = fit_size(*upright_size, budget)
        image = _prepared_rgb(image, max(target))
    except Exception as error:  # noqa: BLE001 - any decoder failure on client bytes is a bad image
        raise _invalid(f"the {source_format} image is corrupt or truncated ({error or type(error).__name__})",
                       param, code="invalid_image") from None
    # Bicubic with Pillow's antialiasing: the resampling of the reference (Hugging Face) processor.
    fitted = image if image.size == target else image.resize(target, Image.Resampling.BICUBIC)
    return LoadedImage(np.asarray(fitted, dtype=np.uint8), source_format, detail or "auto", budget,
                       upright_size)


# EXIF orientations 5 to 8 turn the picture a quarter turn: width and height swap.
_QUARTER_TURNS = {5, 6, 7, 8}


def _upright_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) as the picture is meant to be seen, from the header and EXIF, before decoding."""
    width, height = image.size
    return (height, width) if image.getexif().get(0x0112) in _QUARTER_TURNS else (width, height)


def _open(data: bytes, param: str) -> Image.Image:
    """Read the header with the supported decoders only; the pixels are not decoded yet."""
    if not data:
        raise _invalid("the image is empty (0 bytes)", param, code="invalid_image")
    try:
        return Image.open(io.BytesIO(data), formats=tuple(SUPPORTED_FORMATS))
    except Image.DecompressionBombError:
        raise _invalid("the image has too many pixels (Pillow refused it as a decompression bomb)", param,
                       code="image_too_large") from None
    except Exception:  # noqa: BLE001 - UnidentifiedImageError, or a header a decoder chokes on
        raise _invalid(f"{_describe_unsupported(data)}; send {_SUPPORTED_LIST}", param,
                       code="unsupported_image_format") from None


def _describe_unsupported(data: bytes) -> str:
    """Name what the client sent when it is not a supported image, so the message helps."""
    head = data[:512]
    known = {b"II*\x00": "TIFF", b"MM\x00*": "TIFF", b"%PDF": "PDF", b"\x00\x00\x01\x00": "ICO",
             b"8BPS": "PSD", b"\x89PNG": "PNG", b"\xff\xd8": "JPEG", b"GIF8": "GIF", b"RIFF": "RIFF/WebP",
             b"BM": "BMP"}
    for magic, name in known.items():
        if head.startswith(magic):
            if name in ("PNG", "JPEG", "GIF", "RIFF/WebP", "BMP"):
                return f"the data starts like {name} but its header is invalid"
            return f"{name} images are not supported"
    if head[4:8] == b"ftyp":
        return f"{head[8:12].decode('latin-1').strip() or 'ISO media'} (HEIC/AVIF/MP4) images are not supported"
    text = head.lstrip().lower()
    if text.startswith((b"<svg", b"<?xml")) or b"<svg" in text:
        return "SVG images are not supported"
    try:
        head.decode("utf-8")
        return "the data is text, not an image"
    except UnicodeDecodeError:
        return "the data is not a recognizable image"


def _prepared_rgb(image: Image.Image, fitted_long_side: int) -> Image.Image:
    """Decode the first frame and return it upright, RGB, without alpha."""
    if image.format == "JPEG":
        # DCT-domain downscaling while decoding (by 1/2, 1/4 or 1/8, never below the request): a 12 MP
        # photo fitted to 280 tokens decodes about 2x faster and in 1/16 of the memory. Both sides are
        # kept >= the fitted long side, so it holds whatever the EXIF orientation turns out to be.
        image.draft("RGB", (fitted_long_side, fitted_long_side))
    image.seek(0)  # GIF/WebP animations: the first frame only
    image.load()
    return _to_rgb(ImageOps.exif_transpose(image))


_SIXTEEN_BIT_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N"}


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in _SIXTEEN_BIT_MODES:
        # Pillow's own conversion clips 16-bit grey at 255 (white); scale it to 8 bits instead.
        grey = np.clip(np.asarray(image, dtype=np.int64) // 257, 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        # Transparent areas become white (as a browser on a white page shows them), not black.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


# ----------------------------------------------------------------------------------------------- checks

def _check_byte_cap(size: int, max_bytes: int, param: str, streaming: bool = False) -> None:
    if size > max_bytes:
        amount = f"more than {max_bytes:,} bytes" if streaming else f"{size:,} bytes"
        raise _invalid(f"the image is {amount}; the limit is {max_bytes:,} bytes", param,
                       code="image_too_large")


def _check_pixel_cap(size: tuple[int, int], max_pixels: int, param: str) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise _invalid(f"the image has no pixels ({width} x {height})", param, code="invalid_image")
    if width * height > max_pixels:
        raise _invalid(f"the image is {width} x {height} = {width * height:,} pixels; the limit is "
                       f"{max_pixels:,} pixels", param, code="image_too_large")


def _invalid(message: str, param: str, code: str | None = None) -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code=code)


def _shorten(text: str, limit: int = 100) -> str:
    """URLs go into messages shortened: a data URL can be megabytes long."""
    return text if len(text) <= limit else text[:limit] + "..."
