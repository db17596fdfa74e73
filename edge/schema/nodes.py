"""The intermediate tree both grammars are emitted from: typed nodes with their bounds already exact.

A JSON schema lowers to one ``Tree``; the JSON emitter and the Gemma 4 emitter walk the same tree, so
what one grammar allows the other allows too, spelled in its own syntax. Lexical languages (strings,
numbers, keys) are automata; structure (arrays, objects, unions, references) is nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

from edge.schema.automaton import Dfa


@dataclass(frozen=True, eq=False)
class Never:
    """No value: an unsatisfiable schema (``reason`` says why, for the 400). A ``weak`` reason (two
    parts of different types) gives way to any other when a union reports why all of it failed."""

    reason: str
    weak: bool = False


@dataclass(frozen=True, eq=False)
class AnyValue:
    """Any JSON value."""


@dataclass(frozen=True, eq=False)
class Literal:
    """Exactly one JSON value (``const``, an ``enum`` member)."""

    value: Any


@dataclass(frozen=True, eq=False)
class Number:
    """Number text in ``dfa``'s language (the same text in JSON and in Gemma's call syntax)."""

    dfa: Dfa
    integer: bool


@dataclass(frozen=True, eq=False)
class Boolean:
    pass


@dataclass(frozen=True, eq=False)
class Null:
    pass


@dataclass(frozen=True, eq=False)
class Text:
    """A string whose decoded characters spell a text of ``dfa`` with ``min_length``..``max_length``
    characters (``max_length`` None: no bound). Bounds stay apart from the automaton so that a huge
    bound costs O(log N) rules instead of N states."""

    dfa: Dfa
    min_length: int = 0
    max_length: int | None = None


@dataclass(frozen=True, eq=False)
class Array:
    """``prefix`` items in order, then any number of ``rest`` (Never: none), ``min_items``..``max_items``."""

    prefix: tuple["Node", ...]
    rest: "Node"
    min_items: int = 0
    max_items: int | None = None


@dataclass(frozen=True, eq=False)
class Property:
    name: str
    value: "Node"  # Never: the key may not appear at all
    required: bool


@dataclass(frozen=True, eq=False)
class Object:
    """Declared properties (written in declaration order), then extra keys valued by ``additional``.

    ``additional`` is what the schema allows for undeclared keys (AnyValue when it says nothing);
    ``extra_keys`` says whether the grammar writes any: only when the schema asked for them
    (``additionalProperties: true`` or a schema). Writing fewer keys than allowed is still valid."""

    properties: tuple[Property, ...]
    additional: "Node" = field(default_factory=AnyValue)
    extra_keys: bool = False
    min_properties: int = 0
    max_properties: int | None = None


@dataclass(frozen=True, eq=False)
class Union_:
    options: tuple["Node", ...]


@dataclass(frozen=True, eq=False)
class Ref:
    """A named definition of the tree (the only way to recursion)."""

    name: str


Node = Union[Never, AnyValue, Literal, Number, Boolean, Null, Text, Array, Object, Union_, Ref]


@dataclass
class Tree:
    root: Node
    definitions: dict[str, Node] = field(default_factory=dict)
