"""The README and docs are true: the options table is `edge serve --help`, and every file they cite exists."""

from __future__ import annotations

import argparse
import re
from dataclasses import fields
from pathlib import Path

import pytest

from edge.cli import build_parser
from edge.settings import ENVIRONMENT, Settings

REPO = Path(__file__).resolve().parent.parent.parent
README = (REPO / "README.md").read_text()
DOCS = {path.relative_to(REPO).as_posix(): path.read_text()
        for path in [REPO / "README.md", REPO / "benchmarks" / "RESULTS.md", *(REPO / "docs").glob("*.md")]}
MIB = 1024 * 1024

# defaults that are not a value but a behaviour, in the words the README (and --help) use for them
DESCRIBED_DEFAULTS = {
    "model": "demo model", "mmproj": "found beside the model",
    "threads": "all available CPUs", "cache_dir": "`~/.cache/edge`",
    "chat_history": "`~/.local/state/edge/chat_history`",
}


def options_table() -> list[dict[str, object]]:
    section = README.split("## Options", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 4 or cells[0] in ("flag", "---"):
            continue
        rows.append({"flags": re.findall(r"`(-[\w-]+)`", cells[0]),
                     "variables": re.findall(r"`(EDGE_[A-Z_]+)(?:=[^`]*)?`", cells[1]),
                     "default": cells[2], "line": line})
    return rows


def serve_parser() -> argparse.ArgumentParser:
    commands = next(action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction))
    return commands.choices["serve"]


def serve_options() -> dict[str, argparse.Action]:
    return {option: action for action in serve_parser()._actions for option in action.option_strings
            if option not in ("-h", "--help")}


def test_the_table_has_no_blank_line_breaking_it():
    for table in re.findall(r"((?:^\|.*\n)+)\n(?=\|)", README, flags=re.MULTILINE):
        pytest.fail(f"a blank line splits a table after:\n{table}")


def test_every_serve_flag_is_in_the_table_and_every_table_flag_exists():
    documented = {flag for row in options_table() for flag in row["flags"]}
    assert documented == set(serve_options())


def test_every_environment_variable_is_in_the_table_and_maps_to_the_flags_setting():
    rows = options_table()
    assert {variable for row in rows for variable in row["variables"]} == set(ENVIRONMENT)
    options = serve_options()
    for row in rows:
        destinations = {options[flag].dest for flag in row["flags"]}
        for variable in row["variables"]:
            if destinations:
                assert destinations == {ENVIRONMENT[variable][0]}, row["line"]


def rendered_defaults(name: str, value) -> set[str]:
    if name in DESCRIBED_DEFAULTS:
        return {DESCRIBED_DEFAULTS[name]}
    if isinstance(value, bool):
        return {"on" if value else "off"}
    if value is None or value == ():
        return {"none"}
    if hasattr(value, "value"):  # an enum
        return {str(value.value)}
    if isinstance(value, float):
        return {f"{value:g} s"}
    if isinstance(value, int):
        forms = {str(value), f"{value:,}"}
        if value % MIB == 0 and value >= MIB:
            forms.add(f"{value // MIB} MiB")
        return forms
    return {str(value)}


def test_every_default_in_the_table_is_the_settings_default():
    defaults = {field.name: field.default for field in fields(Settings)}
    options = serve_options()
    for row in options_table():
        names = {options[flag].dest for flag in row["flags"]} or {ENVIRONMENT[row["variables"][0]][0]}
        texts = [part.strip() for part in row["default"].split(",")] if len(row["variables"]) > 1 else [row["default"]]
        settings_names = [ENVIRONMENT[variable][0] for variable in row["variables"]] or sorted(names)
        for name, text in zip(settings_names, texts):
            assert text in rendered_defaults(name, defaults[name]), (row["line"], rendered_defaults(name, defaults[name]))


def test_the_help_states_the_same_default_as_the_table():
    options = serve_options()
    for row in options_table():
        if not row["flags"]:
            continue
        action = options[row["flags"][0]]
        if isinstance(action, argparse._StoreConstAction):
            continue  # an on/off switch: its help says what the flag does, the table what the default is
        help_text = (action.help or "").replace("`", "")
        assert "default" in help_text, f"{row['flags'][0]} --help names no default"
        assert row["default"].replace("`", "").lower() in help_text.lower(), (row["flags"][0], help_text)


def test_extra_bufts_choices_print_as_values():
    text = serve_parser().format_help()
    assert "{auto,on,off}" in text and "ExtraBuffers" not in text


# ------------------------------------------------------------------------------------- cited files

# a path-like token: has a slash or a known file suffix, and is not a URL, a flag or a placeholder
_PATH = re.compile(r"^(?:\.{0,2}/)?[\w.-]+(?:/[\w.*-]+)*(?:\.(?:py|md|json|toml|sh|awk|txt|gguf|png))?/?$")
_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
_REPO_ROOTS = ("edge/", "docs/", "scripts/", "tests/", "benchmarks/", ".ci/", "dev.sh", "pyproject.toml", "README.md")


def cited_paths(text: str) -> set[str]:
    cited = set(_LINK.findall(text))
    for token in re.findall(r"`([^`\s]+)`", text):
        token = token.split(":", 1)[0]
        if token.startswith(_REPO_ROOTS) and _PATH.match(token):
            cited.add(token)
    return {path for path in cited if not path.startswith(("http://", "https://", "mailto:"))}


@pytest.mark.parametrize("document", sorted(DOCS))
def test_docs_cite_only_files_that_exist(document):
    base = (REPO / document).parent
    missing = []
    for path in cited_paths(DOCS[document]):
        candidates = [REPO / path.lstrip("./"), base / path]
        if "*" in path:
            found = any(REPO.glob(path))
        else:
            found = any(candidate.exists() for candidate in candidates)
        if not found:
            missing.append(path)
    assert not missing, f"{document} cites files that are not in the repo: {missing}"


@pytest.mark.parametrize("document", sorted(DOCS))
def test_docs_never_cite_outside_the_repo(document):
    assert "../shared" not in DOCS[document] and "GEMMA4.md" not in DOCS[document]


def test_code_never_cites_outside_the_repo():
    offenders = [str(path.relative_to(REPO)) for path in (REPO / "edge").rglob("*.py")
                 if "../shared" in path.read_text() or "GEMMA4.md" in path.read_text()]
    assert not offenders
