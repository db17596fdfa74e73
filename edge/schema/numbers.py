"""Exact numeric ranges and ``multipleOf`` as languages of number text.

A number is written ``-?(0|[1-9][0-9]*)(\\.[0-9]+)?``: no exponent, no leading zeros, never ``-0``. Its
language is the product of automata, each exact in decimal arithmetic:

- the syntax, with a cap on digits: at most 15 significant digits (more only where a bound itself has
  more), so a value a JSON parser reads into a double keeps its place against a bound (distinct decimals
  of up to 15 digits are distinct doubles, in the same order); an integer with no bound in one direction
  gets at most 15 digits that way (exact in a double, and it cannot run on to ``max_tokens``);
- ``x >= a`` / ``x > a`` and ``x <= b`` / ``x < b``, by comparing digit strings;
- ``multipleOf``: a step p·10^e (any finite decimal) is enforced exactly: ``x / step`` is an integer in
  decimal arithmetic. For a step like 0.1, JSON Schema's own float arithmetic can disagree
  (``0.3 / 0.1`` is not an integer in binary floating point); the grammar follows the decimal meaning.
"""

from __future__ import annotations

from decimal import Decimal

from edge.schema import automaton
from edge.schema.automaton import Dfa
from edge.schema.charset import DIGITS, CharSet
from edge.schema.regex import EPSILON, Regex, alt, chars, literal, repeat, seq

SIGNIFICANT_DIGITS = 15
NUMBER_ALPHABET = CharSet.chars("-.") | DIGITS
_ANY_DIGITS = repeat(chars("0-9"), 0, None)


def _digit(value: int) -> Regex:
    return literal(str(value))


def _digits(low: int, high: int) -> Regex:
    return chars(f"{low}-{high}") if low < high else _digit(low)


def _integer_part_above(value: int) -> Regex:
    """Unsigned integer text (no leading zeros) with a value greater than ``value`` (>= 0)."""
    text = str(value)
    longer = seq(chars("1-9"), repeat(chars("0-9"), len(text), None))
    same_length = []
    for index, digit in enumerate(text):
        if digit != "9" and not (index == 0 and len(text) > 1 and digit == "0"):
            same_length.append(seq(literal(text[:index]), _digits(int(digit) + 1, 9),
                                   repeat(chars("0-9"), len(text) - index - 1, len(text) - index - 1)))
    return alt(longer, *same_length)


def _integer_part_below(value: int) -> Regex:
    """Unsigned integer text (no leading zeros) with a value less than ``value`` (>= 1)."""
    text = str(value)
    options: list[Regex] = [literal("0")] if value > 0 else []
    if len(text) > 1:  # every shorter positive number
        options.append(seq(chars("1-9"), repeat(chars("0-9"), 0, len(text) - 2)))
    for index, digit in enumerate(text):
        lowest = 1 if index == 0 else 0
        if int(digit) > lowest:
            rest = len(text) - index - 1
            options.append(seq(literal(text[:index]), _digits(lowest, int(digit) - 1), repeat(chars("0-9"), rest, rest)))
    return alt(*options) if options else alt()


def _fraction_above(fraction: str, strict: bool) -> Regex:
    """An optional fraction ``.ddd`` whose value is >= 0.fraction (> when strict); ``fraction`` has no
    trailing zeros ("" is zero)."""
    any_fraction = alt(EPSILON, seq(literal("."), repeat(chars("0-9"), 1, None)))
    if not fraction:
        if not strict:
            return any_fraction
        return seq(literal("."), _ANY_DIGITS, chars("1-9"), _ANY_DIGITS)
    options = []
    for index, digit in enumerate(fraction):
        if digit != "9":
            options.append(seq(literal(fraction[:index]), _digits(int(digit) + 1, 9), _ANY_DIGITS))
    tail = seq(_ANY_DIGITS, chars("1-9"), _ANY_DIGITS) if strict else _ANY_DIGITS
    options.append(seq(literal(fraction), tail))
    return seq(literal("."), alt(*options))


def _fraction_below(fraction: str, strict: bool) -> Regex:
    """An optional fraction whose value is <= 0.fraction (< when strict)."""
    zeros = seq(literal("."), repeat(chars("0"), 1, None))
    if not fraction:
        return alt() if strict else alt(EPSILON, zeros)
    options: list[Regex] = []
    for index, digit in enumerate(fraction):
        if digit != "0":
            options.append(seq(literal(fraction[:index]), _digits(0, int(digit) - 1), _ANY_DIGITS))
    for length in range(1, len(fraction)):
        options.append(literal(fraction[:length]))
    if not strict:
        options.append(seq(literal(fraction), repeat(chars("0"), 0, None)))
    return alt(EPSILON, seq(literal("."), alt(*options)))


def _split(value: Decimal) -> tuple[int, str]:
    """|value| as (integer part, fraction digits without trailing zeros)."""
    magnitude = abs(value)
    whole = int(magnitude)
    fraction = format(magnitude - whole, "f").partition(".")[2].rstrip("0")
    return whole, fraction


def _magnitude_at_least(bound: Decimal, strict: bool) -> Regex:
    """Unsigned number text with value >= bound (> when strict), bound >= 0."""
    whole, fraction = _split(bound)
    any_fraction = alt(EPSILON, seq(literal("."), repeat(chars("0-9"), 1, None)))
    return alt(seq(literal(str(whole)), _fraction_above(fraction, strict)),
               seq(_integer_part_above(whole), any_fraction))


def _magnitude_at_most(bound: Decimal, strict: bool) -> Regex:
    """Unsigned number text with value <= bound (< when strict), bound >= 0."""
    whole, fraction = _split(bound)
    any_fraction = alt(EPSILON, seq(literal("."), repeat(chars("0-9"), 1, None)))
    options = [seq(literal(str(whole)), _fraction_below(fraction, strict))]
    if whole > 0:
        options.append(seq(_integer_part_below(whole), any_fraction))
    return alt(*options)


_POSITIVE = alt(seq(chars("1-9"), _ANY_DIGITS, alt(EPSILON, seq(literal("."), repeat(chars("0-9"), 1, None)))),
                seq(literal("0."), _ANY_DIGITS, chars("1-9"), _ANY_DIGITS))


def at_least(bound: Decimal, strict: bool) -> Regex:
    """Signed number text with value >= bound (> when strict)."""
    if bound >= 0:
        return _magnitude_at_least(bound, strict)
    # every value >= 0, and negatives whose magnitude is at most |bound| (and above zero: no "-0")
    nonnegative = _magnitude_at_least(Decimal(0), False)
    return alt(nonnegative, seq(literal("-"), _magnitude_at_most(-bound, strict)))


def at_most(bound: Decimal, strict: bool) -> Regex:
    if bound < 0:
        return seq(literal("-"), _magnitude_at_least(-bound, strict))
    negatives = seq(literal("-"), _POSITIVE)
    return alt(negatives, _magnitude_at_most(bound, strict))


def syntax(integer: bool, integer_digits: int, fraction_digits: int) -> Dfa:
    """Canonical number text with the digit caps of the module docstring.

    ``integer_digits`` caps the integer part; the fraction gets ``max(SIGNIFICANT_DIGITS - k,
    fraction_digits)`` digits after a k-digit integer part (15 after ``0.``)."""
    options = [literal("0") if integer else seq(literal("0"), _fraction(SIGNIFICANT_DIGITS, fraction_digits))]
    for length in range(1, integer_digits + 1):
        whole = seq(chars("1-9"), repeat(chars("0-9"), length - 1, length - 1))
        if integer:
            options.append(whole)
        else:
            options.append(seq(whole, _fraction(SIGNIFICANT_DIGITS - length, fraction_digits)))
    unsigned = alt(*options)
    # "-0", "-0.0", ...: a negative sign needs a nonzero digit somewhere
    negative = automaton.intersect(automaton.from_regex(seq(literal("-"), unsigned)),
                                   automaton.from_regex(seq(literal("-"), _POSITIVE)))
    return automaton.union(automaton.from_regex(unsigned), negative, NUMBER_ALPHABET)


def _fraction(room: int, needed: int) -> Regex:
    digits = max(room, needed, 0)
    if digits == 0:
        return EPSILON
    return alt(EPSILON, seq(literal("."), repeat(chars("0-9"), 1, digits)))


def multiple_of(step: Decimal, budget: int = automaton.MAX_STATES) -> Dfa:
    """Number text (any sign, any length) whose value is an integer multiple of ``step`` > 0."""
    sign, digits, exponent = step.normalize().as_tuple()
    factor = int("".join(map(str, digits)))
    if exponent >= 0:
        return _multiple_of_scaled(factor, exponent, budget)
    return _multiple_of_fraction(factor, -exponent, budget)


def _multiple_of_fraction(factor: int, places: int, budget: int) -> Dfa:
    """x = I.F with x * 10^places ≡ 0 (mod factor): digits beyond ``places`` must be zero.

    States: (remainder, fraction digits read, or ``None`` in the integer part)."""
    states: dict[tuple[int, int | None], int] = {}
    dfa = Dfa()

    def state(key: tuple[int, int | None]) -> int:
        if key not in states:
            if len(states) >= budget:
                raise automaton.TooLarge(f"multipleOf needs more than {budget} automaton states")
            states[key] = len(dfa.edges)
            dfa.edges.append([])
            remainder, read = key
            scale = pow(10, places - min(read or 0, places), factor)
            dfa.accepting.append(remainder * scale % factor == 0)
            todo.append(key)
        return states[key]

    todo: list[tuple[int, int | None]] = []
    start = state((0, None))
    dfa.edges[start].append((CharSet.chars("-"), start))  # the sign does not change divisibility
    while todo:
        key = todo.pop()
        source = states[key]
        remainder, read = key
        if read is None:
            dfa.edges[source].append((CharSet.chars("."), state((remainder, 0))))
        for digit in range(10):
            if read is not None and read >= places:
                if digit == 0:
                    dfa.edges[source].append((CharSet.chars("0"), state((remainder, places))))
                continue
            following = (remainder * 10 + digit) % factor
            dfa.edges[source].append((CharSet.chars(str(digit)), state((following, None if read is None else read + 1))))
    return automaton.minimize(dfa)


def _multiple_of_scaled(factor: int, zeros: int, budget: int) -> Dfa:
    """x an integer multiple of factor·10^zeros: a fraction only of zeros, the integer part ending in
    ``zeros`` zeros after a prefix ≡ 0 (mod factor), or x = 0.

    States: (prefix remainder, trailing zeros so far up to ``zeros``, phase)."""
    states: dict[tuple, int] = {}
    dfa = Dfa()
    todo: list[tuple] = []

    def state(key: tuple) -> int:
        if key not in states:
            if len(states) >= budget:
                raise automaton.TooLarge(f"multipleOf needs more than {budget} automaton states")
            states[key] = len(dfa.edges)
            dfa.edges.append([])
            phase, remainder, trailing, zero_so_far = key
            dfa.accepting.append(phase != "start" and (zero_so_far or (trailing == zeros and remainder == 0)))
            todo.append(key)
        return states[key]

    start = state(("start", 0, 0, True))
    dfa.edges[start].append((CharSet.chars("-"), start))
    while todo:
        key = todo.pop()
        source = states[key]
        phase, remainder, trailing, zero_so_far = key
        if phase == "fraction":
            dfa.edges[source].append((CharSet.chars("0"), source))
            continue
        if phase == "integer":
            dfa.edges[source].append((CharSet.chars("."), state(("fraction", remainder, trailing, zero_so_far))))
        for digit in range(10):
            if digit:
                following = ("integer", (remainder * pow(10, trailing, factor) * 10 + digit) % factor, 0, False)
            elif trailing < zeros:
                following = ("integer", remainder, trailing + 1, zero_so_far)
            else:
                following = ("integer", remainder * 10 % factor, trailing, zero_so_far)
            dfa.edges[source].append((CharSet.chars(str(digit)), state(following)))
    return automaton.minimize(dfa)
