"""Deterministic automata over characters: the lexical half of the schema layer.

Every string, number and key language ends up as one minimal DFA: a pattern, a format, a numeric range,
``multipleOf``, the keys ``additionalProperties`` may use, Gemma's "no control marker" rule. Combining
two constraints is a product, so ``pattern`` with ``format``, a range with ``multipleOf`` or a string
with Gemma's rule stay exact. A DFA becomes one grammar rule per state: one live parse at a time in
llama.cpp, however ambiguous the regex was.

Sizes are bounded: an automaton that would exceed ``MAX_STATES`` is a ``SchemaError``, never a stall.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from edge.schema.charset import ANY, CharSet
from edge.schema.errors import SchemaError
from edge.schema.regex import Alt, Chars, Regex, Repeat, Seq

MAX_STATES = 4000  # of one automaton, before and after a product


class TooLarge(SchemaError):
    """An automaton over the size budget."""


@dataclass
class Dfa:
    """State 0 starts. ``edges[s]`` holds disjoint character sets, each with its target state."""

    edges: list[list[tuple[CharSet, int]]] = field(default_factory=list)
    accepting: list[bool] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.edges)

    def is_empty(self) -> bool:
        return not any(self.accepting)

    def accepts(self, text: str) -> bool:
        state = 0
        for char in text:
            state = self.step(state, ord(char))
            if state < 0:
                return False
        return self.accepting[state]

    def step(self, state: int, point: int) -> int:
        for chars, target in self.edges[state]:
            if point in chars:
                return target
        return -1

    def alphabet(self) -> CharSet:
        result = CharSet()
        for edges in self.edges:
            for chars, _ in edges:
                result = result | chars
        return result

    def min_length(self) -> int | None:
        """Characters in the shortest accepted text; None when nothing is accepted (computed once:
        automata are not changed after they are built)."""
        if "_shortest" not in self.__dict__:
            distance = self.distances_to_accept()
            self.__dict__["_shortest"] = distance[0] if self.edges and distance[0] is not None else None
        return self.__dict__["_shortest"]

    def distances_to_accept(self) -> list[int | None]:
        """Per state, the fewest characters that lead to acceptance (None: never)."""
        reverse: list[list[int]] = [[] for _ in self.edges]
        for source, edges in enumerate(self.edges):
            for _, target in edges:
                reverse[target].append(source)
        distance: list[int | None] = [0 if accepting else None for accepting in self.accepting]
        frontier = [state for state, accepting in enumerate(self.accepting) if accepting]
        while frontier:
            following = []
            for state in frontier:
                for source in reverse[state]:
                    if distance[source] is None:
                        distance[source] = distance[state] + 1
                        following.append(source)
            frontier = following
        return distance

    def max_length(self) -> int | None:
        """Characters in the longest accepted text; None when unbounded (a loop on the way)."""
        order = _topological(self)
        if order is None:
            return None
        longest = [0 if accepting else -1 for accepting in self.accepting]
        for state in reversed(order):
            for _, target in self.edges[state]:
                if longest[target] >= 0:
                    longest[state] = max(longest[state], longest[target] + 1)
        return longest[0] if longest[0] >= 0 else None

    def self_loop(self) -> CharSet | None:
        """The set C when this DFA is exactly C* (one accepting state looping on C)."""
        if self.size == 1 and self.accepting[0] and all(target == 0 for _, target in self.edges[0]):
            return _union(chars for chars, _ in self.edges[0])
        return None


def _union(sets: Iterable[CharSet]) -> CharSet:
    result = CharSet()
    for item in sets:
        result = result | item
    return result


def _topological(dfa: Dfa) -> list[int] | None:
    """States in topological order, or None when a cycle is reachable from the start."""
    order, state_of = [], [0] * dfa.size  # 0 new, 1 on the stack, 2 done
    stack = [(0, iter(dfa.edges[0]))] if dfa.size else []
    if stack:
        state_of[0] = 1
    while stack:
        state, edges = stack[-1]
        advanced = False
        for _, target in edges:
            if state_of[target] == 1:
                return None
            if state_of[target] == 0:
                state_of[target] = 1
                stack.append((target, iter(dfa.edges[target])))
                advanced = True
                break
        if not advanced:
            stack.pop()
            state_of[state] = 2
            order.append(state)
    order.reverse()
    return order


# -- from a regex: Thompson's construction, then subsets -------------------------------------------


class _Nfa:
    def __init__(self, budget: int):
        self.epsilon: list[list[int]] = []
        self.edges: list[list[tuple[CharSet, int]]] = []
        self.budget = budget

    def state(self) -> int:
        if len(self.edges) >= self.budget:
            raise TooLarge("a pattern or format expands beyond the automaton budget "
                           f"({self.budget} states)")
        self.epsilon.append([])
        self.edges.append([])
        return len(self.edges) - 1

    def build(self, regex: Regex, start: int) -> int:
        """Adds ``regex`` from ``start``; returns the state reached after it."""
        if isinstance(regex, Chars):
            end = self.state()
            if regex.set:
                self.edges[start].append((regex.set, end))
            return end
        if isinstance(regex, Seq):
            current = start
            for item in regex.items:
                current = self.build(item, current)
            return current
        if isinstance(regex, Alt):
            end = self.state()
            for option in regex.options:
                entry = self.state()
                self.epsilon[start].append(entry)
                self.epsilon[self.build(option, entry)].append(end)
            return end
        return self._repeat(regex, start)

    def _repeat(self, regex: Repeat, start: int) -> int:
        current = start
        for _ in range(regex.low):
            current = self.build(regex.item, current)
        if regex.high is None:
            loop = self.state()
            self.epsilon[current].append(loop)
            self.epsilon[self.build(regex.item, loop)].append(loop)
            return loop
        end = self.state()
        for _ in range(regex.high - regex.low):
            self.epsilon[current].append(end)
            current = self.build(regex.item, current)
        self.epsilon[current].append(end)
        return end

    def closure(self, states: Iterable[int]) -> frozenset[int]:
        seen = set(states)
        todo = list(seen)
        while todo:
            for following in self.epsilon[todo.pop()]:
                if following not in seen:
                    seen.add(following)
                    todo.append(following)
        return frozenset(seen)


def from_regex(regex: Regex, budget: int = MAX_STATES) -> Dfa:
    nfa = _Nfa(budget * 8)
    start = nfa.state()
    accept = nfa.build(regex, start)
    first = nfa.closure([start])
    index = {first: 0}
    dfa = Dfa([[]], [accept in first])
    todo = [first]
    while todo:
        current = todo.pop()
        source = index[current]
        moves = [(chars, target) for state in current for chars, target in nfa.edges[state]]
        for chars, targets in _partition(moves):
            closed = nfa.closure(targets)
            if closed not in index:
                if len(index) >= budget:
                    raise TooLarge(f"a pattern or format needs more than {budget} automaton states")
                index[closed] = len(dfa.edges)
                dfa.edges.append([])
                dfa.accepting.append(accept in closed)
                todo.append(closed)
            dfa.edges[source].append((chars, index[closed]))
    return minimize(dfa)


def _partition(moves: list[tuple[CharSet, int]]) -> list[tuple[CharSet, frozenset[int]]]:
    """Disjoint character sets, each with every target some move on it reaches."""
    events: dict[int, list[tuple[int, int]]] = {}
    for number, (chars, _) in enumerate(moves):
        for low, high in chars.ranges:
            events.setdefault(low, []).append((number, 1))
            events.setdefault(high + 1, []).append((number, -1))
    active: dict[int, int] = {}
    grouped: dict[frozenset[int], list[tuple[int, int]]] = {}
    points = sorted(events)
    for position, point in enumerate(points):
        for number, change in events[point]:
            active[number] = active.get(number, 0) + change
            if not active[number]:
                del active[number]
        if active and position + 1 < len(points):
            targets = frozenset(moves[number][1] for number in active)
            grouped.setdefault(targets, []).append((point, points[position + 1] - 1))
    return [(CharSet.of(ranges), targets) for targets, ranges in grouped.items()]


# -- operations -----------------------------------------------------------------------------------


def literal_set(words: Iterable[str]) -> Dfa:
    """The finite language ``words`` (a trie, minimized)."""
    dfa = Dfa([[]], [False])
    children: list[dict[int, int]] = [{}]
    for word in words:
        state = 0
        for char in word:
            point = ord(char)
            if point not in children[state]:
                children[state][point] = len(dfa.edges)
                dfa.edges.append([])
                dfa.accepting.append(False)
                children.append({})
            state = children[state][point]
        dfa.accepting[state] = True
    for state, moves in enumerate(children):
        dfa.edges[state] = [(CharSet.of([(point, point)]), target) for point, target in moves.items()]
    return minimize(dfa)


def intersect(first: Dfa, second: Dfa, budget: int = MAX_STATES) -> Dfa:
    index = {(0, 0): 0}
    product = Dfa([[]], [first.accepting[0] and second.accepting[0]])
    todo = [(0, 0)]
    while todo:
        pair = todo.pop()
        source = index[pair]
        for chars_a, target_a in first.edges[pair[0]]:
            for chars_b, target_b in second.edges[pair[1]]:
                common = chars_a & chars_b
                if not common:
                    continue
                target = (target_a, target_b)
                if target not in index:
                    if len(index) >= budget:
                        raise TooLarge(f"combining these string or number constraints needs more than "
                                       f"{budget} automaton states")
                    index[target] = len(product.edges)
                    product.edges.append([])
                    product.accepting.append(first.accepting[target_a] and second.accepting[target_b])
                    todo.append(target)
                product.edges[source].append((common, index[target]))
    return minimize(product)


def complement(dfa: Dfa, alphabet: CharSet = ANY) -> Dfa:
    """Every text over ``alphabet`` that ``dfa`` rejects."""
    sink = dfa.size
    result = Dfa([list(edges) for edges in dfa.edges] + [[(alphabet, sink)]],
                 [not accepting for accepting in dfa.accepting] + [True])
    for state in range(sink):
        covered = _union(chars for chars, _ in dfa.edges[state])
        missing = alphabet - covered
        result.edges[state] = [(chars & alphabet, target) for chars, target in result.edges[state]
                               if chars & alphabet]
        if missing:
            result.edges[state].append((missing, sink))
    return minimize(result)


def union(first: Dfa, second: Dfa, alphabet: CharSet = ANY) -> Dfa:
    """Texts that either accepts: a product in which one side may have stopped (state -1)."""
    index = {(0, 0): 0}
    result = Dfa([[]], [first.accepting[0] or second.accepting[0]])
    todo = [(0, 0)]
    while todo:
        pair = todo.pop()
        source = index[pair]
        moves = ([(chars, ("a", target)) for chars, target in first.edges[pair[0]]] if pair[0] >= 0 else []) + \
                ([(chars, ("b", target)) for chars, target in second.edges[pair[1]]] if pair[1] >= 0 else [])
        for chars, targets in _partition(moves):
            sides = dict(targets)
            target = (sides.get("a", -1), sides.get("b", -1))
            if target not in index:
                if len(index) >= MAX_STATES:
                    raise TooLarge(f"a union of string constraints needs more than {MAX_STATES} automaton states")
                index[target] = len(result.edges)
                result.edges.append([])
                result.accepting.append((target[0] >= 0 and first.accepting[target[0]])
                                        or (target[1] >= 0 and second.accepting[target[1]]))
                todo.append(target)
            result.edges[source].append((chars & alphabet, index[target]))
    return minimize(result)


def trim(dfa: Dfa) -> Dfa:
    """Drops states that cannot lead to acceptance (and those unreachable); keeps state 0 first."""
    distance = dfa.distances_to_accept()
    if dfa.size == 0 or distance[0] is None:
        return Dfa([[]], [False])
    keep, todo = {0: 0}, [0]
    order = [0]
    while todo:
        state = todo.pop()
        for _, target in dfa.edges[state]:
            if distance[target] is not None and target not in keep:
                keep[target] = len(order)
                order.append(target)
                todo.append(target)
    edges = [[(chars, keep[target]) for chars, target in dfa.edges[state] if target in keep] for state in order]
    return Dfa(edges, [dfa.accepting[state] for state in order])


def minimize(dfa: Dfa) -> Dfa:
    """Hopcroft's partition refinement over the trimmed automaton and its alphabet's atoms."""
    dfa = trim(dfa)
    flat = [_flat_edges(edges) for edges in dfa.edges]
    block = _hopcroft(dfa, flat)
    return _quotient(dfa, flat, block)


def _atoms(flat: list[list[tuple[int, int, int]]]) -> list[int]:
    """Breakpoints that cut the alphabet into atoms: every edge's set is a union of atoms."""
    points = set()
    for edges in flat:
        for low, high, _ in edges:
            points.add(low)
            points.add(high + 1)
    return sorted(points)


def _hopcroft(dfa: Dfa, flat: list[list[tuple[int, int, int]]]) -> list[int]:
    """Block number per state; a missing move goes to an implicit dead state (number ``dfa.size``)."""
    points = _atoms(flat)
    dead = dfa.size
    # inverse[atom][target] -> sources
    inverse: list[dict[int, list[int]]] = [dict() for _ in points]
    for state, edges in enumerate(flat + [[]]):
        position, targets = 0, []
        for low, high, target in edges:
            while points[position] < low:
                targets.append((position, dead))
                position += 1
            while position < len(points) and points[position] <= high:
                targets.append((position, target))
                position += 1
        targets.extend((atom, dead) for atom in range(position, len(points)))
        for atom, target in targets:
            inverse[atom].setdefault(target, []).append(state)
    accepting = {state for state in range(dfa.size) if dfa.accepting[state]}
    rejecting = set(range(dfa.size + 1)) - accepting
    partition = [part for part in (accepting, rejecting) if part]
    block_of = {state: number for number, part in enumerate(partition) for state in part}
    waiting = [min(range(len(partition)), key=lambda number: len(partition[number]))] if len(partition) > 1 else []
    queued = set(waiting)
    while waiting:
        number_popped = waiting.pop()
        queued.discard(number_popped)
        splitter = partition[number_popped]
        for atom in range(len(points)):
            sources = set()
            for target in splitter:
                sources.update(inverse[atom].get(target, ()))
            touched: dict[int, set[int]] = {}
            for state in sources:
                touched.setdefault(block_of[state], set()).add(state)
            for number, inside in touched.items():
                if len(inside) == len(partition[number]):
                    continue
                outside = partition[number] - inside
                partition[number] = inside
                partition.append(outside)
                new_number = len(partition) - 1
                for state in outside:
                    block_of[state] = new_number
                if number in queued:
                    waiting.append(new_number)
                    queued.add(new_number)
                else:
                    smaller = number if len(inside) <= len(outside) else new_number
                    waiting.append(smaller)
                    queued.add(smaller)
    return [block_of[state] for state in range(dfa.size)]


def _flat_edges(edges: list[tuple[CharSet, int]]) -> list[tuple[int, int, int]]:
    """(low, high, target) per range, sorted; a DFA's edges are disjoint, so the ranges are too."""
    return sorted((low, high, target) for chars, target in edges for low, high in chars.ranges)


def _signature(flat: list[tuple[int, int, int]], block: list[int]) -> tuple:
    """The ranges with targets replaced by blocks, adjacent ranges into one block merged: canonical."""
    merged: list[list[int]] = []
    for low, high, target in flat:
        target_block = block[target]
        if merged and merged[-1][1] + 1 == low and merged[-1][2] == target_block:
            merged[-1][1] = high
        else:
            merged.append([low, high, target_block])
    return tuple(map(tuple, merged))


def _quotient(dfa: Dfa, flat: list[list[tuple[int, int, int]]], block: list[int]) -> Dfa:
    """One state per block, numbered in breadth-first order from the start."""
    representative: dict[int, int] = {}
    for state, state_block in enumerate(block):
        representative.setdefault(state_block, state)
    number = {block[0]: 0}
    order = [block[0]]
    position = 0
    result = Dfa()
    while position < len(order):
        state = representative[order[position]]
        position += 1
        ranges_by_block: dict[int, list[tuple[int, int]]] = {}
        for low, high, target_block in _signature(flat[state], block):
            ranges_by_block.setdefault(target_block, []).append((low, high))
        edges = []
        for target_block, ranges in ranges_by_block.items():
            if target_block not in number:
                number[target_block] = len(order)
                order.append(target_block)
            edges.append((CharSet(tuple(ranges)), number[target_block]))
        result.edges.append(edges)
        result.accepting.append(dfa.accepting[state])
    return result


def everything(alphabet: CharSet) -> Dfa:
    """``alphabet*``."""
    return Dfa([[(alphabet, 0)]] if alphabet else [[]], [True])


def never() -> Dfa:
    return Dfa([[]], [False])
