"""The prediction log's segment helpers (pure functions)."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segue.monitoring import segments


@pytest.mark.parametrize("limit", [1, 7, 10, 1 << 20])
def test_string_column_holds_every_text_whole_in_order(monkeypatch, limit):
    monkeypatch.setattr(segments, "STRING_CHUNK_BYTES", limit)
    texts = ['{"a":1}', "", "é ü 中", '[{"x":null}]', "z" * 25]

    column = segments.string_column([t.encode() for t in texts])

    assert column.type == pa.string()
    assert column.to_pylist() == texts
    if limit == 1:  # a piece ends after the text that fills it (the empty one fills none)
        assert [len(chunk) for chunk in column.chunks] == [1, 2, 1, 1]


def test_string_column_of_nothing_is_empty():
    column = segments.string_column([])

    assert len(column) == 0 and column.type == pa.string()


def test_string_column_refuses_text_that_is_not_utf8():
    with pytest.raises(pa.ArrowInvalid):
        segments.string_column([b"ok", b"\xff\xfe"])


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 12), max_size=40),
    limit=st.integers(1, 40),
)
def test_string_column_ends_a_piece_with_the_text_that_fills_it(sizes, limit):
    texts = [b"x" * n for n in sizes]
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(segments, "STRING_CHUNK_BYTES", limit)
        column = segments.string_column(texts)

    assert column.to_pylist() == [text.decode() for text in texts]
    pieces, start = [], 0
    for chunk in column.chunks:
        pieces.append(sizes[start : start + len(chunk)])
        start += len(chunk)
    for piece in pieces[:-1]:  # every piece but the last is full, and only at its last text
        assert sum(piece) >= limit > sum(piece[:-1])
    assert sum(pieces[-1][:-1]) < limit
