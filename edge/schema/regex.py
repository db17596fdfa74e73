"""ECMA-262 regular expressions (the dialect of JSON Schema's ``pattern``) as a small syntax tree.

Only what denotes a regular language is accepted: alternation, groups, classes, escapes, quantifiers,
and ``^``/``$`` at the ends of a top-level alternative. Lookaround, backreferences and word boundaries
are refused with the construct named. A pattern is unanchored (JSON Schema searches), so an end
without its anchor matches any text.

Validators disagree on a few classes: Python's ``re`` and Rust's ``regex`` (pydantic) read ``\\d``,
``\\w`` and ``\\s`` as Unicode classes, ECMA as ASCII ones. A class here holds only what every one of
them accepts (``\\d`` is ``[0-9]``, ``\\D`` excludes every Unicode digit), so an output matches the
pattern whichever engine checks it.
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass
from typing import Union

from edge.schema.charset import ANY, DIGITS, CharSet
from edge.schema.errors import SchemaError

MAX_GROUP_DEPTH = 64


@dataclass(frozen=True)
class Chars:
    set: CharSet


@dataclass(frozen=True)
class Seq:
    items: tuple["Regex", ...]


@dataclass(frozen=True)
class Alt:
    options: tuple["Regex", ...]


@dataclass(frozen=True)
class Repeat:
    item: "Regex"
    low: int
    high: int | None  # None: unbounded


Regex = Union[Chars, Seq, Alt, Repeat]
EPSILON = Seq(())
ANY_TEXT = Repeat(Chars(ANY), 0, None)


def literal(text: str) -> Regex:
    return Seq(tuple(Chars(CharSet.chars(c)) for c in text))


def seq(*items: Regex) -> Regex:
    return Seq(tuple(items))


def alt(*options: Regex) -> Regex:
    return Alt(tuple(options))


def chars(spec: str) -> Chars:
    """``chars("a-zA-Z_")``: a class written like the inside of ``[...]`` (no escapes)."""
    ranges, index = [], 0
    while index < len(spec):
        if index + 2 < len(spec) and spec[index + 1] == "-":
            ranges.append((ord(spec[index]), ord(spec[index + 2])))
            index += 3
        else:
            ranges.append((ord(spec[index]), ord(spec[index])))
            index += 1
    return Chars(CharSet.of(ranges))


def repeat(item: Regex, low: int, high: int | None) -> Regex:
    return Repeat(item, low, high)


# -- the classes, as (narrow, wide): narrow is matched by every engine, wide by at least one -----------

_ECMA_SPACE = CharSet.of([(0x09, 0x0D), (0x20, 0x20), (0xA0, 0xA0), (0x1680, 0x1680), (0x2000, 0x200A),
                          (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000),
                          (0xFEFF, 0xFEFF)])
_NARROW_SPACE = _ECMA_SPACE - CharSet.chars("\ufeff")  # Python and Rust do not count the BOM as space
_WIDE_SPACE = _ECMA_SPACE | CharSet.of([(0x1C, 0x1F), (0x85, 0x85)])  # Python's str.isspace adds these
_WORD = CharSet.of([(ord("0"), ord("9")), (ord("A"), ord("Z")), (ord("_"), ord("_")), (ord("a"), ord("z"))])
_LINE_TERMINATORS = CharSet.chars("\n\r\u2028\u2029")


@functools.lru_cache(maxsize=None)
def _unicode_categories(prefixes: tuple[str, ...]) -> CharSet:
    """Every character whose Unicode category starts with one of ``prefixes`` (computed once)."""
    ranges, start = [], None
    for point in range(0x110000):
        inside = unicodedata.category(chr(point)).startswith(prefixes)
        if inside and start is None:
            start = point
        elif not inside and start is not None:
            ranges.append((start, point - 1))
            start = None
    if start is not None:
        ranges.append((start, 0x10FFFF))
    return CharSet.of(ranges)


def _wide_digits() -> CharSet:
    return DIGITS | _unicode_categories(("Nd",))


def _wide_word() -> CharSet:
    # Python: str.isalnum() and "_"; Rust: Alphabetic, marks, digits, connector punctuation, joiners
    return (_WORD | _unicode_categories(("L", "M", "N", "Pc")) | CharSet.of([(0x200C, 0x200D)])
            | CharSet.of([(0x24B6, 0x24E9)]))


def _class_escape(letter: str, wide: bool) -> CharSet | None:
    """``\\d \\D \\w \\W \\s \\S``: the narrow set (every engine matches it) or the wide one (some engine
    matches it; what a negated class must leave out). None for any other letter."""
    if letter == "d":
        return _wide_digits() if wide else DIGITS
    if letter == "D":
        return DIGITS.complement() if wide else _wide_digits().complement()
    if letter == "w":
        return _wide_word() if wide else _WORD
    if letter == "W":
        return _WORD.complement() if wide else _wide_word().complement()
    if letter == "s":
        return _WIDE_SPACE if wide else _NARROW_SPACE
    if letter == "S":
        return _NARROW_SPACE.complement() if wide else _WIDE_SPACE.complement()
    return None


_CONTROL_ESCAPES = {"t": "\t", "n": "\n", "v": "\v", "f": "\f", "r": "\r", "0": "\0"}
_SYNTAX = set("^$\\.*+?()[]{}|/")


class _Parser:
    def __init__(self, pattern: str, location: str):
        self.text = pattern
        self.position = 0
        self.location = location
        self.depth = 0

    def fail(self, what: str) -> SchemaError:
        return SchemaError(f"pattern {self.text!r}: {what} cannot be enforced by a grammar", self.location)

    def peek(self, offset: int = 0) -> str:
        index = self.position + offset
        return self.text[index] if index < len(self.text) else ""

    def take(self) -> str:
        char = self.peek()
        self.position += 1
        return char

    def done(self) -> bool:
        return self.position >= len(self.text)

    # pattern := alternative ('|' alternative)* ; anchors only at the ends of top-level alternatives
    def pattern(self) -> Regex:
        options = [self.top_alternative()]
        while self.peek() == "|":
            self.take()
            options.append(self.top_alternative())
        if not self.done():
            raise SchemaError(f"pattern {self.text!r} is not a valid regular expression "
                              f"(unexpected {self.peek()!r} at {self.position})", self.location)
        return options[0] if len(options) == 1 else Alt(tuple(options))

    def top_alternative(self) -> Regex:
        anchored_start = self.peek() == "^"
        if anchored_start:
            self.take()
        items = self.terms(top=True)
        anchored_end = self.peek() == "$"
        if anchored_end:
            self.take()
            if self.peek() not in ("", "|"):
                raise self.fail("'$' before the end of the pattern")
        parts = ([] if anchored_start else [ANY_TEXT]) + items + ([] if anchored_end else [ANY_TEXT])
        return Seq(tuple(parts))

    def alternatives(self) -> Regex:
        options = [Seq(tuple(self.terms(top=False)))]
        while self.peek() == "|":
            self.take()
            options.append(Seq(tuple(self.terms(top=False))))
        return options[0] if len(options) == 1 else Alt(tuple(options))

    def terms(self, top: bool) -> list[Regex]:
        items: list[Regex] = []
        while not self.done() and self.peek() not in "|)":
            if self.peek() == "$" and top:
                break
            if self.peek() in "^$":
                raise self.fail(f"{self.peek()!r} inside the pattern")
            atom = self.atom()
            items.append(self.quantified(atom))
        return items

    def quantified(self, atom: Regex) -> Regex:
        bounds = self.quantifier()
        if bounds is None:
            return atom
        if self.peek() == "?":  # lazy: the same language
            self.take()
        if self.peek() in ("*", "+", "?") or self._quantifier_at_position():
            raise SchemaError(f"pattern {self.text!r}: nothing to repeat at {self.position}", self.location)
        low, high = bounds
        return Repeat(atom, low, high)

    def _quantifier_at_position(self) -> bool:
        saved = self.position
        try:
            return self.peek() == "{" and self._braces() is not None
        finally:
            self.position = saved

    def quantifier(self) -> tuple[int, int | None] | None:
        char = self.peek()
        if char == "*":
            self.take()
            return 0, None
        if char == "+":
            self.take()
            return 1, None
        if char == "?":
            self.take()
            return 0, 1
        if char == "{":
            saved = self.position
            bounds = self._braces()
            if bounds is None:
                self.position = saved
            return bounds
        return None

    def _braces(self) -> tuple[int, int | None] | None:
        """``{n}``, ``{n,}``, ``{n,m}``; None (position unchanged by the caller) when it is a literal brace."""
        self.take()
        low = self._number()
        if low is None:
            return None
        high: int | None = low
        if self.peek() == ",":
            self.take()
            high = self._number()
        if self.peek() != "}":
            return None
        self.take()
        if high is not None and high < low:
            raise SchemaError(f"pattern {self.text!r}: numbers out of order in a quantifier", self.location)
        return low, high

    def _number(self) -> int | None:
        start = self.position
        while self.peek().isdigit() and self.peek().isascii():
            self.take()
        return int(self.text[start:self.position]) if self.position > start else None

    def atom(self) -> Regex:
        char = self.take()
        if char == "(":
            return self.group()
        if char == "[":
            return Chars(self.char_class())
        if char == ".":
            return Chars(_LINE_TERMINATORS.complement())
        if char == "\\":
            return self.atom_escape()
        if char in ("*", "+", "?"):
            raise SchemaError(f"pattern {self.text!r}: nothing to repeat at {self.position - 1}", self.location)
        if char == "{" and self._quantifier_at(self.position - 1):
            raise SchemaError(f"pattern {self.text!r}: nothing to repeat at {self.position - 1}", self.location)
        if char == "]" or char == "}":
            return Chars(CharSet.chars(char))  # Annex B: a lone closing bracket is itself
        return Chars(CharSet.chars(char))

    def _quantifier_at(self, index: int) -> bool:
        saved = self.position
        self.position = index
        try:
            return self._braces() is not None
        finally:
            self.position = saved

    def group(self) -> Regex:
        if self.peek() == "?":
            self.take()
            kind = self.take()
            if kind == ":":
                pass
            elif kind == "<" and self.peek() not in ("=", "!"):
                self._group_name()
            elif kind in ("=", "!") or (kind == "<" and self.peek() in ("=", "!")):
                raise self.fail("a lookaround assertion")
            else:
                raise self.fail(f"the group syntax '(?{kind}'")
        self.depth += 1
        if self.depth > MAX_GROUP_DEPTH:
            raise SchemaError(f"pattern nests groups deeper than {MAX_GROUP_DEPTH}", self.location)
        inner = self.alternatives()
        self.depth -= 1
        if self.take() != ")":
            raise SchemaError(f"pattern {self.text!r} has an unclosed group", self.location)
        return inner

    def _group_name(self) -> None:
        while not self.done() and self.peek() != ">":
            self.take()
        if self.take() != ">":
            raise SchemaError(f"pattern {self.text!r} has an unterminated group name", self.location)

    def atom_escape(self) -> Regex:
        letter = self.peek()
        if letter == "":
            raise SchemaError(f"pattern {self.text!r} ends with a backslash", self.location)
        if letter in ("b", "B"):
            raise self.fail(f"the word boundary '\\{letter}'")
        if letter.isdigit() and letter != "0":
            raise self.fail("a backreference")
        if letter == "k" and self.peek(1) == "<":
            raise self.fail("a named backreference")
        shorthand = _class_escape(letter, wide=False)
        if shorthand is not None:
            self.take()
            return Chars(shorthand)
        point = self.char_escape()
        return Chars(CharSet.of([(point, point)]))

    def char_escape(self) -> int:
        """One escaped character after the backslash."""
        letter = self.take()
        if letter in ("p", "P"):
            raise self.fail(f"the Unicode property escape '\\{letter}'")
        if letter in _CONTROL_ESCAPES and not (letter == "0" and self.peek().isdigit()):
            point = ord(_CONTROL_ESCAPES[letter])
        elif letter == "c" and self.peek().isascii() and self.peek().isalpha():
            point = ord(self.take()) % 32
        elif letter == "x":
            point = self._hex(2)
        elif letter == "u":
            point = self._unicode_escape()
        elif letter.isalnum() and letter.isascii():
            raise SchemaError(f"pattern {self.text!r}: unknown escape '\\{letter}'", self.location)
        else:
            point = ord(letter)  # identity escape: \. \/ \- ...
        return point

    def _unicode_escape(self) -> int:
        if self.peek() == "{":
            self.take()
            start = self.position
            while self.peek() not in ("}", ""):
                self.take()
            digits = self.text[start:self.position]
            if self.take() != "}" or not digits:
                raise SchemaError(f"pattern {self.text!r}: bad \\u{{...}} escape", self.location)
            return self._parse_hex(digits)
        point = self._hex(4)
        if 0xD800 <= point <= 0xDBFF and self.text.startswith("\\u", self.position):
            saved = self.position
            self.position += 2
            low = self._hex(4)
            if 0xDC00 <= low <= 0xDFFF:
                return 0x10000 + ((point - 0xD800) << 10) + (low - 0xDC00)
            self.position = saved
        return point

    def _hex(self, count: int) -> int:
        digits = self.text[self.position:self.position + count]
        self.position += count
        return self._parse_hex(digits, count)

    def _parse_hex(self, digits: str, count: int | None = None) -> int:
        if (count is not None and len(digits) != count) or not all(c in "0123456789abcdefABCDEF" for c in digits):
            raise SchemaError(f"pattern {self.text!r}: bad hexadecimal escape", self.location)
        point = int(digits, 16)
        if point > 0x10FFFF:
            raise SchemaError(f"pattern {self.text!r}: escape beyond U+10FFFF", self.location)
        return point

    def char_class(self) -> CharSet:
        negated = self.peek() == "^"
        if negated:
            self.take()
        members = CharSet()  # a negated class leaves out the wide sets, a plain one holds the narrow ones
        first = True
        while True:
            if self.done():
                raise SchemaError(f"pattern {self.text!r} has an unclosed '['", self.location)
            if self.peek() == "]" and not first:
                self.take()
                break
            if self.peek() == "]" and first:  # ECMA: [] is the empty class, [^] any character
                self.take()
                break
            first = False
            low = self.class_atom(negated)
            if isinstance(low, CharSet):
                members = members | low
                continue
            if self.peek() == "-" and self.peek(1) not in ("]", ""):
                self.take()
                high = self.class_atom(negated)
                if isinstance(high, CharSet):
                    raise SchemaError(f"pattern {self.text!r}: a class escape cannot end a range", self.location)
                if high < low:
                    raise SchemaError(f"pattern {self.text!r}: range out of order in a class", self.location)
                span = CharSet.of([(low, high)])
            else:
                span = CharSet.of([(low, low)])
            members = members | span
        return members.complement() if negated else members

    def class_atom(self, negated: bool) -> int | CharSet:
        char = self.take()
        if char != "\\":
            return ord(char)
        letter = self.peek()
        if letter == "b":  # inside a class, \b is a backspace
            self.take()
            return 8
        if letter == "-":
            self.take()
            return ord("-")
        shorthand = _class_escape(letter, wide=negated)
        if shorthand is not None:
            self.take()
            return shorthand
        return self.char_escape()


def parse_pattern(pattern: str, location: str = "") -> Regex:
    """The language of strings ``pattern`` matches somewhere (JSON Schema's unanchored search)."""
    return _Parser(pattern, location).pattern()
