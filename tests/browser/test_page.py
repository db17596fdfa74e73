"""The chat page in chromium: on the demo model (Gemma 3 270M: text only, no thinking, no tools), and,
where only the page's own behaviour matters (branches, reload, keys), on the tiny Gemma 4, whose tokens
cost far less. Answers are kept to a token or a few: these tests check what the page does, never speed.
"""

from __future__ import annotations

import json

import httpx
import pytest
from playwright.sync_api import expect

from browser.conftest import conversation, wait_until
from edge.server.ui import CONTENT_SECURITY_POLICY

CANCEL_LINE = "client closed the stream; generation cancelled"
INJECTION = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
PWNED = "window.__pwned === undefined"


def api_answer(server, body: dict) -> dict:
    """The same request the page made, without streaming, straight to the API."""
    plain = {key: value for key, value in body.items() if key not in ("stream", "stream_options")}
    response = httpx.post(f"{server.base_url}/v1/chat/completions", json=plain, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_page_is_served_at_the_root_with_a_strict_policy(demo_server):
    response = httpx.get(f"{demo_server.base_url}/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY and "unsafe-inline" not in CONTENT_SECURITY_POLICY


def test_an_answer_streams_in_and_is_exactly_what_the_server_wrote(open_page, demo_server):
    chat = open_page(demo_server)
    chat.throttle()  # SSE frames arrive over many frames of the page, whatever the machine's speed
    chat.set_param("max_tokens", 40)  # a stream of about a second: it cannot arrive as one piece
    chat.set_param("seed", 7)
    chat.set_param("top_k", 40)
    chat.record_states()
    chat.send("Name three lighthouses.")

    body = chat.chat_bodies[-1]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["messages"] == [{"role": "user", "content": "Name three lighthouses."}]
    partial = {state["content"] for state in chat.states() if state["streaming"] and state["content"]}
    assert len(partial) >= 2, ("the answer should appear piece by piece while it streams", chat.states())

    expected = api_answer(demo_server, body)  # seeded: the same request gives the same tokens
    stored_answer = [m for m in chat.stored()[0]["messages"].values() if m["role"] == "assistant"][0]
    assert stored_answer["content"] == expected["choices"][0]["message"]["content"]
    stats = chat.last_answer().locator(".stats")
    usage = expected["usage"]
    expect(stats.locator("[data-stat=tokens]")).to_have_text(f"{usage['completion_tokens']} tokens")
    expect(stats.locator("[data-stat=prompt]")).to_have_text(f"{usage['prompt_tokens']} prompt")
    expect(stats.locator("[data-stat=ttft]")).to_contain_text("TTFT")
    expect(stats.locator("[data-stat=speed]")).to_contain_text("tok/s")


@pytest.mark.parametrize("how", ["stop button", "escape key"])
def test_stop_ends_the_answer_and_the_server_cancels_the_generation(open_page, demo_server, how):
    chat = open_page(demo_server)
    chat.set_param("max_tokens", 4000)  # minutes of decoding if the server did not stop
    chat.set_param("top_k", 40)
    cancels_before = demo_server.log().count(CANCEL_LINE)
    chat.send("Tell me a very long story about the sea.", wait=False)
    expect(chat.page.locator("#stop")).to_be_visible()
    expect(chat.last_answer().locator(".markdown")).not_to_be_empty()  # tokens are streaming
    if how == "stop button":
        chat.page.click("#stop")
    else:
        chat.page.keyboard.press("Escape")
    expect(chat.last_answer().locator(".notice")).to_have_text("stopped")
    expect(chat.page.locator("#send")).to_be_visible()

    def the_server_logged_the_cancel():
        return demo_server.log().count(CANCEL_LINE) > cancels_before

    wait_until(the_server_logged_the_cancel)
    # the server is free again: had it kept decoding 4000 tokens, this answer would wait behind them
    chat.set_param("max_tokens", 2)
    chat.send("And now?")
    assert not chat.last_answer().locator(".error").count()


def test_reload_keeps_the_conversation_and_the_prefix_cache_is_reported(open_page, gemma4_server):
    chat = open_page(gemma4_server)
    chat.set_param("max_tokens", 1)
    chat.send("Remember the lighthouse.")
    chat.send("Which lighthouse?")
    cached = chat.page.locator("article.assistant").nth(1).locator("[data-stat=cached]").inner_text()
    assert int(cached.split()[0]) > 0, "the second turn reuses the first turn's KV cache"
    before = chat.page.locator("#messages").inner_text()

    chat.page.reload()
    expect(chat.page.locator("article.message")).to_have_count(4)
    assert chat.page.locator("#messages").inner_text() == before
    expect(chat.page.locator("#conversations li.active .conversation-title")).to_have_text("Remember the lighthouse.")


def test_html_typed_by_the_user_is_shown_as_text_and_never_runs(open_page, gemma4_server):
    chat = open_page(gemma4_server)
    chat.set_param("max_tokens", 1)
    typed = f"{INJECTION} and **stars**"
    chat.send(typed)
    for _ in range(2):  # as sent, then as stored and reloaded
        expect(chat.page.locator("article.user .text")).to_have_text(typed)
        assert chat.page.locator("#messages img, #messages script").count() == 0
        assert chat.page.evaluate(PWNED)
        expect(chat.page.locator("#conversations li.active .conversation-title")).to_contain_text("<img src=x")
        chat.page.reload()
        chat.page.wait_for_selector("article.user")


HOSTILE_ANSWER = "\n\n".join([
    INJECTION,
    '<iframe src="javascript:window.__pwned=3"></iframe><svg onload="window.__pwned=4"></svg>',
    '[click me](javascript:window.__pwned=5) and <a href="javascript:window.__pwned=6">raw link</a>',
    "![tracking pixel](http://evil.example/pixel.png)",
    '<div style="position:fixed;inset:0">overlay</div><form action="http://evil.example"><button>go</button></form>',
    "$\\href{javascript:window.__pwned=7}{x}$ and $$\\htmlData{onerror=x}{y}$$",
    "```html\n<script>window.__pwned=8</script>\n```",
])


def test_html_in_a_stored_answer_is_shown_as_text_and_never_runs(open_page, demo_server, tmp_path):
    chat = open_page(demo_server)
    chat.import_conversations(tmp_path, [conversation(f"title {INJECTION}", [
        {"role": "user", "content": f"user {INJECTION}"},
        {"role": "assistant", "content": HOSTILE_ANSWER, "reasoning": f"thought {INJECTION}"},
    ])])
    for _ in range(2):  # as imported, then as stored in IndexedDB and reloaded
        messages = chat.page.locator("#messages")
        expect(messages).to_contain_text('<img src=x onerror="window.__pwned=1">')
        expect(messages).to_contain_text("<script>window.__pwned=8</script>")
        assert chat.page.locator("#messages img, #messages script, #messages iframe, #messages svg, "
                                 "#messages form, #messages [style]").count() == 0
        handlers = chat.page.evaluate(
            "[...document.querySelectorAll('*')].flatMap(n => [...n.attributes].map(a => a.name))"
            ".filter(name => name.startsWith('on'))")
        assert handlers == []
        hrefs = chat.page.evaluate("[...document.querySelectorAll('#messages a')].map(a => a.getAttribute('href'))")
        assert not [href for href in hrefs if href and href.lower().startswith("javascript")], hrefs
        assert chat.page.evaluate(PWNED)
        chat.page.reload()
        chat.page.wait_for_selector("article.assistant")
    assert chat.foreign_requests == []  # the markdown picture was never fetched


def test_markdown_code_with_copy_and_math(open_page, demo_server, tmp_path):
    code = "def area(r):\n    return 3.14159 * r ** 2"
    answer = (f"Here is **code**:\n\n```python\n{code}\n```\n\nInline $x^2 + y^2 = r^2$ and a block:\n\n"
              "$$\\int_0^1 x\\,dx = \\frac{1}{2}$$\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nIt costs $5 and $10.")
    chat = open_page(demo_server)
    chat.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=chat.origin)
    chat.import_conversations(tmp_path, [conversation("maths", [
        {"role": "user", "content": "show me"}, {"role": "assistant", "content": answer}])])
    markdown = chat.last_answer().locator(".markdown")
    expect(markdown.locator("strong")).to_have_text("code")
    expect(markdown.locator(".code .code-bar span")).to_have_text("python")
    expect(markdown.locator(".code .hljs-keyword").first).to_have_text("def")
    expect(markdown.locator("math")).to_have_count(2)
    expect(markdown.locator("math[display=block]")).to_have_count(1)
    expect(markdown.locator("math annotation")).to_have_count(0)  # the TeX source is not shown twice
    expect(markdown.locator("table td").first).to_have_text("1")
    expect(markdown).to_contain_text("It costs $5 and $10.")  # dollars are not math
    markdown.locator(".copy").click()
    expect(chat.page.locator("#hint")).to_have_text("copied")
    assert chat.page.evaluate("navigator.clipboard.readText()") == code


def test_conversations_list_search_rename_delete_export_import(open_page, demo_server, tmp_path, browser):
    chat = open_page(demo_server)
    chat.import_conversations(tmp_path, [
        conversation("Lighthouses of Brittany", [{"role": "user", "content": "Which is the tallest?"}], "a"),
        conversation("Bread", [{"role": "user", "content": "A sourdough starter, please."}], "b"),
    ])
    items = chat.page.locator("#conversations li")
    expect(items).to_have_count(2)
    chat.page.fill("#search", "brittany")
    expect(items).to_have_count(1)
    chat.page.fill("#search", "SOURDOUGH")  # message text counts too
    expect(items.locator(".conversation-title")).to_have_text(["Bread"])
    chat.page.fill("#search", "")

    chat.page.locator("#conversations li[data-id=b] [data-action=rename-conversation]").click()
    chat.page.fill("#dialog-input", "Sourdough")
    chat.page.click("#dialog-ok")
    expect(chat.page.locator("#conversations li[data-id=b] .conversation-title")).to_have_text("Sourdough")
    chat.page.locator("#conversations li[data-id=a] [data-action=delete-conversation]").click()
    chat.page.click("#dialog-ok")
    expect(items).to_have_count(1)
    chat.page.reload()
    expect(chat.page.locator("#conversations .conversation-title")).to_have_text(["Sourdough"])

    with chat.page.expect_download() as download:
        chat.page.click("#export")
    exported = json.loads(open(download.value.path()).read())
    assert exported["format"] == "edge-chat"
    assert [c["title"] for c in exported["conversations"]] == ["Sourdough"]

    chat.page.click("#new-chat")
    expect(chat.page.locator(".empty")).to_be_visible()

    elsewhere = open_page(demo_server)  # a fresh browser profile: empty storage
    expect(elsewhere.page.locator("#conversations li")).to_have_count(0)
    elsewhere.page.set_input_files("#import-file", download.value.path())
    expect(elsewhere.page.locator("#conversations .conversation-title")).to_have_text(["Sourdough"])
    expect(elsewhere.page.locator("article.user .text")).to_have_text("A sourdough starter, please.")


def test_a_file_that_is_not_an_export_is_refused(open_page, demo_server, tmp_path):
    chat = open_page(demo_server)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "edge-chat", "conversations": [{"id": 3}]}))
    chat.page.set_input_files("#import-file", str(bad))
    expect(chat.page.locator("#hint")).to_contain_text("cannot import")
    expect(chat.page.locator("#conversations li")).to_have_count(0)


def test_edit_and_regenerate_keep_every_branch(open_page, gemma4_server):
    chat = open_page(gemma4_server)
    chat.set_param("max_tokens", 2)
    chat.send("First question")
    first_answer = chat.last_answer().locator(".bubble").inner_text()

    chat.last_answer().locator("[data-action=regenerate]").click()
    chat.wait_for_answers(1)
    expect(chat.last_answer().locator(".branch-count")).to_have_text("2/2")
    chat.last_answer().locator("[data-action=previous-branch]").click()
    expect(chat.last_answer().locator(".branch-count")).to_have_text("1/2")
    expect(chat.last_answer().locator(".bubble")).to_have_text(first_answer)

    user = chat.page.locator("article.user")
    user.locator("[data-action=edit]").click()
    chat.page.fill("article.user .editor textarea", "Second question")
    chat.page.click("article.user [data-action=save-edit]")
    chat.wait_for_answers(1)
    expect(user.locator(".text")).to_have_text("Second question")
    expect(user.locator(".branch-count")).to_have_text("2/2")
    user.locator("[data-action=previous-branch]").click()
    expect(user.locator(".text")).to_have_text("First question")
    expect(chat.last_answer().locator(".branch-count")).to_have_text("2/2")  # its latest answer is shown

    messages = list(chat.stored()[0]["messages"].values())
    assert sorted(m["role"] for m in messages) == ["assistant"] * 3 + ["user"] * 2
    chat.page.reload()
    expect(chat.page.locator("article.user .text")).to_have_text("First question")


def test_every_parameter_of_the_panel_reaches_the_request(open_page, demo_server):
    chat = open_page(demo_server)
    values = {"system": "You are terse.", "temperature": 0.5, "top_p": 0.9, "min_p": 0.05, "top_k": 40,
              "max_tokens": 3, "seed": 11, "stop": "User:\nEND", "presence_penalty": 0.2,
              "frequency_penalty": 0.1, "repetition_penalty": 1.1, "logit_bias": '{"1": -100}',
              "logprobs": True, "top_logprobs": 3}
    for key, value in values.items():
        chat.set_param(key, value)
    for hidden in ("tools", "tool_choice", "reasoning_effort", "thinking_budget", "image_detail"):
        expect(chat.page.locator(f'#param-fields [data-key="{hidden}"]')).to_be_hidden()  # the model cannot
    chat.send("Hello")
    body = chat.chat_bodies[-1]
    assert body["messages"][0] == {"role": "system", "content": "You are terse."}
    expected = {key: value for key, value in values.items() if key not in ("system", "stop", "logit_bias")}
    assert {key: body[key] for key in expected} == expected
    assert body["stop"] == ["User:", "END"]
    assert body["logit_bias"] == {"1": -100}
    assert "enable_thinking" not in body and "tools" not in body
    assert not chat.last_answer().locator(".error").count()

    # the per-token view: one span per generated token, with its probability and the alternatives
    answer = chat.last_answer()
    answer.locator("[data-action=tokens]").click()
    tokens = answer.locator(".tokens .token")
    expect(tokens).to_have_count(int(answer.locator("[data-stat=tokens]").inner_text().split()[0]))
    title = tokens.first.get_attribute("title").split("\n")
    assert title[0].startswith("p ") and "logprob" in title[0] and len(title) == 4

    # panel values survive a reload
    chat.page.reload()
    chat.show_params(True)
    expect(chat.page.locator('#param-fields [name="seed"]')).to_have_value("11")


def test_a_value_the_server_refuses_is_reported_with_its_parameter(open_page, demo_server):
    chat = open_page(demo_server)
    chat.expected_console.append("status of 400")
    chat.set_param("temperature", 5)
    chat.set_param("logit_bias", "{not json")
    chat.send("Hello", wait=False)
    expect(chat.page.locator('#param-fields [data-key="logit_bias"] .field-error')).to_contain_text("not JSON")
    expect(chat.page.locator("article")).to_have_count(0)  # nothing was sent
    chat.set_param("logit_bias", "")
    chat.send("Hello")
    expect(chat.last_answer().locator(".error")).to_contain_text("temperature")


def test_no_image_button_and_no_thinking_switch_without_the_capability(open_page, demo_server):
    chat = open_page(demo_server)
    expect(chat.page.locator("#attach")).to_be_hidden()
    expect(chat.page.locator("#thinking-switch")).to_be_hidden()
    paste_png(chat.page)
    expect(chat.page.locator("#hint")).to_contain_text("no vision projector")
    expect(chat.page.locator("#attachments img")).to_have_count(0)


def paste_png(page, colour: str = "red"):
    """Pastes a small PNG drawn in the page into the message box, as a clipboard paste would."""
    page.evaluate("""async (colour) => {
      const canvas = new OffscreenCanvas(32, 24);
      const context = canvas.getContext('2d');
      context.fillStyle = colour;
      context.fillRect(0, 0, 32, 24);
      const blob = await canvas.convertToBlob({type: 'image/png'});
      const data = new DataTransfer();
      data.items.add(new File([blob], 'pasted.png', {type: 'image/png'}));
      document.getElementById('input').dispatchEvent(
        new ClipboardEvent('paste', {clipboardData: data, bubbles: true, cancelable: true}));
    }""", colour)


def test_api_key_is_asked_once_and_kept(open_page, gemma4_models, tmp_path):
    from tests.conftest import start_server, stop_server

    server = start_server(["--model", str(gemma4_models.text_gguf.parent), "--api-key", "sesame"],
                          tmp_path / "server.log")
    try:
        chat = open_page(server, ready=False)
        chat.expected_console.append("status of 401")
        expect(chat.page.locator("#dialog")).to_be_visible()
        chat.page.fill("#dialog-input", "wrong")
        chat.page.click("#dialog-ok")
        expect(chat.page.locator("#dialog-text")).to_contain_text("refused")
        chat.page.fill("#dialog-input", "sesame")
        chat.page.press("#dialog-input", "Enter")
        expect(chat.page.locator("#model option")).to_have_count(1)
        chat.set_param("max_tokens", 1)
        with chat.page.expect_request("**/v1/chat/completions") as request:
            chat.send("Hello")
        assert request.value.headers["authorization"] == "Bearer sesame"
        chat.page.reload()
        expect(chat.page.locator("#model option")).to_have_count(1)
        expect(chat.page.locator("#dialog")).to_be_hidden()
    finally:
        stop_server(server)


def test_themes_and_phone_width(open_page, demo_server):
    chat = open_page(demo_server, viewport={"width": 390, "height": 844})
    page = chat.page
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    sidebar = page.locator("#sidebar")
    expect(sidebar).not_to_be_in_viewport()  # a drawer, off screen until asked for
    page.click("#toggle-sidebar")
    expect(sidebar).to_be_in_viewport()
    page.click("#new-chat")  # choosing closes the drawer
    expect(sidebar).not_to_be_in_viewport()
    expect(page.locator("#input")).to_be_in_viewport()
    expect(page.locator("#send")).to_be_in_viewport()

    themes = []
    page.click("#toggle-sidebar")
    for _ in range(3):
        page.click("#theme")
        themes.append((page.locator("#theme").inner_text(), page.evaluate("document.documentElement.dataset.theme"),
                       page.evaluate("getComputedStyle(document.body).backgroundColor")))
    assert [theme[0] for theme in themes] == ["Theme: light", "Theme: dark", "Theme: system"]
    assert themes[0][1] == "light" and themes[1][1] == "dark" and themes[0][2] != themes[1][2]
    page.click("#theme")  # light again, kept across a reload
    page.reload()
    assert page.evaluate("document.documentElement.dataset.theme") == "light"


def test_enter_sends_and_shift_enter_adds_a_line(open_page, gemma4_server):
    chat = open_page(gemma4_server)
    chat.set_param("max_tokens", 1)
    box = chat.page.locator("#input")
    box.click()
    box.type("first line")
    box.press("Shift+Enter")
    box.type("second line")
    expect(box).to_have_value("first line\nsecond line")
    expect(chat.page.locator("article")).to_have_count(0)
    box.press("Enter")
    chat.wait_for_answers(1)
    expect(chat.page.locator("article.user .text")).to_have_text("first line\nsecond line")
    expect(box).to_have_value("")
