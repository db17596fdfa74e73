"""Where images may come from: file:// inside allowed directories, http(s) only when allowed and public."""

from __future__ import annotations

import ipaddress
import socket
import time

import pytest

from edge.errors import InvalidRequestError
from edge.runtime import images
from edge.runtime.images import ImagePolicy, load_image

from .conftest import PARAM, encode, solid


def refused(url: str, policy: ImagePolicy) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as caught:
        load_image(url, policy, PARAM)
    assert caught.value.param == PARAM
    return caught.value


# --------------------------------------------------------------------------------------------- file://

@pytest.fixture
def image_dirs(tmp_path):
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    allowed.mkdir()
    outside.mkdir()
    (allowed / "cat.png").write_bytes(encode(solid((10, 200, 10)), "PNG"))
    (outside / "secret.png").write_bytes(encode(solid((200, 10, 10)), "PNG"))
    return allowed, outside


def test_file_urls_are_refused_by_default(image_dirs):
    allowed, _ = image_dirs
    error = refused((allowed / "cat.png").as_uri(), ImagePolicy())
    assert "file:// image URLs are disabled" in error.message and error.code == "image_url_not_allowed"


def test_file_url_inside_an_allowed_dir_loads(image_dirs):
    allowed, _ = image_dirs
    loaded = load_image((allowed / "cat.png").as_uri(), ImagePolicy(allowed_dirs=(allowed,)), PARAM)
    assert loaded.source_format == "PNG" and loaded.original_size == (64, 48)


def test_file_url_outside_the_allowed_dirs_is_refused(image_dirs):
    allowed, outside = image_dirs
    error = refused((outside / "secret.png").as_uri(), ImagePolicy(allowed_dirs=(allowed,)))
    assert "outside the directories this server allows" in error.message


def test_dot_dot_cannot_escape(image_dirs):
    allowed, _ = image_dirs
    error = refused(f"file://{allowed}/../outside/secret.png", ImagePolicy(allowed_dirs=(allowed,)))
    assert "outside the directories" in error.message


def test_symlink_cannot_escape(image_dirs):
    allowed, outside = image_dirs
    (allowed / "link.png").symlink_to(outside / "secret.png")
    (allowed / "linked-dir").symlink_to(outside, target_is_directory=True)
    policy = ImagePolicy(allowed_dirs=(allowed,))
    assert "outside the directories" in refused((allowed / "link.png").as_uri(), policy).message
    assert "outside the directories" in refused(f"file://{allowed}/linked-dir/secret.png", policy).message


def test_missing_files_are_only_reported_inside_allowed_dirs(image_dirs):
    allowed, outside = image_dirs
    policy = ImagePolicy(allowed_dirs=(allowed,))
    assert "does not exist" in refused((allowed / "nope.png").as_uri(), policy).message
    # Outside, a missing file and an existing one get the same answer: no probing of the disk.
    assert "outside the directories" in refused((outside / "nope.png").as_uri(), policy).message


def test_directories_and_remote_hosts_are_refused(image_dirs):
    allowed, _ = image_dirs
    (allowed / "sub").mkdir()
    policy = ImagePolicy(allowed_dirs=(allowed,))
    assert "not a regular file" in refused((allowed / "sub").as_uri(), policy).message
    assert "must name a local path" in refused(f"file://otherhost{allowed}/cat.png", policy).message


def test_file_byte_cap(image_dirs):
    allowed, _ = image_dirs
    error = refused((allowed / "cat.png").as_uri(), ImagePolicy(allowed_dirs=(allowed,), max_bytes=50))
    assert error.code == "image_too_large"


# -------------------------------------------------------------------------------------------- http(s)

LOOPBACK_OK = ImagePolicy(remote_fetch=True, allow_private_networks=True, fetch_timeout_s=1.0)


def test_remote_fetch_is_refused_by_default(image_server):
    error = refused(image_server.url("image.png"), ImagePolicy())
    assert "remote image URLs are disabled" in error.message and error.code == "image_url_not_allowed"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_loopback_is_refused_even_when_remote_fetch_is_on(image_server, host):
    error = refused(image_server.url("image.png", host), ImagePolicy(remote_fetch=True))
    assert "loopback, private, link-local" in error.message and "127.0.0.1" in error.message


def test_loopback_fetch_when_private_networks_are_allowed(image_server):
    loaded = load_image(image_server.url("image.png"), LOOPBACK_OK, PARAM)
    assert loaded.source_format == "PNG" and tuple(loaded.pixels[0, 0]) == (0, 128, 255)


def test_redirects_are_not_followed(image_server):
    error = refused(image_server.url("redirect"), LOOPBACK_OK)
    assert "redirects (302) to '/image.png'" in error.message and "not followed" in error.message


def test_http_errors_are_reported(image_server):
    assert "HTTP 404" in refused(image_server.url("missing"), LOOPBACK_OK).message


def test_declared_length_over_the_cap_is_refused_before_reading(image_server):
    error = refused(image_server.url("big-declared"), LOOPBACK_OK)
    assert "1,000,000,000 bytes" in error.message and error.code == "image_too_large"


def test_byte_cap_is_enforced_while_streaming(image_server):
    policy = ImagePolicy(remote_fetch=True, allow_private_networks=True, remote_max_bytes=100_000)
    error = refused(image_server.url("big-streamed"), policy)
    assert "more than 100,000 bytes" in error.message and error.code == "image_too_large"


@pytest.mark.parametrize("route", ["slow", "trickle"])
def test_fetch_time_is_limited(image_server, route):
    started = time.monotonic()
    error = refused(image_server.url(route), LOOPBACK_OK)
    assert time.monotonic() - started < 2.5
    assert "took longer than 1 s" in error.message and error.code == "image_fetch_failed"


def test_connects_to_the_checked_address_with_the_original_host_header(image_server, monkeypatch):
    real_getaddrinfo = socket.getaddrinfo
    lookups = []

    def fake_dns(host, *args, **kwargs):
        lookups.append(host)
        return real_getaddrinfo("127.0.0.1" if host == "images.example" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_dns)
    load_image(image_server.url("image.png", "images.example"), LOOPBACK_OK, PARAM)
    # resolved once: the connection goes to the checked address, never to the name again
    assert lookups.count("images.example") == 1
    assert image_server.seen_hosts[-1] == f"images.example:{image_server.port}"


def test_dns_rebinding_cannot_swap_the_address(monkeypatch):
    # The name resolves to a public address when checked and to loopback on any later lookup; the
    # connection must go to the checked address. Nothing really connects: create_connection is stubbed.
    answers = iter(["93.184.216.34", "127.0.0.1", "127.0.0.1"])
    monkeypatch.setattr(socket, "getaddrinfo",
                        lambda host, port, *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "",
                                                      (next(answers), port))])
    connected = []

    def no_network(address, *args, **kwargs):
        connected.append(address)
        raise ConnectionRefusedError("stubbed")

    monkeypatch.setattr(socket, "create_connection", no_network)
    error = refused("http://rebind.example/cat.png", ImagePolicy(remote_fetch=True, fetch_timeout_s=1.0))
    assert connected == [("93.184.216.34", 80)]
    assert "could not fetch" in error.message


@pytest.mark.parametrize("address, public", [
    ("8.8.8.8", True), ("2001:4860:4860::8888", True),
    ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False), ("224.0.0.1", False),
    ("240.0.0.1", False), ("255.255.255.255", False), ("::1", False), ("::", False), ("fe80::1", False),
    ("fc00::1", False), ("ff02::1", False), ("::ffff:127.0.0.1", False), ("::ffff:10.0.0.1", False),
    ("64:ff9b::a00:1", False), ("64:ff9b::808:808", True),
])
def test_address_classification(address, public):
    assert images._is_public(ipaddress.ip_address(address)) is public


def test_credentials_in_urls_are_refused():
    error = refused("http://user:pw@example.com/cat.png", ImagePolicy(remote_fetch=True))
    assert "credentials" in error.message
