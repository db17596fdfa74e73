"""Screenshots of the chat page for docs/: ``python scripts/ui_screenshots.py [--out docs]``.

Serves the project's tiny Gemma 4 test model (vision, tools, thinking; random weights) with ``edge serve``,
opens the page in Debian's chromium, imports an example conversation written for the pictures (a random
model's words would show nothing), and photographs it light and dark, at desktop and phone width. The
last picture is live: the demo model's real answer streaming into the page.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}

ANSWER = """The distance to the horizon grows with the square root of the height. For a lamp at height \
$h$ metres and an eye at $e$ metres, the light is visible up to about

$$d \\approx 3.57\\left(\\sqrt{h} + \\sqrt{e}\\right)\\ \\text{km}$$

| lighthouse | lamp height | seen from a deck at 5 m |
|---|---|---|
| Phare du Créac'h | 70 m | **38 km** |
| Fastnet | 49 m | 33 km |

```python
from math import sqrt

def visible_km(lamp_m: float, eye_m: float = 5.0) -> float:
    return 3.57 * (sqrt(lamp_m) + sqrt(eye_m))
```"""

THOUGHT = ("The user wants the geometric range. Horizon distance d = sqrt(2Rh) ≈ 3.57·sqrt(h) km with h in "
           "metres; add the observer's own horizon. Give the formula, two examples, and a helper.")


def example_conversations() -> list[dict]:
    def turns(conversation_id: str, title: str, messages: list[dict]) -> dict:
        stored, parent = {}, None
        for index, message in enumerate(messages):
            message_id = f"{conversation_id}-{index}"
            stored[message_id] = {"id": message_id, "parent": parent, "created": 1_760_000_000_000 + index,
                                  "content": "", **message}
            parent = message_id
        return {"id": conversation_id, "title": title, "created": 1_760_000_000_000,
                "updated": 1_760_000_000_000 + len(messages), "messages": stored, "leaf": parent}

    stats = {"prompt_tokens": 41, "completion_tokens": 212, "cached_tokens": 0, "reasoning_tokens": 48,
             "ttft_ms": 180, "tokens_per_second": 21.4}
    call = {"id": "call_5f1c", "name": "get_weather", "arguments": json.dumps({"city": "Brest", "unit": "celsius"})}
    return [
        turns("range", "How far can a lighthouse be seen?", [
            {"role": "user", "content": "How far away can the light of a lighthouse be seen?"},
            {"role": "assistant", "content": ANSWER, "reasoning": THOUGHT, "stats": stats},
        ]),
        turns("tools", "Weather at Brest", [
            {"role": "user", "content": "Is it a good evening to watch the Créac'h light?"},
            {"role": "assistant", "content": "", "tool_calls": [call], "finish_reason": "tool_calls"},
            {"role": "tool", "tool_call_id": "call_5f1c", "name": "get_weather",
             "content": '{"sky": "clear", "visibility_km": 40, "temperature": 14}'},
            {"role": "assistant", "content": "Yes — a clear sky and 40 km of visibility: the light will be "
                                             "seen well beyond its 38 km range.", "stats": stats},
        ]),
    ]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve(args: list[str], log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "edge.cli", "serve", "--port", str(port), *args],
                               stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"edge serve did not start:\n{log.read_text()}")


def photograph_examples(browser, url: str, work: Path, out: Path) -> None:
    export = work / "examples.json"
    export.write_text(json.dumps({"format": "edge-chat", "version": 1, "conversations": example_conversations()}))
    for theme in ("light", "dark"):
        for size_name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
            context = browser.new_context(viewport=viewport, device_scale_factor=1)
            page = context.new_page()
            page.goto(url)
            page.evaluate("theme => localStorage.setItem('edge.theme', theme)", theme)
            page.reload()
            page.wait_for_selector("#model option", state="attached")
            page.set_input_files("#import-file", str(export))
            page.wait_for_selector("article.assistant .markdown table")  # the first one imported is shown
            page.locator("details.thinking summary").click()
            if size_name == "desktop":
                page.click("#toggle-params")
                page.fill('#param-fields [name="temperature"]', "0.7")
                page.fill('#param-fields [name="max_tokens"]', "1024")
            page.fill("#input", "And from an aeroplane at 10 km?")
            page.screenshot(path=str(out / f"ui-{size_name}-{theme}.png"))
            if size_name == "desktop" and theme == "light":
                page.click("#toggle-params")
                page.click("#conversations li[data-id=tools] .conversation-title")
                page.wait_for_selector("article.tool")
                page.screenshot(path=str(out / "ui-tools-light.png"))
            context.close()


def photograph_streaming(browser, url: str, out: Path) -> None:
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("#model option", state="attached")
    page.click("#toggle-params")
    page.fill('#param-fields [name="max_tokens"]', "400")
    page.fill('#param-fields [name="top_k"]', "40")
    page.click("#toggle-params")
    page.fill("#input", "Write a short poem about a lighthouse keeper.")
    page.press("#input", "Enter")
    page.wait_for_function("() => (document.querySelector('article.assistant .markdown')?.textContent.length ?? 0) > 80", timeout=180_000)
    page.screenshot(path=str(out / "ui-streaming-light.png"))
    page.click("#stop")
    context.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from edge.convert.fixtures import build_test_models

    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        models = build_test_models(work / "models", "tiny")
        gemma4, gemma4_url = serve(["--model", str(models.text_gguf.parent), "--model-alias", "gemma4-tiny"],
                                   work / "gemma4.log")
        demo, demo_url = serve([], work / "demo.log")
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                photograph_examples(browser, gemma4_url, work, args.out)
                photograph_streaming(browser, demo_url, args.out)
                browser.close()
        finally:
            for process in (gemma4, demo):
                process.terminate()
                process.wait(timeout=20)
    print(f"screenshots written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    os.chdir(REPO)
    raise SystemExit(main())
