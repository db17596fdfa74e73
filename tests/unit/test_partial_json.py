"""A cut-off call's arguments read as the anthropic SDK's partial parser (jiter) reads them, prefix by prefix."""

from __future__ import annotations

import json

from hypothesis import given, settings, strategies as st
from jiter import from_json

from edge.api.common import partial_json_object

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=False, allow_infinity=False, width=32), st.text(max_size=8))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                      max_leaves=10)
OBJECTS = st.dictionaries(st.text(max_size=6), VALUES, max_size=4)


@settings(max_examples=120, deadline=None)
@given(OBJECTS)
def test_every_prefix_reads_like_the_sdk_reads_it(value):
    text = json.dumps(value, ensure_ascii=False)
    for end in range(1, len(text) + 1):
        prefix = text[:end]
        assert partial_json_object(prefix) == from_json(prefix.encode(), partial_mode=True), prefix
    assert partial_json_object(text) == value


def test_nothing_written_is_an_empty_object():
    assert partial_json_object("") == {}
    assert partial_json_object("   ") == {}
