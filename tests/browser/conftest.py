"""The chat page in a real browser: Debian's chromium driven by playwright, against the real server.

Every page runs in a fresh browser context (empty storage) that refuses and records any request to
another origin, and records console errors and uncaught exceptions; both lists must be empty when the
test ends unless the test names the console lines it expects.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 60_000  # generous: the machine is shared; nothing here measures speed


@pytest.fixture(scope="package")  # playwright's loop ends with these tests, before any other suite runs
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: the browser tests need Debian's chromium "
                    "(./dev.sh test installs it; or apt-get install -y chromium)", pytrace=False)
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which(CHROMIUM) or CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class ChatPage:
    """One browser context on one server's page, with helpers named after what a user does."""

    def __init__(self, browser, server, viewport=None):
        self.server = server
        self.origin = server.base_url
        self.context = browser.new_context(viewport=viewport or {"width": 1280, "height": 800},
                                           accept_downloads=True)
        self.context.set_default_timeout(TIMEOUT_MS)
        self.foreign_requests: list[str] = []
        self.console_errors: list[str] = []
        self.expected_console: list[str] = []
        self.chat_bodies: list[dict] = []
        self.context.route("**/*", self._only_same_origin)
        self.page = self.context.new_page()
        self.page.on("console", lambda message: message.type == "error" and self.console_errors.append(message.text))
        self.page.on("pageerror", lambda error: self.console_errors.append(f"uncaught: {error}"))
        self.page.on("request", self._record_chat_body)

    def _only_same_origin(self, route):
        url = route.request.url
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" == self.origin:
            route.continue_()
        else:
            self.foreign_requests.append(url)
            route.abort()

    def _record_chat_body(self, request):
        if request.method == "POST" and request.url.endswith("/v1/chat/completions"):
            self.chat_bodies.append(json.loads(request.post_data))

    # -- what a user does ----------------------------------------------------------------------

    def open(self, ready: bool = True):
        """Loads the page; `ready` waits for the model list (a keyed server gives it only after the key)."""
        self.page.goto(self.origin + "/")
        if ready:
            self.page.wait_for_selector("#model option", state="attached")
        return self

    def set_param(self, key: str, value):
        self.show_params(True)
        field = self.page.locator(f'#param-fields [name="{key}"]')
        if isinstance(value, bool):
            field.set_checked(value)
        elif field.evaluate("node => node.tagName") == "SELECT":
            field.select_option(str(value))
        else:
            field.fill(str(value))

    def show_params(self, shown: bool):
        if self.page.locator("#params").evaluate("node => node.classList.contains('open')") != shown:
            self.page.click("#toggle-params")

    def type_message(self, text: str):
        self.page.fill("#input", text)

    def send(self, text: str, wait: bool = True):
        finished = self.page.locator("article.assistant .stats").count()
        self.type_message(text)
        self.page.press("#input", "Enter")
        if wait:
            self.wait_for_answers(finished + 1)

    def wait_for_answers(self, count: int):
        """An answer is finished once its figures are shown (they come from the final usage)."""
        from playwright.sync_api import expect

        expect(self.page.locator("article.assistant .stats")).to_have_count(count, timeout=TIMEOUT_MS)

    def last_answer(self):
        return self.page.locator("article.assistant").last

    def import_conversations(self, tmp_path: Path, conversations: list[dict]) -> None:
        path = tmp_path / "import.json"
        path.write_text(json.dumps({"format": "edge-chat", "version": 1, "conversations": conversations}))
        self.page.set_input_files("#import-file", str(path))
        self.page.wait_for_selector("#hint:has-text('imported')")

    def throttle(self, bytes_per_second: int = 3000):
        """Slows the page's downloads so that a streamed answer arrives over many frames."""
        session = self.context.new_cdp_session(self.page)
        session.send("Network.enable")
        session.send("Network.emulateNetworkConditions", {
            "offline": False, "latency": 0, "downloadThroughput": bytes_per_second, "uploadThroughput": -1})

    def record_states(self):
        """From now on, notes what the last answer looks like after every change of the page."""
        self.page.evaluate("""() => {
          window.__states = [];
          const snap = () => {
            const answer = [...document.querySelectorAll('article.assistant')].at(-1);
            if (!answer) return;
            const thinking = answer.querySelector('details.thinking');
            window.__states.push({
              streaming: !document.getElementById('stop').hidden,
              content: answer.querySelector('.markdown')?.textContent ?? '',
              thinking: thinking ? thinking.querySelector('.thinking-text').textContent : null,
              thinkingOpen: thinking ? thinking.open : null,
            });
          };
          new MutationObserver(snap).observe(document.getElementById('messages'), {childList: true, subtree: true});
        }""")

    def states(self) -> list[dict]:
        return self.page.evaluate("window.__states")

    def stored(self) -> list[dict]:
        """The conversations as the page keeps them in IndexedDB."""
        return self.page.evaluate("""() => new Promise((resolve, reject) => {
          const open = indexedDB.open('edge-chat', 1);
          open.onerror = () => reject(open.error);
          open.onsuccess = () => {
            const request = open.result.transaction('conversations').objectStore('conversations').getAll();
            request.onsuccess = () => resolve(request.result);
          };
        })""")

    def check_clean(self):
        unexpected = [line for line in self.console_errors
                      if not any(expected in line for expected in self.expected_console)]
        assert not self.foreign_requests, f"requests left the server's origin: {self.foreign_requests}"
        assert not unexpected, f"console errors: {unexpected}"

    def close(self):
        self.context.close()


@pytest.fixture
def open_page(browser):
    """open_page(server, viewport=None, ready=True) -> a ChatPage on that server; checked and closed at the end."""
    pages: list[ChatPage] = []

    def make(server, viewport=None, ready=True) -> ChatPage:
        page = ChatPage(browser, server, viewport)
        pages.append(page)
        return page.open(ready)

    yield make
    try:
        for page in pages:
            page.check_clean()
    finally:
        for page in pages:
            page.close()


def conversation(title: str, turns: list[dict], conversation_id: str = "c1") -> dict:
    """An export-format conversation: one branch of messages in order."""
    messages = {}
    parent = None
    for index, turn in enumerate(turns):
        message_id = f"{conversation_id}-m{index}"
        messages[message_id] = {"id": message_id, "parent": parent, "created": 1_700_000_000_000 + index,
                                "content": "", **turn}
        parent = message_id
    return {"id": conversation_id, "title": title, "created": 1_700_000_000_000,
            "updated": 1_700_000_000_000 + len(turns), "messages": messages, "leaf": parent}


def wait_until(predicate, timeout: float = 60.0, interval: float = 0.2):
    """Polls for something outside the browser (a server log line); fails with what was awaited."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"still waiting after {timeout}s for {predicate.__doc__ or predicate}")
