"""String ``format``s as automata: every text they accept passes the checkers clients use.

Each language is a subset of the format's standard that Python's checkers accept as well: jsonschema's
format checker (rfc3339-validator, fqdn, rfc3986-validator, isoduration, ipaddress, uuid) and
pydantic's types (``datetime``, ``date``, ``time``, ``timedelta``, ``UUID``, ``EmailStr``
through email-validator, ``AnyUrl``). Where those disagree or are looser than the standard, the
grammar takes the narrower side:

- ``date``, ``date-time``: real calendar dates (month lengths, leap years), years 0001-9999;
  ``date-time`` and ``time`` carry an offset (``Z`` or ``±HH:MM``), seconds 00-59, up to 6 decimals;
- ``duration``: RFC 3339 appendix A (``P1Y2M``, ``PT5M``, ``P3W``), numbers of up to 4 digits;
- ``email``: dot-atom local part (up to 64 characters) ``@`` one to three hostname labels and a
  letters-only top-level label that is not a special-use name (``test``, ``local``, ...);
- ``hostname``: one to three labels (letters, digits, single inner hyphens, up to 63 characters),
  the last starting with a letter;
- ``ipv4`` dotted quads without leading zeros; ``ipv6`` the eight-group forms with ``::``, no
  embedded IPv4 or zone; ``uuid`` hexadecimal 8-4-4-4-12;
- ``uri``: ``http``/``https`` with a hostname, an optional port, path, query and fragment of
  unreserved and sub-delimiter characters (no percent escapes); ``uri-reference`` adds absolute paths;
- ``json-pointer``, ``relative-json-pointer``: RFC 6901 and its relative form.

Formats that no checker validates (``password``, ``binary``, OpenAPI's ``int32`` on a string, ...)
are annotations; ``lower.py`` decides that. What the standard defines and this table lacks is refused.
"""

from __future__ import annotations

import functools

from edge.schema import automaton
from edge.schema.automaton import Dfa
from edge.schema.charset import ANY, CharSet
from edge.schema.regex import Chars, alt, parse_pattern, repeat, seq

_YEAR = r"(?:000[1-9]|00[1-9]\d|0[1-9]\d\d|[1-9]\d{3})"
_LEAP_YEAR = r"(?:\d\d(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
_MONTH_DAY = (r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\d|30)"
              r"|02-(?:0[1-9]|1\d|2[0-8]))")
_DATE = rf"(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)"
_TIME = r"(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,6})?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)"
_N = r"\d{1,4}"
_DURATION = (rf"P(?:(?:{_N}D|{_N}M(?:{_N}D)?|{_N}Y(?:{_N}M(?:{_N}D)?)?)"
             rf"(?:T(?:{_N}H(?:{_N}M(?:{_N}S)?)?|{_N}M(?:{_N}S)?|{_N}S))?"
             rf"|T(?:{_N}H(?:{_N}M(?:{_N}S)?)?|{_N}M(?:{_N}S)?|{_N}S)|{_N}W)")
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_H = "[0-9a-fA-F]{1,4}"
_IPV6 = "|".join([
    rf"(?:{_H}:){{7}}{_H}", rf"(?:{_H}:){{1,7}}:", rf"(?:{_H}:){{1,6}}:{_H}", rf"(?:{_H}:){{1,5}}(?::{_H}){{1,2}}",
    rf"(?:{_H}:){{1,4}}(?::{_H}){{1,3}}", rf"(?:{_H}:){{1,3}}(?::{_H}){{1,4}}", rf"(?:{_H}:){{1,2}}(?::{_H}){{1,5}}",
    rf"{_H}:(?::{_H}){{1,6}}", rf":(?::{_H}){{1,7}}", "::"])
_UUID = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_PCHAR = r"[A-Za-z0-9._~!$&'()*+,;=:@-]"
_PATH_QUERY_FRAGMENT = rf"(?:/{_PCHAR}*)*(?:\?(?:{_PCHAR}|[/?])*)?(?:#(?:{_PCHAR}|[/?])*)?"
_ABSOLUTE_PATH = rf"/(?:{_PCHAR}+(?:/{_PCHAR}*)*)?(?:\?(?:{_PCHAR}|[/?])*)?(?:#(?:{_PCHAR}|[/?])*)?"
_JSON_POINTER = r"(?:/(?:[^~/]|~[01])*)*"
_LETTERS = CharSet.range("A", "Z") | CharSet.range("a", "z")
_SPECIAL_USE_DOMAINS = ("arpa", "invalid", "local", "localhost", "onion", "test")

SUPPORTED = ("date-time", "date", "time", "duration", "email", "hostname", "ipv4", "ipv6", "uuid", "uri",
             "uri-reference", "json-pointer", "relative-json-pointer")
# formats the JSON Schema standard gives a meaning that no grammar here enforces: refused, never ignored
REFUSED = ("idn-email", "idn-hostname", "iri", "iri-reference", "uri-template", "regex")


def _anchored(pattern: str) -> Dfa:
    return automaton.from_regex(parse_pattern(f"^(?:{pattern})$"))


def _bounded(dfa: Dfa, low: int, high: int) -> Dfa:
    """``dfa`` limited to texts of ``low``..``high`` characters."""
    return automaton.intersect(dfa, automaton.from_regex(repeat(Chars(ANY), low, high)))


def _case_insensitive(word: str):
    return seq(*(Chars(CharSet.chars(c.lower() + c.upper())) for c in word))


@functools.lru_cache(maxsize=None)
def _label(first_is_letter: bool) -> Dfa:
    """A hostname label: letters and digits with single inner hyphens, 1..63 characters."""
    first = "[A-Za-z]" if first_is_letter else "[A-Za-z0-9]"
    return _bounded(_anchored(f"{first}(?:-?[A-Za-z0-9])*"), 1, 63)


def _labels(last: Dfa, before: int) -> Dfa:
    """``last`` after 0..``before`` labels and dots (at least one when ``before`` is negative: -n)."""
    required = before < 0
    count = abs(before)
    result = last
    options = [] if required else [last]
    prefix = last
    for _ in range(count):
        prefix = _join(_label(False), ".", prefix)
        options.append(prefix)
    result = options[0]
    for option in options[1:]:
        result = automaton.union(result, option)
    return result


@functools.lru_cache(maxsize=None)
def _hostname() -> Dfa:
    return _labels(_label(True), 2)


@functools.lru_cache(maxsize=None)
def _email() -> Dfa:
    atext = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
    local = _bounded(_anchored(rf"{atext}+(?:\.{atext}+)*"), 1, 64)
    special = automaton.from_regex(alt(*(_case_insensitive(word) for word in _SPECIAL_USE_DOMAINS)))
    top = automaton.intersect(_anchored("[A-Za-z]{2,24}"), automaton.complement(special, _LETTERS))
    return _join(local, "@", _labels(top, -2))


def _join(first: Dfa, separator: str, second: Dfa) -> Dfa:
    """The concatenation first + separator + second, by wiring the automata together."""
    joined = automaton.Dfa([list(edges) for edges in first.edges], [False] * first.size)
    # bridge state i: the first i characters of the separator read; the last one is ``second``'s start
    bridge = joined.size
    for index in range(len(separator)):
        joined.edges.append([(CharSet.chars(separator[index + 1]), bridge + index + 1)]
                            if index + 1 < len(separator) else [])
        joined.accepting.append(False)
    offset = joined.size
    for edges in second.edges:
        joined.edges.append([(chars, target + offset) for chars, target in edges])
    joined.accepting.extend(second.accepting)
    if separator:
        last_bridge = bridge + len(separator) - 1
        joined.edges[last_bridge] = [(chars, target + offset) for chars, target in second.edges[0]]
        joined.accepting[last_bridge] = second.accepting[0]
        entry = [(CharSet.chars(separator[0]), bridge)]
    else:
        entry = [(chars, target + offset) for chars, target in second.edges[0]]
    for state in range(first.size):
        if first.accepting[state]:
            joined.edges[state] = joined.edges[state] + entry
            joined.accepting[state] = not separator and second.accepting[0]
    return _determinize(joined)


def _determinize(dfa: Dfa) -> Dfa:
    """Subset construction over an automaton whose states may have overlapping edges."""
    index = {frozenset([0]): 0}
    result = automaton.Dfa([[]], [dfa.accepting[0]])
    todo = [frozenset([0])]
    while todo:
        current = todo.pop()
        source = index[current]
        moves = [(chars, target) for state in current for chars, target in dfa.edges[state]]
        for chars, targets in automaton._partition(moves):
            if targets not in index:
                if len(index) >= automaton.MAX_STATES:
                    raise automaton.TooLarge("a format needs too many automaton states")
                index[targets] = len(result.edges)
                result.edges.append([])
                result.accepting.append(any(dfa.accepting[state] for state in targets))
                todo.append(targets)
            result.edges[source].append((chars, index[targets]))
    return automaton.minimize(result)


@functools.lru_cache(maxsize=None)
def _uri(reference: bool) -> Dfa:
    host = _hostname()
    scheme_and_host = _join(_anchored("https?"), "://", host)
    rest = _anchored(rf"(?::[1-9]\d{{0,3}})?{_PATH_QUERY_FRAGMENT}")
    absolute = _join(scheme_and_host, "", rest)
    if not reference:
        return absolute
    return automaton.union(absolute, _anchored(_ABSOLUTE_PATH))


_SIMPLE = {
    "date": _DATE, "time": _TIME, "date-time": rf"{_DATE}T{_TIME}", "duration": _DURATION, "ipv4": _IPV4,
    "ipv6": _IPV6, "uuid": _UUID, "json-pointer": _JSON_POINTER,
    # jsonschema refuses a zero followed by a digit anywhere in the number ("100"): none is written
    "relative-json-pointer": rf"(?:0|[1-9]{{1,8}}0?)(?:#|{_JSON_POINTER})",
}


@functools.lru_cache(maxsize=None)
def format_automaton(name: str) -> Dfa:
    """The language of format ``name`` (one of ``SUPPORTED``)."""
    if name in _SIMPLE:
        return _anchored(_SIMPLE[name])
    if name == "email":
        return _email()
    if name == "hostname":
        return _hostname()
    if name == "uri":
        return _uri(reference=False)
    if name == "uri-reference":
        return _uri(reference=True)
    raise KeyError(name)
