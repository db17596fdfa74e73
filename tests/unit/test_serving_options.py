"""Every serving limit has one default: the Settings field, the --help text and README's options table agree."""

from __future__ import annotations

import re

import pytest

from edge.cli import build_parser
from edge.settings import ENVIRONMENT, Settings

from tests.conftest import REPO

# flag -> (settings field, how README and --help write the default)
LIMITS = {
    "--max-queue": ("max_queue", "{:g}"),
    "--request-timeout": ("request_timeout", "{:g}"),
    "--shutdown-grace": ("shutdown_grace", "{:g}"),
    "--header-timeout": ("header_timeout", "{:g}"),
    "--body-timeout": ("body_timeout", "{:g}"),
    "--idle-timeout": ("idle_timeout", "{:g}"),
    "--max-connections": ("max_connections", "{:g}"),
    "--log-format": ("log_format", "{}"),
}


def _serve_help(flag: str) -> str:
    serve = build_parser()._subparsers._group_actions[0].choices["serve"]
    return next(action.help for action in serve._actions if flag in action.option_strings)


@pytest.mark.parametrize("flag", LIMITS)
def test_one_default_everywhere(flag):
    field, form = LIMITS[flag]
    default = form.format(getattr(Settings(), field))
    assert re.search(rf"\(default {re.escape(default)}( s)?\)", _serve_help(flag)), _serve_help(flag)
    row = next(line for line in (REPO / "README.md").read_text().splitlines() if line.startswith(f"| `{flag}`"))
    cells = [cell.strip() for cell in row.split("|")]
    assert re.fullmatch(rf"{re.escape(default)}( s)?", cells[3]), row
    variable = cells[2].strip("`")
    assert ENVIRONMENT[variable][0] == field


@pytest.mark.parametrize("flag, variable", [("--api-key-file", "EDGE_API_KEY_FILE"), ("--any-model", "EDGE_ANY_MODEL"),
                                            ("--model-alias", "EDGE_MODEL_ALIAS")])
def test_other_serving_flags_are_documented(flag, variable):
    readme = (REPO / "README.md").read_text()
    assert f"| `{flag}`" in readme and variable in readme and variable in ENVIRONMENT
    assert _serve_help(flag)
