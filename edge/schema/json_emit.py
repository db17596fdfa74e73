"""JSON text from the intermediate tree: canonical escapes, bounded whitespace between tokens.

A string character is written raw unless JSON requires an escape (``"``, ``\\``, control characters),
and then with exactly one escape spelling, so a length bound counts decoded characters and no raw
control character ever appears inside a string.
"""

from __future__ import annotations

import json
from typing import Any

from edge.schema import automaton, numbers
from edge.schema.charset import ANY, JSON_CONTROL, CharSet
from edge.schema.emit import Emitter, Rules, char_class, literal_text
from edge.schema.nodes import Text, Tree

_QUOTE = literal_text('"')
_SHORT_ESCAPES = {0x08: "b", 0x09: "t", 0x0A: "n", 0x0C: "f", 0x0D: "r"}
_NEEDS_ESCAPE = JSON_CONTROL | CharSet.chars('"\\')


class JsonEmitter(Emitter):
    colon = '":"'
    comma = '","'

    def __init__(self, tree: Tree, rules: Rules):
        super().__init__(tree, rules)
        self.ws = rules.add("ws", f'({literal_text(" ")} | {literal_text(chr(10))} {self._indent()})?')
        self._extra_keys: dict[tuple[str, ...], str] = {}
        self._any: str | None = None

    def _indent(self) -> str:
        """Up to 20 spaces or tabs after a newline, as llama.cpp's own JSON grammar allows."""
        return self.counted(self.rules.add("indent", "[ \\t]"), 0, 20)

    def encode(self, chars: CharSet) -> list[str]:
        """The raw characters as one class, every escape behind one backslash: two alternatives, so
        llama.cpp's candidate filter follows two parses per character, not one per escape."""
        alternatives = []
        raw = chars - _NEEDS_ESCAPE
        if raw:
            alternatives.append(char_class(raw))
        escapes = [letter for point, letter in ((ord('"'), '"'), (ord("\\"), "\\\\")) if point in chars]
        controls = chars & JSON_CONTROL
        escapes += [letter for point, letter in _SHORT_ESCAPES.items() if point in controls]
        tails = [f'[{"".join(escapes)}]'] if escapes else []
        if controls == JSON_CONTROL:  # every control also as \u00XX (the short ones have both spellings)
            tails.append('"u00" [01] [0-9a-fA-F]')
        else:
            tails += [literal_text(f"u{point:04x}") for low, high in controls.ranges
                      for point in range(low, high + 1) if point not in _SHORT_ESCAPES]
        if tails:
            alternatives.append(f'{literal_text(chr(92))} ({" | ".join(tails)})')
        return alternatives

    def string(self, content: str) -> str:
        return self.join(_QUOTE, "" if content == '""' else content, _QUOTE)

    def key(self, name: str) -> str:
        return literal_text(json.dumps(name, ensure_ascii=False))

    def extra_key(self, excluded: list[str]) -> str:
        key = tuple(sorted(set(excluded)))
        if key not in self._extra_keys:
            dfa = automaton.everything(ANY)
            if key:
                dfa = automaton.complement(automaton.literal_set(key))
            self._extra_keys[key] = self.rules.add("key", self.text(Text(dfa)))
        return self._extra_keys[key]

    def literal(self, value: Any) -> str:
        """A constant, with the same whitespace freedom as any other JSON the grammar writes."""
        if isinstance(value, dict):
            pairs = [self.join(self.key(key), self.ws, self.colon, self.ws, self.literal(item), self.ws)
                     for key, item in value.items()]
            body = f" {self.comma} {self.ws} ".join(pairs)
            return self.rules.add("const", self.join(self.open_object, self.ws, body, self.close_object))
        if isinstance(value, list):
            items = [self.join(self.literal(item), self.ws) for item in value]
            body = f" {self.comma} {self.ws} ".join(items)
            return self.rules.add("const", self.join(self.open_array, self.ws, body, self.close_array))
        return literal_text(json.dumps(value, ensure_ascii=False))

    def any_value(self) -> str:
        if self._any is None:
            self._any = self.rules.reserve("any-value")
            string = self.rules.add("any-string", self.text(Text(automaton.everything(ANY))))
            number = self.automaton_rule(numbers.syntax(False, numbers.SIGNIFICANT_DIGITS, 0), "number", "any",
                                         raw=True)
            pair = self.rules.add("any-pair", self.join(string, self.ws, self.colon, self.ws, self._any, self.ws))
            item = self.rules.add("any-item", self.join(self._any, self.ws))
            obj = self.rules.add("any-object", self.join(self.open_object, self.ws,
                                                         self.separated(pair, 0, None), self.close_object))
            arr = self.rules.add("any-array", self.join(self.open_array, self.ws, self.separated(item, 0, None),
                                                        self.close_array))
            self.rules.define(self._any, f'{obj} | {arr} | {string} | {number} | "true" | "false" | "null"')
        return self._any


def json_rules(tree: Tree, rules: Rules) -> str:
    """Adds the rules for ``tree`` as JSON; returns the expression of its root value."""
    return JsonEmitter(tree, rules).emit()
