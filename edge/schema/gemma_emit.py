"""Gemma 4's value syntax from the intermediate tree: ``{key:value,...}`` with bare keys and strings
between ``<|"|>`` tokens (matched as a token, ``<[ID]>``, never as spelled-out text).

Gemma strings are raw text, so a string must never spell a control marker: every marker of Gemma's
format contains ``<|`` or ``|>``, and a Gemma string never does (nor NUL). Nor does it end with ``<``:
llama.cpp's grammar engine (0.3.36) lets the closing ``<|"|>`` token through when a character rule
can take its first character ``<`` and the token element follows, and then aborts the process when
the token is accepted. That rule is one more automaton, intersected with the string's own; a string
whose characters include neither ``<`` nor ``|`` next to ``>`` needs no product at all. A plain string
with a length bound so large that the product would not fit the rule budget is written without ``<``
(every marker starts with one), still exact in its length.
"""

from __future__ import annotations

import json
import re
from typing import Any

from edge.schema import automaton, numbers
from edge.schema.automaton import Dfa
from edge.schema.charset import ANY, CharSet
from edge.schema.emit import Emitter, Rules, char_class, literal_text
from edge.schema.errors import SchemaError
from edge.schema.nodes import Literal, Text, Tree
from edge.schema.regex import parse_pattern

_NUL = CharSet.chars("\0")
_TEXT = ANY - _NUL
_BARE_KEY = re.compile(r"[^\s:,{}\[\]<>|\"]([^:,{}\[\]<>|\"]*[^\s:,{}\[\]<>|\"])?")
_EXTRA_KEY = automaton.from_regex(parse_pattern("^[A-Za-z_][A-Za-z0-9_]*$"))


def _marker_free() -> Dfa:
    """Texts without NUL, ``<|`` or ``|>``, not ending in ``<``: states after an ordinary character,
    after ``<``, after ``|``."""
    less, bar, great = CharSet.chars("<"), CharSet.chars("|"), CharSet.chars(">")
    ordinary = _TEXT - less - bar
    return automaton.minimize(Dfa(
        edges=[[(ordinary | great, 0), (less, 1), (bar, 2)],
               [(ordinary | great, 0), (less, 1)],
               [(ordinary - great, 0), (less, 1), (bar, 2)]],
        accepting=[True, False, True]))


MARKER_FREE = _marker_free()


def unwritable(node) -> str | None:
    """Why Gemma's syntax cannot write ``node`` (a constant string with a marker, a string language
    that needs one), or None: for ``lower.restrict``."""
    if isinstance(node, Literal) and not _literal_writable(node.value):
        return f"the value {json.dumps(node.value)[:40]} cannot be written in Gemma's call syntax"
    if isinstance(node, Text) and gemma_text_automaton(node.dfa).is_empty():
        return "no string of the pattern or format can be written without a control marker"
    return None


def _literal_writable(value: Any) -> bool:
    if isinstance(value, str):
        return writable(value)
    if isinstance(value, list):
        return all(_literal_writable(item) for item in value)
    if isinstance(value, dict):
        return all(writable(key) and _literal_writable(item) for key, item in value.items())
    return True


_WRITTEN: dict[int, tuple[Dfa, Dfa]] = {}


def gemma_text_automaton(dfa: Dfa) -> Dfa:
    """The automaton a string of ``dfa`` is really written with: without markers, never ending in ``<``."""
    if id(dfa) not in _WRITTEN or _WRITTEN[id(dfa)][0] is not dfa:
        alphabet = dfa.alphabet()
        if "<" in alphabet or ("|" in alphabet and ">" in alphabet):
            written = automaton.intersect(dfa, MARKER_FREE)
        elif "\0" in alphabet:
            written = automaton.intersect(dfa, automaton.everything(_TEXT))
        else:
            written = dfa
        if len(_WRITTEN) > 4096:
            _WRITTEN.clear()
        _WRITTEN[id(dfa)] = (dfa, written)
    return _WRITTEN[id(dfa)][1]


def writable(text: str) -> bool:
    """Whether ``text`` can be a Gemma string as it is."""
    return "\0" not in text and "<|" not in text and "|>" not in text and not text.endswith("<")


class GemmaEmitter(Emitter):
    ws = ""

    def __init__(self, tree: Tree, rules: Rules, quote: str):
        super().__init__(tree, rules)
        self.quote = quote
        self._text_automata: dict[int, tuple[Dfa, Dfa]] = {}
        self._extra_keys: dict[tuple[str, ...], str] = {}
        self._any: str | None = None

    def encode(self, chars: CharSet) -> list[str]:
        chars = chars - _NUL
        return [char_class(chars)] if chars else []

    def string(self, content: str) -> str:
        return self.join(self.quote, "" if content == '""' else content, self.quote)

    def text_automaton(self, dfa: Dfa) -> Dfa:
        if id(dfa) not in self._text_automata:
            self._text_automata[id(dfa)] = (dfa, gemma_text_automaton(dfa))
        return self._text_automata[id(dfa)][1]

    def wide_text_fallback(self, dfa: Dfa, low: int, high: int | None) -> str | None:
        if dfa.self_loop() != ANY:
            return None
        unit = self.rules.add("char", char_class(_TEXT - CharSet.chars("<")))
        return self.counted(unit, low, high)

    def key(self, name: str) -> str:
        if _BARE_KEY.fullmatch(name):
            return literal_text(name)
        if not writable(name):
            raise SchemaError(f"property name {name!r} cannot be written in Gemma's call syntax")
        return self.join(self.quote, literal_text(name), self.quote)

    def extra_key(self, excluded: list[str]) -> str:
        key = tuple(sorted(set(excluded)))
        if key not in self._extra_keys:
            dfa = _EXTRA_KEY
            if key:
                dfa = automaton.intersect(dfa, automaton.complement(automaton.literal_set(key)))
            self._extra_keys[key] = self.automaton_rule(dfa, "key", "extra-key", raw=True)
        return self._extra_keys[key]

    def literal(self, value: Any) -> str:
        if isinstance(value, str):
            if not writable(value):
                raise SchemaError(f"the string {value[:40]!r} cannot be written in Gemma's call syntax")
            return self.join(self.quote, literal_text(value) if value else "", self.quote)
        if isinstance(value, list):
            items = f" {literal_text(',')} ".join(self.literal(item) for item in value)
            return self.join(literal_text("["), items, literal_text("]"))
        if isinstance(value, dict):
            pairs = f" {literal_text(',')} ".join(f"{self.key(key)} {literal_text(':')} {self.literal(item)}"
                                                    for key, item in value.items())
            return self.join(literal_text("{"), pairs, literal_text("}"))
        return literal_text(json.dumps(value))

    def any_value(self) -> str:
        if self._any is None:
            self._any = self.rules.reserve("any-value")
            string = self.rules.add("any-string", self.text(Text(automaton.everything(ANY))))
            number = self.automaton_rule(numbers.syntax(False, numbers.SIGNIFICANT_DIGITS, 0), "number", "any",
                                         raw=True)
            key = self.extra_key([])
            pair = self.rules.add("any-pair", self.join(key, self.colon, self._any))
            obj = self.rules.add("any-object", self.join(self.open_object, self.separated(pair, 0, None),
                                                         self.close_object))
            arr = self.rules.add("any-array", self.join(self.open_array, self.separated(self._any, 0, None),
                                                        self.close_array))
            self.rules.define(self._any, f'{obj} | {arr} | {string} | {number} | "true" | "false" | "null"')
        return self._any


def gemma_rules(tree: Tree, rules: Rules, quote: str) -> str:
    """Adds the rules for ``tree`` in Gemma's syntax; returns the expression of its root value. What
    the syntax cannot write (``unwritable``) must be gone first: ``lower.restrict(tree, unwritable)``."""
    return GemmaEmitter(tree, rules, quote).emit()
