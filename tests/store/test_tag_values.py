"""Tag values of any length are stored and found on every store (PostgreSQL's btree entries
hold at most ~2,700 bytes, so its tag value index is a hash index: migration 0009)."""

from __future__ import annotations

import secrets

import segue


def test_a_long_tag_value_is_stored_and_found_by_an_equality_filter(segue_env) -> None:
    value = secrets.token_hex(4_000)  # 8,000 characters that do not compress
    with segue.start_run(experiment="tags") as run:
        run.set_tag("note", value)
    with segue.start_run(experiment="tags") as other:
        other.set_tag("note", value[:-1])
    assert segue.get_run(run.id).data.tags["note"] == value
    found = segue.search_runs(experiment="tags", filter=f"tags.note = '{value}'")
    assert found["run_id"].tolist() == [run.id]
