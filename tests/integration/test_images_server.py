"""Image input through the real server and the vision projector of the tiny Gemma 4, with the openai SDK."""

from __future__ import annotations

import base64
import functools
import http.server
import io
import threading

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.conftest import start_server, stop_server
from edge.runtime.images import ImagePolicy, load_image

MODEL = "gemma4-tiny"
FRAMING_TOKENS = 2  # mtmd writes <|image> before and <image|> after the soft tokens


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def data_url(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


RED = png(Image.new("RGB", (200, 150), (220, 20, 20)))
NOISE = png(Image.fromarray(np.random.default_rng(0).integers(0, 255, (150, 200, 3), dtype=np.uint8)))


def ask(*images: str, detail: str = "low", text: str = "What is in the picture?") -> list[dict]:
    parts = [{"type": "text", "text": text}]
    parts += [{"type": "image_url", "image_url": {"url": url, "detail": detail}} for url in images]
    return [{"role": "user", "content": parts}]


def complete(client, messages, **kwargs):
    return client.chat.completions.create(model=MODEL, messages=messages, max_tokens=kwargs.pop("max_tokens", 8),
                                          extra_body={"enable_thinking": False}, **kwargs)


@pytest.mark.parametrize("detail", ["low", "auto"])
def test_an_image_adds_its_soft_tokens_to_the_prompt(gemma4_client, detail):
    without = complete(gemma4_client, ask(), max_tokens=1).usage.prompt_tokens
    with_image = complete(gemma4_client, ask(data_url(NOISE), detail=detail), max_tokens=1).usage.prompt_tokens
    expected = load_image(data_url(NOISE), ImagePolicy(), "x", detail).n_tokens + FRAMING_TOKENS
    assert with_image - without == expected


def test_same_image_and_seed_give_the_same_output(gemma4_client):
    first = complete(gemma4_client, ask(data_url(NOISE)), seed=9, temperature=1.0).choices[0].message.content
    second = complete(gemma4_client, ask(data_url(NOISE)), seed=9, temperature=1.0).choices[0].message.content
    assert first == second


def test_two_images_keep_their_order(gemma4_client):
    def output(*urls):
        return complete(gemma4_client, ask(*urls), seed=4, temperature=0, max_tokens=12).choices[0].message.content

    assert output(data_url(RED), data_url(NOISE)) != output(data_url(NOISE), data_url(RED))


def test_images_across_turns_are_all_counted(gemma4_client):
    one = complete(gemma4_client, ask(data_url(RED)), max_tokens=1).usage.prompt_tokens
    history = ask(data_url(RED)) + [{"role": "assistant", "content": "A red square."}] + ask(data_url(NOISE))
    two = complete(gemma4_client, history, max_tokens=1).usage.prompt_tokens
    image = load_image(data_url(NOISE), ImagePolicy(), "x", "low").n_tokens + FRAMING_TOKENS
    assert two > one + image


def error_for(server, messages) -> httpx.Response:
    return httpx.post(f"{server.base_url}/v1/chat/completions", timeout=60,
                      json={"model": MODEL, "messages": messages, "max_tokens": 2, "enable_thinking": False})


BAD_IMAGES = [
    ("data:image/png;base64,!!!not-base64!!!", "invalid_image"),
    (data_url(b"this is plain text, not an image"), None),
    (data_url(RED[:60]), None),  # truncated PNG
    ("ftp://example.com/cat.png", "image_url_not_allowed"),
    ("file:///etc/passwd", "image_url_not_allowed"),
    ("http://127.0.0.1:9/cat.png", "image_url_not_allowed"),
    ("https://example.com/cat.png", "image_url_not_allowed"),
]


@pytest.mark.parametrize("url, code", BAD_IMAGES)
def test_bad_images_are_400_naming_the_part_and_the_server_goes_on(gemma4_server, gemma4_client, url, code):
    response = error_for(gemma4_server, ask(url))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "messages[0].content[1].image_url"
    if code:
        assert error["code"] == code
    assert complete(gemma4_client, ask(data_url(RED)), max_tokens=1).choices[0].message is not None


def test_too_many_images_and_a_pixel_bomb_are_refused(gemma4_server):
    response = error_for(gemma4_server, ask(*[data_url(RED)] * 17))
    assert response.status_code == 400 and response.json()["error"]["param"] == "messages"
    bomb = Image.new("1", (10_000, 6_000))  # 60 MP in a few kB of PNG
    response = error_for(gemma4_server, ask(data_url(png(bomb))))
    assert response.status_code == 400 and "pixels" in response.json()["error"]["message"]


def test_model_without_projector_says_so(demo_server, demo_model_id):
    response = httpx.post(f"{demo_server.base_url}/v1/chat/completions", timeout=60, json={
        "model": demo_model_id, "messages": ask(data_url(RED)), "max_tokens": 2})
    assert response.status_code == 400
    assert "vision projector" in response.json()["error"]["message"]


@pytest.fixture(scope="module")
def picture_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pictures")
    (folder / "red.png").write_bytes(RED)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def permissive_server(tmp_path_factory, gemma4_models, picture_server):
    """A server whose operator allowed one image folder and remote fetch, loopback included (test only)."""
    folder, _ = picture_server
    server = start_server(["--model", str(gemma4_models.text_gguf.parent), "--model-alias", MODEL,
                           "--image-dirs", str(folder), "--remote-images"],
                          tmp_path_factory.mktemp("permissive") / "server.log",
                          env={"EDGE_REMOTE_IMAGES_ALLOW_PRIVATE": "1"})
    yield server
    stop_server(server)


def test_file_urls_inside_allowed_dirs_and_remote_fetch_are_honoured_when_enabled(permissive_server, picture_server):
    folder, base = picture_server
    for url in (f"file://{folder}/red.png", f"{base}/red.png"):
        response = error_for(permissive_server, ask(url))
        assert response.status_code == 200, response.text
    escape = error_for(permissive_server, ask(f"file://{folder}/../../etc/passwd"))
    assert escape.status_code == 400 and escape.json()["error"]["code"] == "image_url_not_allowed"
    missing = error_for(permissive_server, ask(f"{base}/absent.png"))
    assert missing.status_code == 400


def test_images_count_against_the_context_window(gemma4_server):
    """Eight images at the high budget (~1,066 tokens each) do not fit the 8,192-token window."""
    response = httpx.post(f"{gemma4_server.base_url}/v1/chat/completions", timeout=120, json={
        "model": MODEL, "messages": ask(*[data_url(NOISE)] * 8, detail="high"), "max_tokens": 2,
        "enable_thinking": False})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "context_length_exceeded" and "8192" in error["message"]
