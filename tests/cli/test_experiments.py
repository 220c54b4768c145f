"""``segue experiments list``."""

from __future__ import annotations


def test_list_without_experiments(cli, segue_env):
    assert cli("experiments", "list", "--json").json() == []


def test_list_table(cli, seeded):
    result = cli("experiments", "list")

    assert result.code == 0, result.err
    assert result.err == ""
    assert "Experiments" in result.out
    rows = {line.split()[3]: line for line in result.out.splitlines() if "│" in line}
    assert set(rows) == {"churn", "vision"}
    assert "│    3 │" in rows["churn"]  # the failed run counts too
    assert "│    1 │" in rows["vision"]


def test_list_json(cli, seeded):
    found = cli("experiments", "list", "--json").json()

    assert [(e["name"], e["run_count"]) for e in found] == [("churn", 3), ("vision", 1)]
    assert all(isinstance(e["id"], int) and e["created_at"] > 0 for e in found)
    assert {e["lifecycle_stage"] for e in found} == {"active"}


def test_deleted_runs_are_not_counted(cli, seeded):
    assert cli("runs", "delete", seeded.slow[:8]).code == 0

    counts = {e["name"]: e["run_count"] for e in cli("experiments", "list", "--json").json()}

    assert counts == {"churn": 2, "vision": 1}
