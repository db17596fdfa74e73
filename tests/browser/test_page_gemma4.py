"""The chat page on the tiny random Gemma 4 with its vision projector: thinking, images, tools, JSON.

The weights are random, so what is asserted is what the page must do with whatever the server sends:
the same thought, calls and JSON the API returns for the same request, shown as such.
"""

from __future__ import annotations

import io
import json

import httpx
import jsonschema
import pytest
from PIL import Image
from playwright.sync_api import expect

from browser.test_page import api_answer, paste_png

WEATHER = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12},
                                            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
           "required": ["city", "unit"]}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city.",
                                           "parameters": WEATHER}}]
ANSWER_SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 10},
                                                  "age": {"type": "integer"},
                                                  "colour": {"type": "string", "enum": ["red", "green"]}},
                 "required": ["name", "age", "colour"], "additionalProperties": False}


@pytest.fixture(scope="module")
def channel_token(gemma4_models) -> int:
    """The id of <|channel>, the token that opens Gemma 4's thought channel, in the test model."""
    from gguf import GGUFReader

    field = GGUFReader(gemma4_models.text_gguf).fields["tokenizer.ggml.tokens"]
    tokens = [bytes(field.parts[index]).decode() for index in field.data]
    return tokens.index("<|channel>")


def test_the_page_offers_what_the_model_can_do(open_page, gemma4_server):
    chat = open_page(gemma4_server)
    expect(chat.page.locator("#badges .badge")).to_have_text(["vision", "tools", "thinking", "8192 ctx"])
    expect(chat.page.locator("#attach")).to_be_visible()
    expect(chat.page.locator("#thinking")).to_be_checked()  # on by default, as on the hosted API
    chat.show_params(True)
    for key in ("tools", "tool_choice", "reasoning_effort", "thinking_budget", "image_detail"):
        expect(chat.page.locator(f'#param-fields [data-key="{key}"]')).to_be_visible()


def test_the_thought_streams_into_a_collapsible_block(open_page, gemma4_server, channel_token):
    chat = open_page(gemma4_server)
    chat.throttle()
    # a random model rarely opens its thought channel; a bias on <|channel> makes it do so
    for key, value in {"max_tokens": 32, "seed": 1, "logit_bias": json.dumps({str(channel_token): 8})}.items():
        chat.set_param(key, value)
    chat.record_states()
    chat.send("Think first.")
    body = chat.chat_bodies[-1]
    assert body["enable_thinking"] is True
    expected = api_answer(gemma4_server, body)["choices"][0]["message"]
    assert expected.get("reasoning_content"), "the biased request must think (precondition of this test)"

    answer = chat.last_answer()
    thinking = answer.locator("details.thinking")
    expect(thinking.locator(".thinking-text")).to_have_text(expected["reasoning_content"])
    streamed = [state for state in chat.states() if state["streaming"] and state["thinking"]]
    assert streamed and streamed[0]["thinkingOpen"], "the thought is shown, open, while it streams"
    assert expected["reasoning_content"] not in answer.locator(".markdown").all_inner_texts()
    expect(thinking).not_to_have_attribute("open", "")  # folded once the answer is complete
    thinking.locator("summary").click()
    expect(thinking).to_have_attribute("open", "")
    stored = [m for m in chat.stored()[0]["messages"].values() if m["role"] == "assistant"][0]
    assert stored["reasoning"] == expected["reasoning_content"]
    assert stored["content"] == (expected["content"] or "")
    reasoning_stat = answer.locator("[data-stat=reasoning]")
    expect(reasoning_stat).to_contain_text("thinking")


def test_the_thinking_switch_and_the_reasoning_effort(open_page, gemma4_server):
    chat = open_page(gemma4_server)
    chat.set_param("max_tokens", 3)
    chat.show_params(False)
    chat.page.uncheck("#thinking")
    chat.send("No thinking.")
    assert chat.chat_bodies[-1]["enable_thinking"] is False
    assert chat.last_answer().locator("details.thinking").count() == 0

    chat.set_param("reasoning_effort", "high")
    expect(chat.page.locator("#thinking")).to_be_checked()  # the effort decides, and the switch shows it
    chat.send("Think hard.")
    body = chat.chat_bodies[-1]
    assert body["reasoning_effort"] == "high" and "enable_thinking" not in body

    chat.show_params(False)
    chat.page.uncheck("#thinking")  # the switch wins again and clears the effort
    chat.show_params(True)
    expect(chat.page.locator('#param-fields [name="reasoning_effort"]')).to_have_value("")


def png(colour: str, size=(40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def drop_png(page, colour: str):
    """Drags a PNG over the page and drops it, as a file dragged from the desktop would be."""
    page.evaluate("""async (colour) => {
      const canvas = new OffscreenCanvas(24, 24);
      const context = canvas.getContext('2d');
      context.fillStyle = colour;
      context.fillRect(0, 0, 24, 24);
      const blob = await canvas.convertToBlob({type: 'image/png'});
      const data = new DataTransfer();
      data.items.add(new File([blob], 'dropped.png', {type: 'image/png'}));
      const target = document.getElementById('messages');
      target.dispatchEvent(new DragEvent('dragover', {dataTransfer: data, bubbles: true, cancelable: true}));
      window.__overlayShown = !document.getElementById('drop-overlay').hidden;
      target.dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true}));
    }""", colour)


def test_images_attached_by_button_paste_and_drop_are_sent_and_shown(open_page, gemma4_server):
    chat = open_page(gemma4_server)
    chat.set_param("max_tokens", 3)
    chat.set_param("image_detail", "low")
    chat.page.set_input_files("#attach-file", files=[
        {"name": "red.png", "mimeType": "image/png", "buffer": png("red")},
        {"name": "blue.png", "mimeType": "image/png", "buffer": png("blue")}])
    paste_png(chat.page, "green")
    drop_png(chat.page, "yellow")
    assert chat.page.evaluate("window.__overlayShown")
    expect(chat.page.locator("#drop-overlay")).to_be_hidden()
    thumbnails = chat.page.locator("#attachments .attachment")
    expect(thumbnails).to_have_count(4)
    thumbnails.nth(1).locator("button").click()  # remove the blue one
    expect(thumbnails).to_have_count(3)

    chat.send("What colours are these?")
    content = chat.chat_bodies[-1]["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "What colours are these?"}
    images = [part["image_url"] for part in content[1:]]
    assert len(images) == 3 and all(image["url"].startswith("data:image/png;base64,") for image in images)
    assert {image["detail"] for image in images} == {"low"}
    expect(chat.page.locator("article.user .images img")).to_have_count(3)
    expect(thumbnails).to_have_count(0)
    assert not chat.last_answer().locator(".error").count()
    prompt_tokens = int(chat.last_answer().locator("[data-stat=prompt]").inner_text().split()[0])
    assert prompt_tokens > 3 * 70, "three low-detail images are at least 70 soft tokens each"

    chat.page.reload()  # the pictures are kept with the conversation
    expect(chat.page.locator("article.user .images img")).to_have_count(3)


def test_tool_calls_are_shown_and_answered_by_hand(open_page, gemma4_server):
    chat = open_page(gemma4_server)
    for key, value in {"tools": json.dumps(TOOLS), "tool_choice": "required", "max_tokens": 200, "seed": 3}.items():
        chat.set_param(key, value)
    chat.show_params(False)
    chat.page.uncheck("#thinking")
    chat.send("What's the weather in Paris?")
    body = chat.chat_bodies[-1]
    assert body["tools"] == TOOLS and body["tool_choice"] == "required"

    answer = chat.last_answer()
    expect(answer.locator(".tool-call .tool-name")).to_have_text("get_weather")
    stored = [m for m in chat.stored()[0]["messages"].values() if m["role"] == "assistant"][0]
    (call,) = stored["tool_calls"]
    arguments = json.loads(call["arguments"])
    jsonschema.validate(arguments, WEATHER)
    assert json.loads(answer.locator(".tool-call .tool-body").inner_text()) == arguments
    assert stored["finish_reason"] == "tool_calls"

    chat.set_param("tool_choice", "none")  # now let it answer in words
    chat.set_param("max_tokens", 4)
    chat.show_params(False)
    answer.locator(".tool-answers textarea").fill('{"temperature": 21, "sky": "clear"}')
    answer.locator("[data-action=tool-results]").click()
    chat.wait_for_answers(2)
    sent = chat.chat_bodies[-1]["messages"]
    assert sent[-2]["tool_calls"][0]["id"] == call["id"]
    assert sent[-1] == {"role": "tool", "tool_call_id": call["id"], "name": "get_weather",
                        "content": '{"temperature": 21, "sky": "clear"}'}
    result = chat.page.locator("article.tool")
    expect(result.locator(".tool-head")).to_have_text("Result of get_weather")
    expect(result.locator(".tool-body")).to_have_text('{"temperature": 21, "sky": "clear"}')
    expect(chat.page.locator(".tool-answers")).to_have_count(0)  # answered
    assert not chat.last_answer().locator(".error").count()


def test_json_schema_mode_shows_the_structured_answer(open_page, gemma4_server):
    chat = open_page(gemma4_server)
    for key, value in {"response_format": "json_schema", "json_schema": json.dumps(ANSWER_SCHEMA),
                       "max_tokens": 200, "seed": 5}.items():
        chat.set_param(key, value)
    chat.show_params(False)
    chat.page.uncheck("#thinking")
    chat.send("Describe a person.")
    body = chat.chat_bodies[-1]
    assert body["response_format"] == {"type": "json_schema", "json_schema": {"name": "answer", "schema": ANSWER_SCHEMA}}
    box = chat.last_answer().locator(".structured")
    expect(box).to_have_attribute("data-valid", "true")
    expect(box.locator(".structured-head")).to_have_text("Structured answer · valid JSON")
    stored = [m for m in chat.stored()[0]["messages"].values() if m["role"] == "assistant"][0]
    answer = json.loads(stored["content"])
    jsonschema.validate(answer, ANSWER_SCHEMA)
    assert json.loads(box.locator("pre").inner_text()) == answer


def test_model_capabilities_in_the_model_list(gemma4_server, demo_server):
    gemma4 = httpx.get(f"{gemma4_server.base_url}/v1/models").json()["data"][0]
    assert gemma4["capabilities"] == {"vision": True, "tools": True, "thinking": True, "context_size": 8192}
    one = httpx.get(f"{gemma4_server.base_url}/v1/models/gemma4-tiny").json()
    assert one["capabilities"] == gemma4["capabilities"]
    demo = httpx.get(f"{demo_server.base_url}/v1/models").json()["data"][0]
    assert demo["capabilities"] == {"vision": False, "tools": False, "thinking": False, "context_size": 8192}
