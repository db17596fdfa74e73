"""Named keys, the usage ledger (which must never stop serving), and `edge usage`."""

from __future__ import annotations

import json
import logging

import pytest

from edge.server.metering import (
    ApiKeys, KeysFileError, Ledger, LEDGER_NAME, load_keys, parse_keys_file, read_usage,
)
from edge.usage import print_usage


def test_keys_file_lines():
    text = "# team keys\nalice = sk-alice\n\nbob=sk-b=ob==\n"
    assert parse_keys_file(text, "keys") == {"alice": "sk-alice", "bob": "sk-b=ob=="}


@pytest.mark.parametrize("text, fragment", [
    ("just-a-key\n", "line 1: expected name=key"),
    ("alice=\n", "expected name=key"),
    ("al ice=k\n", "key name"),
    ("a=k1\na=k2\n", "used twice"),
    ("a=k\nb=k\n", "also another name's key"),
])
def test_bad_keys_files_name_the_line(text, fragment):
    with pytest.raises(KeysFileError, match=fragment):
        parse_keys_file(text, "keys")


def test_keys_from_file_and_flag(tmp_path):
    path = tmp_path / "keys"
    path.write_text("alice=sk-a\n")
    keys = load_keys("sk-default", path)
    assert keys.name_for(b"sk-a") == "alice" and keys.name_for(b"sk-default") == "default"
    assert keys.name_for(b"sk-") is None and keys.name_for(b"") is None
    assert not load_keys(None, None)
    with pytest.raises(KeysFileError, match="cannot read"):
        load_keys(None, tmp_path / "missing")
    (tmp_path / "empty").write_text("# nothing\n")
    with pytest.raises(KeysFileError, match="holds no key"):
        load_keys(None, tmp_path / "empty")


def test_ledger_adds_up_by_key_and_day(tmp_path):
    ledger = Ledger(tmp_path / LEDGER_NAME)
    ledger.record("alice", 10, 5, day="2026-01-01")
    ledger.record("alice", 3, 2, day="2026-01-01")
    ledger.record("bob", 7, 1, day="2026-01-01")
    ledger.record("alice", 1, 1, day="2026-01-02")
    ledger.close()
    rows = [(row.day, row.key, row.messages, row.prompt_tokens, row.completion_tokens)
            for row in read_usage(tmp_path / LEDGER_NAME)]
    assert rows == [("2026-01-01", "alice", 2, 13, 7), ("2026-01-01", "bob", 1, 7, 1), ("2026-01-02", "alice", 1, 1, 1)]
    assert [row.day for row in read_usage(tmp_path / LEDGER_NAME, since="2026-01-02")] == ["2026-01-02"]


def test_a_deleted_ledger_is_recreated(tmp_path):
    path = tmp_path / LEDGER_NAME
    ledger = Ledger(path)
    ledger.record("alice", 1, 1, day="2026-01-01")
    ledger.flush()
    path.unlink()
    ledger.record("alice", 2, 2, day="2026-01-01")
    ledger.close()
    assert [(row.messages, row.prompt_tokens) for row in read_usage(path)] == [(1, 2)]


def test_an_unwritable_or_corrupt_ledger_is_logged_once_and_never_raises(tmp_path, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    ledger = Ledger(blocker / LEDGER_NAME)
    with caplog.at_level(logging.WARNING, logger="edge.server"):
        for _ in range(3):
            ledger.record("alice", 1, 1)
        ledger.flush()
    assert len([record for record in caplog.records if "cannot be written" in record.getMessage()]) == 1
    ledger.close()
    corrupt = tmp_path / "corrupt.sqlite3"
    corrupt.write_bytes(b"this is not a database" * 100)
    ledger = Ledger(corrupt)
    ledger.record("alice", 1, 1)
    ledger.close()  # no exception: serving would have gone on


def test_edge_usage_prints_a_table_and_json(tmp_path, capsys):
    ledger = Ledger(tmp_path / LEDGER_NAME)
    ledger.record("alice", 10, 5, day="2026-01-01")
    ledger.record("bob", 7, 1, day="2026-01-02")
    ledger.close()
    assert print_usage(tmp_path, None, as_json=False) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["day", "key", "messages", "prompt_tokens", "completion_tokens"]
    assert table[1].split() == ["2026-01-01", "alice", "1", "10", "5"]
    assert print_usage(tmp_path, "2026-01-02", as_json=True) == 0
    assert json.loads(capsys.readouterr().out) == [
        {"day": "2026-01-02", "key": "bob", "messages": 1, "prompt_tokens": 7, "completion_tokens": 1}]
    assert print_usage(tmp_path, "January", as_json=False) == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err
    assert print_usage(tmp_path / "elsewhere", None, as_json=False) == 0
    assert "no usage recorded" in capsys.readouterr().out


def test_api_keys_match_in_constant_time_over_all_keys():
    keys = ApiKeys({"a": "k1", "b": "k2"})
    assert keys.name_for(b"k2") == "b" and keys.name_for(b"k1") == "a" and bool(keys) and not ApiKeys({})
