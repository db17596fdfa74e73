"""The page's routes in-process (httpx's ASGI transport, no model): served, locked down, and --no-ui."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from edge.cli import build_parser
from edge.server.app import create_app
from edge.server.ui import CONTENT_SECURITY_POLICY, STATIC
from edge.settings import Settings, settings_from


class NoEngine:
    """Outside a `with` block the test client runs no lifespan, so the routes need only the model's name."""

    class info:
        path = Path("/models/fake-model.gguf")
        metadata: dict[str, str] = {}


def get(settings: Settings, path: str) -> httpx.Response:
    return TestClient(create_app(settings, engine=NoEngine())).get(path)


def test_the_page_and_its_assets_are_served_with_a_strict_policy():
    page = get(Settings(), "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert page.headers["x-content-type-options"] == "nosniff"
    script = get(Settings(), "/ui/js/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert get(Settings(), "/ui/vendor/licenses/dompurify-LICENSE").status_code == 200


def test_every_file_the_page_names_is_in_the_package():
    """Nothing is loaded from outside the server: every src, href and import resolves to a packaged file."""
    html = (STATIC / "index.html").read_text()
    files = [STATIC / path.removeprefix("/ui/") for path in re.findall(r'(?:src|href)="([^"]+)"', html)]
    assert all(str(path).startswith(str(STATIC)) for path in files)
    for script in STATIC.glob("js/*.js"):
        files += [(script.parent / name).resolve() for name in re.findall(r"from '([^']+)'", script.read_text())]
    assert len(files) > 10
    for path in files:
        assert path.is_file() and STATIC in path.parents, path


def test_the_page_says_whether_a_key_is_needed_and_never_the_key():
    assert get(Settings(), "/ui/config.json").json() == {"api_key_required": False}
    keyed = get(Settings(api_key="sesame"), "/ui/config.json")
    assert keyed.json() == {"api_key_required": True} and "sesame" not in keyed.text
    assert get(Settings(api_key="sesame"), "/").status_code == 200  # the page itself needs no key
    assert get(Settings(api_key="sesame"), "/v1/models").status_code == 401


def test_no_ui_turns_the_page_off():
    for path in ("/", "/ui/js/app.js", "/ui/config.json"):
        response = get(Settings(ui=False), path)
        assert response.status_code == 404 and response.json()["error"]["message"].startswith("no route")


@pytest.mark.parametrize("path", ["/ui/../__init__.py", "/ui/%2e%2e/__init__.py", "/ui/nothing.js"])
def test_nothing_outside_the_static_folder_is_served(path):
    assert get(Settings(), path).status_code == 404


def test_no_ui_from_the_flag_and_the_environment():
    assert settings_from(build_parser().parse_args(["serve", "--no-ui"]), environ={}).ui is False
    assert settings_from(build_parser().parse_args(["serve"]), environ={}).ui is True
    assert settings_from(None, environ={"EDGE_UI": "0"}).ui is False
