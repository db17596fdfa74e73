"""From the intermediate tree to GBNF: the rule builder and everything both grammars share.

The JSON emitter and the Gemma 4 emitter differ only in spelling (quotes, keys, punctuation, how one
character of a string is written); the walk over the tree, the automata as rules and counted
repetition are here, once.

Rules llama.cpp runs without deep recursion or stack blow-up:

- an automaton becomes one rule per state, each alternative a character set followed by the next
  state's rule in tail position: one live parse, constant stack depth;
- a counted repetition ``x{m,n}`` up to 256 is a chain of rules, each in tail position (two parses
  alive: the fastest shape for llama.cpp's candidate filter). A larger one never expands into n rules
  (llama.cpp's own ``{m,n}`` nests n-m optionals, and above 2,000 silently drops the bound): it is
  built from powers of two, ``A_j = x^(2^j)`` and ``U_j = x^(0..2^j-1)``, so a bound of 100,000 takes
  2 * 17 rules and the parser keeps O(log n) stacks alive;
- definitions are named rules emitted from a work list (no Python recursion along ``$ref`` chains).
"""

from __future__ import annotations

import re
from typing import Any

from edge.schema.automaton import Dfa
from edge.schema.charset import CharSet
from edge.schema.errors import SchemaError
from edge.schema.limits import Limits
from edge.schema.nodes import (
    AnyValue, Array, Boolean, Literal, Never, Node, Null, Number, Object, Ref, Text, Tree, Union_,
)


# bounds up to this many repetitions are a chain of rules; larger ones are built from powers of two
LINEAR_COUNT = 256


class Rules:
    """GBNF rules by name, identical bodies shared, within the rule and size budget."""

    def __init__(self, limits: Limits, prefix: str = ""):
        self.limits = limits
        self.prefix = prefix
        self.bodies: dict[str, str] = {}
        self.by_body: dict[str, str] = {}
        self.size = 0
        self._stars: dict[str, str] = {}
        self._numbers: dict[str, int] = {}  # the last suffix used per base name

    def add(self, hint: str, body: str) -> str:
        if body in self.by_body:
            return self.by_body[body]
        name = self.reserve(hint)
        self.define(name, body)
        self.by_body[body] = name
        return name

    def reserve(self, hint: str) -> str:
        base = self.prefix + (re.sub(r"[^a-z0-9]+", "-", hint.lower()).strip("-")[:40] or "r")
        name, number = base, self._numbers.get(base, 1)
        while name in self.bodies:
            number += 1
            name = f"{base}-{number}"
        self._numbers[base] = number
        self.bodies[name] = ""
        if len(self.bodies) > self.limits.max_rules:
            raise SchemaError(f"the grammar for this schema needs more than {self.limits.max_rules} rules")
        return name

    def define(self, name: str, body: str) -> None:
        self.size += len(name) + len(body) + 6
        if self.size > self.limits.max_grammar_bytes:
            raise SchemaError(f"the grammar for this schema is larger than {self.limits.max_grammar_bytes} bytes")
        self.bodies[name] = body

    def text(self) -> str:
        return "\n".join(f"{name} ::= {body}" for name, body in self.bodies.items())

    # counted repetition ---------------------------------------------------------------------------------------

    def counted(self, unit: str, low: int, high: int | None) -> str:
        """``unit{low,high}`` (``high`` None: unbounded). Up to ``LINEAR_COUNT`` as a chain of rules
        (deterministic: llama.cpp keeps two parses alive, "one more" and "done"), beyond it in
        O(log high) rules built from powers of two."""
        parts = []
        if low:
            parts.append(self._exactly(unit, low))
        if high is None:
            parts.append(self.star(unit))
        elif high > low:
            parts.append(self._up_to(unit, high - low))
        return " ".join(parts) if parts else '""'

    def star(self, unit: str) -> str:
        body_key = f"{unit} *"
        if body_key not in self._stars:
            name = self.reserve(f"{unit}-star")
            self.define(name, f'{unit} {name} | ""')
            self._stars[body_key] = name
        return self._stars[body_key]

    def _power(self, unit: str, exponent: int) -> str:
        """``unit`` repeated 2^exponent times."""
        if exponent == 0:
            return unit
        half = self._power(unit, exponent - 1)
        return self.add(f"{unit}-x{2 ** exponent}", f"{half} {half}")

    def _exactly(self, unit: str, count: int) -> str:
        if count <= 4:
            return " ".join([unit] * count)
        if count <= LINEAR_COUNT:
            return self.add(f"{unit}-n{count}", " ".join([unit] * count))
        parts = [self._power(unit, bit) for bit in range(count.bit_length() - 1, -1, -1) if count >> bit & 1]
        return self.add(f"{unit}-n{count}", " ".join(parts))

    def _chain(self, unit: str, count: int) -> str:
        """0..count of ``unit`` as ``c(n) ::= unit c(n-1) | ""``, each rule in tail position."""
        name = '""'
        for length in range(1, count + 1):
            following = f" {name}" if name != '""' else ""
            name = self.add(f"{unit}-upto{length}", f'{unit}{following} | ""')
        return name

    def _below_power(self, unit: str, exponent: int) -> str:
        """``unit`` repeated 0 .. 2^exponent - 1 times: each power of two taken or not, largest first."""
        if exponent == 0:
            return '""'
        rest = self._below_power(unit, exponent - 1)
        block = self._power(unit, exponent - 1)
        taken = f"{block} {rest}" if rest != '""' else block
        return self.add(f"{unit}-lt{2 ** exponent}", f"{taken} | {rest}")

    def _up_to(self, unit: str, count: int) -> str:
        """``unit`` repeated 0..count times; unambiguous, so llama.cpp keeps few parses alive."""
        if count <= LINEAR_COUNT:
            return self._chain(unit, count)
        exponent = (count + 1).bit_length() - 1  # 2^exponent - 1 <= count
        if count == 2 ** exponent - 1:
            return self._below_power(unit, exponent)
        rest = self._up_to(unit, count - 2 ** exponent)
        return self.add(f"{unit}-le{count}",
                              f"{self._power(unit, exponent)} {rest} | {self._below_power(unit, exponent)}")



# -- GBNF spelling ---------------------------------------------------------------------------------------


def _code(point: int) -> str:
    char = chr(point)
    if char.isascii() and char.isalnum():
        return char
    if point < 0x80:
        return f"\\x{point:02X}"
    if point < 0x10000:
        return f"\\u{point:04X}"
    return f"\\U{point:08X}"


def char_class(chars: CharSet) -> str:
    """``[...]``, or ``[^...]`` of the complement when that is shorter (the same set: a negated class
    leaves out exactly what it lists, and no token text holds a surrogate)."""
    def spell(ranges):
        return "".join(_code(low) if low == high else f"{_code(low)}-{_code(high)}" for low, high in ranges)

    if chars.size() == 1:
        return literal_text(chr(chars.first()))
    plain = f"[{spell(chars.ranges)}]"
    complement = chars.complement()
    negated = f"[^{spell(complement.ranges)}]" if complement.ranges else "[^\\x00]"
    if not complement.ranges and 0 in chars:
        return plain
    return negated if len(negated) < len(plain) else plain


def literal_text(text: str) -> str:
    """A GBNF string literal."""
    return '"' + "".join(c if (c.isascii() and c.isprintable() and c not in '"\\') else _code(ord(c))
                         for c in text) + '"'


# -- the walk ------------------------------------------------------------------------------------------------


class Emitter:
    """Walks a tree and returns, per node, a GBNF expression (most often a rule name)."""

    # spelling hooks, set by each syntax
    ws = '""'  # optional whitespace between tokens

    def __init__(self, tree: Tree, rules: Rules):
        self.tree = tree
        self.rules = rules
        self.limits = rules.limits
        self._definitions: dict[str, str] = {}
        self._pending: list[str] = []
        self._automata: dict[tuple[int, str], tuple[list[str], Dfa]] = {}

    # hooks ---------------------------------------------------------------------------------------------

    def encode(self, chars: CharSet) -> list[str]:
        """GBNF alternatives that each write exactly one character of ``chars``."""
        raise NotImplementedError

    def string(self, content: str) -> str:
        raise NotImplementedError

    def text_automaton(self, dfa: Dfa) -> Dfa:
        """The automaton a string of ``dfa`` is really written with (Gemma leaves out its markers)."""
        return dfa

    def wide_text_fallback(self, dfa: Dfa, low: int, high: int | None) -> str | None:
        """A counted unit for a plain string whose exact automaton is too large to count (or None)."""
        return None

    def key(self, name: str) -> str:
        raise NotImplementedError

    def extra_key(self, excluded: list[str]) -> str:
        raise NotImplementedError

    def literal(self, value: Any) -> str:
        raise NotImplementedError

    # entry -----------------------------------------------------------------------------------------------

    def emit(self, node: Node | None = None) -> str:
        """The expression for ``node`` (the tree's root by default), with every definition it needs."""
        expression = self.value(self.tree.root if node is None else node)
        while self._pending:
            name = self._pending.pop()
            self.rules.define(self._definitions[name], self.value(self.tree.definitions[name]))
        return expression

    def value(self, node: Node) -> str:
        if isinstance(node, Ref):
            return self._reference(node.name)
        if isinstance(node, AnyValue):
            return self.any_value()
        if isinstance(node, Literal):
            return self.literal(node.value)
        if isinstance(node, Boolean):
            return '("true" | "false")'
        if isinstance(node, Null):
            return '"null"'
        if isinstance(node, Number):
            return self.automaton_rule(node.dfa, "number", "integer" if node.integer else "number", raw=True)
        if isinstance(node, Text):
            return self.text(node)
        if isinstance(node, Union_):
            return self.rules.add("one-of", " | ".join(self.value(option) for option in node.options))
        if isinstance(node, Array):
            return self.array(node)
        if isinstance(node, Object):
            return self.object(node)
        raise SchemaError(f"no value can satisfy the schema: {node.reason}")

    def _reference(self, name: str) -> str:
        if name not in self._definitions:
            self._definitions[name] = self.rules.reserve(f"def-{name.strip('#/')}")
            self._pending.append(name)
        return self._definitions[name]

    def any_value(self) -> str:
        raise NotImplementedError

    # strings -----------------------------------------------------------------------------------------------

    def text(self, node: Text) -> str:
        dfa = self.text_automaton(node.dfa)
        if dfa.is_empty():
            raise SchemaError("no string of the schema can be written without a control marker")
        low, high = node.min_length, node.max_length
        if low == 0 and high is None:
            return self.string(self.automaton_rule(dfa, "chars", "text"))
        loop = dfa.self_loop()
        if loop is not None:
            unit = self.rules.add("char", " | ".join(self.encode(loop)))
            return self.string(self.counted(unit, low, high))
        if dfa.min_length() >= low and (high is None or (dfa.max_length() is not None and dfa.max_length() <= high)):
            return self.string(self.automaton_rule(dfa, "chars", "text"))
        layers = (high if high is not None else low) + 1
        if dfa.size * layers <= self.limits.max_layered_states:
            return self.string(self.layered(dfa, low, high))
        fallback = self.wide_text_fallback(node.dfa, low, high)
        if fallback is not None:
            return self.string(fallback)
        raise SchemaError(f"a pattern or format with minLength/maxLength {low}..{high} needs more than "
                          f"{self.limits.max_layered_states} grammar rules")

    def automaton_rule(self, dfa: Dfa, hint: str, kind: str, raw: bool = False) -> str:
        """One rule per state of ``dfa``; returns the start state's rule."""
        return self._automaton_rules(dfa, hint, kind, raw)[0]

    def _automaton_rules(self, dfa: Dfa, hint: str, kind: str, raw: bool = False) -> list[str]:
        key = (id(dfa), kind)
        if key in self._automata:
            return self._automata[key][0]
        encode = _raw_encode if raw else self.encode
        final = {state for state in range(dfa.size) if dfa.accepting[state] and not dfa.edges[state]}
        names = [self.rules.reserve(f"{hint}-{state}") if state not in final or state == 0 else ""
                 for state in range(dfa.size)]
        self._automata[key] = (names, dfa)  # holding dfa keeps its id unique while it is a key
        for state in range(dfa.size):
            if not names[state]:
                continue
            alternatives = []
            for chars, target in dfa.edges[state]:
                following = "" if target in final else f" {names[target]}"
                alternatives.extend(f"{spelling}{following}" for spelling in encode(chars))
            if dfa.accepting[state] and dfa.edges[state]:
                alternatives.append('""')
            self.rules.define(names[state], " | ".join(alternatives) or '""')
        return names

    def layered(self, dfa: Dfa, low: int, high: int | None) -> str:
        """``dfa`` with lengths low..high: one rule per (characters so far, state) that can still end
        within the bounds; with no upper bound, the plain automaton takes over at ``low``."""
        top = high if high is not None else low
        distance = dfa.distances_to_accept()
        alive: dict[tuple[int, int], bool] = {}
        for depth in range(top, -1, -1):
            for state in range(dfa.size):
                if depth == top and high is None:
                    alive[(depth, state)] = distance[state] is not None
                    continue
                here = dfa.accepting[state] and depth >= low
                onward = depth < top and any(alive[(depth + 1, target)] for _, target in dfa.edges[state])
                alive[(depth, state)] = here or onward
        if not alive[(0, 0)]:
            raise SchemaError("no string of the allowed length satisfies the pattern or format")
        plain = self._automaton_rules(dfa, "chars", "text") if high is None else []
        names = {key: self.rules.reserve(f"len-{key[0]}-{key[1]}") for key, ok in alive.items()
                 if ok and not (key[0] == top and high is None)}
        for (depth, state), name in names.items():
            alternatives = []
            for chars, target in dfa.edges[state]:
                following = (depth + 1, target)
                if not alive.get(following):
                    continue
                next_rule = plain[target] if (depth + 1 == top and high is None) else names[following]
                alternatives.extend(f"{spelling} {next_rule}" for spelling in self.encode(chars))
            if dfa.accepting[state] and depth >= low:
                alternatives.append('""')
            self.rules.define(name, " | ".join(alternatives))
        return names[(0, 0)] if (0, 0) in names else plain[0]

    def counted(self, unit: str, low: int, high: int | None) -> str:
        return self.rules.counted(unit, low, high)

    # containers ------------------------------------------------------------------------------------------------

    comma = '","'
    colon = '":"'
    open_object, close_object = '"{"', '"}"'
    open_array, close_array = '"["', '"]"'

    def join(self, *parts: str) -> str:
        return " ".join(part for part in parts if part)

    def separated(self, item: str, low: int, high: int | None) -> str:
        """``low``..``high`` of ``item`` with commas between (the whole list may be empty)."""
        if high == 0:
            return ""
        following = self.rules.add("next-item", self.join(self.comma, self.ws, item))
        tail = self.counted(following, max(low - 1, 0), None if high is None else high - 1)
        body = self.join(item, tail if tail != '""' else "")
        return body if low >= 1 else f"({body})?"

    def array(self, node: Array) -> str:
        def item(child: Node) -> str:
            return self.join(self.value(child), self.ws)

        room = node.max_items is None or node.max_items > len(node.prefix)
        if not node.prefix:
            body = self.separated(self.rules.add("item", item(node.rest)), node.min_items, node.max_items) \
                if room else ""
        else:
            body = ""  # after every prefix item: the rest items, with their commas
            if room:
                following = self.rules.add("next-item", self.join(self.comma, self.ws, item(node.rest)))
                tail = self.counted(following, max(node.min_items - len(node.prefix), 0),
                                    None if node.max_items is None else node.max_items - len(node.prefix))
                body = "" if tail == '""' else tail
            for index in range(len(node.prefix) - 1, -1, -1):
                head = self.join(self.comma if index else "", self.ws if index else "", item(node.prefix[index]))
                written = self.join(head, body)
                # the array may end before this item once min_items are written
                body = self.rules.add("items", f'{written} | ""' if index >= node.min_items else written)
        return self.rules.add("array", self.join(self.open_array, self.ws, body, self.close_array))

    def object(self, node: Object) -> str:
        """Declared properties in order (each optional one present or not), then extra keys; the count
        of pairs is tracked only as far as minProperties/maxProperties need it."""
        present = [prop for prop in node.properties if not isinstance(prop.value, Never)]
        low, high = node.min_properties, node.max_properties
        extra = None
        if node.extra_keys:
            extra = self.pair(self.extra_key([prop.name for prop in node.properties]), node.additional)
        cap = high if high is not None else max(low, 1)  # counts beyond cap are all alike
        states: dict[int, str | None] = {count: self._extras_tail(extra, count, low, high)
                                         for count in range(cap + 1)}
        for prop in reversed(present):
            pair = self.pair(self.key(prop.name), prop.value)
            following: dict[int, str | None] = {}
            for count in range(cap + 1):
                grown = min(count + 1, cap) if high is None else count + 1
                options = []
                if grown <= cap and states.get(grown) is not None:
                    options.append(self.join(self.comma if count else "", self.ws if count else "", pair,
                                             states[grown]))
                if not prop.required and states[count] is not None:
                    options.append(states[count] or '""')
                following[count] = self._shared(options)
            states = following
        if states[0] is None:
            if extra is not None and low > 1:
                raise SchemaError(f"minProperties {low} would need extra keys, and two extra keys could be the "
                                  "same key: it cannot be enforced")
            raise SchemaError("no object satisfies minProperties/maxProperties with these properties")
        return self.rules.add("object", self.join(self.open_object, self.ws, states[0], self.close_object))

    def _extras_tail(self, extra: str | None, count: int, low: int, high: int | None) -> str | None:
        """What may follow ``count`` declared pairs: extra pairs up to the bounds, or None (dead end)."""
        needed = max(low - count, 0)
        room = None if high is None else high - count
        if extra is None:
            return "" if needed == 0 else None
        if needed > 1:
            return None  # two extra keys could be the same key: the object might come out short
        if count == 0:
            return self.separated(extra, needed, room)
        following = self.rules.add("next-pair", self.join(self.comma, self.ws, extra))
        tail = self.counted(following, needed, room)
        return "" if tail == '""' else tail

    def _shared(self, options: list[str]) -> str | None:
        """Alternatives as one expression: a rule when there are several, inline when one is short."""
        if not options:
            return None
        if len(options) == 1 and len(options[0]) < 2000:
            return options[0]
        return self.rules.add("pairs", " | ".join(options))

    def pair(self, key: str, value: Node) -> str:
        return self.rules.add("pair", self.join(key, self.ws, self.colon, self.ws, self.value(value), self.ws))


def _raw_encode(chars: CharSet) -> list[str]:
    return [char_class(chars)]
