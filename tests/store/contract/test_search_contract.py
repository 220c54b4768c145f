"""The run search contract: filters and sort orders against a Python reference, on SQLite,
PostgreSQL and REST alike.

A corpus of 30 runs in two experiments is stored once per backend; each case runs a filter
through ``parse_filter``/``parse_order_by`` and ``search_runs`` and compares the ids, in order,
with what a plain Python predicate and sort compute from the same data. Over REST the parsed
filter travels as text (``format_filter``) and the server parses it again. That search is one
SQL statement is tested in ``tests/store/test_search.py``.
"""

from __future__ import annotations

import contextlib
import math
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa

from segue.config import settings
from segue.store.engine import create_engine, open_engine, upgrade
from segue.store.entities import Metric, RunInfo
from segue.store.filters import parse_filter, parse_order_by
from segue.store.tracking import SqlTrackingStore, TrackingStore

T0 = 1_700_000_000_000
STATUSES = ("RUNNING", "FINISHED", "FAILED", "KILLED")


@dataclass
class Row:
    """A run as the reference sees it: plain values, nothing from the store."""

    id: str
    experiment: str
    name: str
    status: str
    start_time: int
    end_time: int | None
    user: str
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    deleted: bool = False


def _corpus(n: int, offset: int = 0) -> list[Row]:
    """``n`` runs with a spread of params, metrics and tags; some keys missing on purpose."""
    rows = []
    for i in range(offset, offset + n):
        status = STATUSES[i % 4]
        row = Row(
            id=uuid.UUID(int=i + 1).hex,
            experiment="search-b" if i % 3 == 0 else "search-a",
            name=f"run-{i:02d}",
            status=status,
            start_time=T0 + i * 1000,
            end_time=None if status == "RUNNING" else T0 + i * 1000 + 500,
            user="ada" if i % 2 else "grace",
            deleted=i == 29,
        )
        row.params["max_depth"] = ("2", "4", "10")[i % 3]
        row.params["model"] = ("rf", "lr", "xgb")[(i // 3) % 3]
        if i % 5:
            row.params["lr"] = ("0.1", "0.01", "0.3", "n/a")[i % 4]
        if i % 6 != 5:
            row.metrics["acc"] = round(0.5 + (i * 7 % 30) / 100, 2)  # distinct per run
        row.metrics["loss"] = round(1 - (i * 11 % 30) / 40, 3)
        row.tags["team"] = ("vision", "Vision-Core", "nlp", "speech")[i % 4]
        row.tags["priority"] = "high" if i % 2 else "low"
        if i % 7 == 0:
            row.tags["note"] = "baseline run" if i % 2 else "tuned run"
        if i % 10 == 3:
            row.tags["promo"] = "50%_off" if i < 20 else "50 percent off"
        rows.append(row)
    return rows


def _store_rows(store: TrackingStore, rows: list[Row]) -> None:
    experiments = {}
    for row in rows:
        if row.experiment not in experiments:
            experiments[row.experiment] = store.get_or_create_experiment(row.experiment)
        exp = experiments[row.experiment]
        info = RunInfo(
            id=row.id,
            experiment_id=exp.id,
            experiment_name=exp.name,
            name=row.name,
            status=row.status,
            start_time=row.start_time,
            end_time=row.end_time,
            heartbeat_at=row.start_time,
            user=row.user,
            host="box",
            python_version="3.11.9",
        )
        store.create_run(info, row.tags)
        # An earlier point per metric, so that search must use the latest one.
        metrics = [Metric(k, -v, 0, row.start_time) for k, v in row.metrics.items()]
        metrics += [Metric(k, v, 1, row.start_time + 1) for k, v in row.metrics.items()]
        store.log_batch(row.id, params=row.params, metrics=metrics)
        if row.deleted:
            store.set_run_lifecycle(row.id, "deleted")


@dataclass
class Corpus:
    store: TrackingStore
    rows: list[Row]
    experiment_ids: dict[str, int]


@pytest.fixture(scope="module", params=["sqlite", "postgresql", "rest"])
def corpus(request, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    """The 30-run corpus, stored once per backend in a database of its own (for ``rest``, a
    SQLite database behind a live server)."""
    with contextlib.ExitStack() as stack:
        folder = tmp_path_factory.mktemp("search")
        if request.param == "postgresql":
            uri = stack.enter_context(_fresh_pg_database(request.getfixturevalue("pg_uri")))
        else:
            uri = f"sqlite:///{folder / 'segue.db'}"
        engine = create_engine(uri)
        stack.callback(engine.dispose)
        upgrade(engine)
        store: TrackingStore = SqlTrackingStore(engine)
        if request.param == "rest":
            store = stack.enter_context(_served(request, uri, folder))
        rows = _corpus(30)
        _store_rows(store, rows)
        ids = {e.name: e.id for e in store.list_experiments()}
        yield Corpus(store, rows, ids)


@contextlib.contextmanager
def _served(request, uri: str, folder) -> Iterator[TrackingStore]:
    from segue.remote.http import RemoteSession
    from segue.remote.tracking import RestTrackingStore
    from segue.server.state import ServerState

    env = {"SEGUE_HOME": str(folder / "home"), "SEGUE_STORE_URI": uri}
    state = ServerState(settings(env), open_engine(uri), no_auth=True)
    server = request.getfixturevalue("live_server")(state)
    session = RemoteSession(server.url)
    try:
        yield RestTrackingStore(session)
    finally:
        session.close()
        server.stop()


@contextlib.contextmanager
def _fresh_pg_database(pg_uri: str) -> Iterator[str]:
    admin = sa.create_engine(pg_uri, isolation_level="AUTOCOMMIT")
    name = f"segue_search_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.engine.make_url(pg_uri).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


# -- the reference -------------------------------------------------------------------------


def _num(value: str | None) -> float | None:
    """A param as a number, the way the store reads it (finite floats only)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _like(pattern: str, ignore_case: bool = False) -> Callable[[str | None], bool]:
    """SQL LIKE with backslash as the escape character."""
    parts = re.findall(r"\\.|%|_|[^\\%_]+", pattern)
    regex = "".join(
        ".*" if p == "%" else "." if p == "_" else re.escape(p[1] if p[0] == "\\" else p)
        for p in parts
    )
    compiled = re.compile(regex, re.DOTALL | (re.IGNORECASE if ignore_case else 0))
    return lambda value: value is not None and compiled.fullmatch(value) is not None


def _has(value: object, test: Callable[[object], bool]) -> bool:
    """A comparison on a key a run may lack: a run without the key never matches."""
    return value is not None and test(value)


def acc(r: Row) -> float | None:
    return r.metrics.get("acc")


def loss(r: Row) -> float | None:
    return r.metrics.get("loss")


def param(key: str) -> Callable[[Row], str | None]:
    return lambda r: r.params.get(key)


def tag(key: str) -> Callable[[Row], str | None]:
    return lambda r: r.tags.get(key)


def depth(r: Row) -> float | None:
    return _num(r.params.get("max_depth"))


FILTERS: list[tuple[str, Callable[[Row], bool]]] = [
    # metrics: numeric comparisons on the latest point
    ("metrics.acc > 0.7", lambda r: _has(acc(r), lambda v: v > 0.7)),
    ("metrics.acc >= 0.71", lambda r: _has(acc(r), lambda v: v >= 0.71)),
    ("metrics.acc < 0.6", lambda r: _has(acc(r), lambda v: v < 0.6)),
    ("metrics.acc <= 0.57", lambda r: _has(acc(r), lambda v: v <= 0.57)),
    ("metrics.acc = 0.57", lambda r: acc(r) == 0.57),
    ("metrics.acc != 0.57", lambda r: _has(acc(r), lambda v: v != 0.57)),
    ("metrics.acc IN (0.5, 0.57, 0.64)", lambda r: acc(r) in (0.5, 0.57, 0.64)),
    ("metrics.acc NOT IN (0.5, 0.57)", lambda r: _has(acc(r), lambda v: v not in (0.5, 0.57))),
    ("metrics.acc > -1", lambda r: acc(r) is not None),  # the earlier negative point is ignored
    (
        "metrics.acc > 0.6 and metrics.loss < 0.5",
        lambda r: _has(acc(r), lambda v: v > 0.6) and _has(loss(r), lambda v: v < 0.5),
    ),
    ("metrics.missing > 0", lambda r: False),
    # params: text equality, numeric comparison (a number literal), text LIKE
    ("params.model = 'rf'", lambda r: param("model")(r) == "rf"),
    ("params.model != 'rf'", lambda r: _has(param("model")(r), lambda v: v != "rf")),
    ("params.model IN ('lr', 'xgb')", lambda r: param("model")(r) in ("lr", "xgb")),
    ("params.model NOT IN ('lr')", lambda r: _has(param("model")(r), lambda v: v != "lr")),
    ("params.max_depth > 3", lambda r: _has(depth(r), lambda v: v > 3)),
    ("params.max_depth >= 10", lambda r: _has(depth(r), lambda v: v >= 10)),
    ("params.max_depth < 4", lambda r: _has(depth(r), lambda v: v < 4)),
    ("params.max_depth = 4", lambda r: depth(r) == 4),
    ("params.max_depth IN (2, 10)", lambda r: depth(r) in (2, 10)),
    ("params.max_depth = '10'", lambda r: param("max_depth")(r) == "10"),
    ("params.lr < 0.05", lambda r: _has(_num(param("lr")(r)), lambda v: v < 0.05)),
    ("params.lr != 0.1", lambda r: _has(_num(param("lr")(r)), lambda v: v != 0.1)),
    ("params.lr = 'n/a'", lambda r: param("lr")(r) == "n/a"),
    ("params.lr LIKE '0.%'", lambda r: _like("0.%")(param("lr")(r))),
    # tags: LIKE is case-sensitive on both backends, ILIKE is not
    ("tags.team = 'vision'", lambda r: tag("team")(r) == "vision"),
    ("tags.team LIKE 'vision%'", lambda r: _like("vision%")(tag("team")(r))),
    ("tags.team LIKE 'Vision%'", lambda r: _like("Vision%")(tag("team")(r))),
    ("tags.team ILIKE 'vision%'", lambda r: _like("vision%", True)(tag("team")(r))),
    ("tags.team LIKE '%o%'", lambda r: _like("%o%")(tag("team")(r))),
    ("tags.team LIKE '_lp'", lambda r: _like("_lp")(tag("team")(r))),
    ("tags.team NOT LIKE 'v%'", lambda r: _has(tag("team")(r), lambda v: not v.startswith("v"))),
    ("tags.team NOT ILIKE 'v%'", lambda r: _has(tag("team")(r), lambda v: v[0] not in "vV")),
    ("tags.team IN ('nlp', 'speech')", lambda r: tag("team")(r) in ("nlp", "speech")),
    (
        "tags.team NOT IN ('nlp', 'speech')",
        lambda r: _has(tag("team")(r), lambda v: v not in ("nlp", "speech")),
    ),
    ("tags.note != 'tuned run'", lambda r: _has(tag("note")(r), lambda v: v != "tuned run")),
    ("tags.note NOT IN ('tuned run')", lambda r: tag("note")(r) == "baseline run"),
    # backslash escapes a wildcard, on both backends
    (r"tags.promo LIKE '50\%%'", lambda r: _like(r"50\%%")(tag("promo")(r))),
    (r"tags.promo LIKE '50%\_off'", lambda r: _like(r"50%\_off")(tag("promo")(r))),
    ("tags.promo LIKE '50%'", lambda r: _like("50%")(tag("promo")(r))),
    # presence
    ("metrics.acc IS NULL", lambda r: acc(r) is None),
    ("metrics.acc IS NOT NULL", lambda r: acc(r) is not None),
    ("params.lr IS NULL", lambda r: param("lr")(r) is None),
    ("tags.note IS NOT NULL", lambda r: tag("note")(r) is not None),
    (
        "tags.note IS NULL and params.lr IS NOT NULL",
        lambda r: tag("note")(r) is None and param("lr")(r) is not None,
    ),
    # attributes
    ("status = 'FINISHED'", lambda r: r.status == "FINISHED"),
    ("status = 'finished'", lambda r: r.status == "FINISHED"),
    ("status != 'RUNNING'", lambda r: r.status != "RUNNING"),
    ("status IN ('FAILED', 'KILLED')", lambda r: r.status in ("FAILED", "KILLED")),
    ("status NOT IN ('FAILED', 'KILLED')", lambda r: r.status not in ("FAILED", "KILLED")),
    ("name = 'run-07'", lambda r: r.name == "run-07"),
    ("run_name LIKE 'run-1%'", lambda r: r.name.startswith("run-1")),
    ("attributes.name ILIKE 'RUN-2%'", lambda r: r.name.startswith("run-2")),
    (f"run_id = '{uuid.UUID(int=5).hex}'", lambda r: r.id == uuid.UUID(int=5).hex),
    ("user = 'ada'", lambda r: r.user == "ada"),
    (f"start_time >= {T0 + 20_000}", lambda r: r.start_time >= T0 + 20_000),
    (f"start_time < {T0 + 5_000}", lambda r: r.start_time < T0 + 5_000),
    ("end_time IS NULL", lambda r: r.end_time is None),
    (f"end_time > {T0 + 10_000}", lambda r: _has(r.end_time, lambda v: v > T0 + 10_000)),
    ("experiment = 'search-b'", lambda r: r.experiment == "search-b"),
    ("experiment != 'search-b'", lambda r: r.experiment != "search-b"),
    ("experiment LIKE '%-a'", lambda r: r.experiment == "search-a"),
    ("experiment IN ('search-a', 'nope')", lambda r: r.experiment == "search-a"),
    # or, and, parentheses
    (
        "metrics.acc > 0.75 or tags.team = 'nlp'",
        lambda r: _has(acc(r), lambda v: v > 0.75) or tag("team")(r) == "nlp",
    ),
    (
        "(metrics.acc > 0.6 or params.model = 'rf') and status != 'FAILED'",
        lambda r: (
            (_has(acc(r), lambda v: v > 0.6) or param("model")(r) == "rf") and r.status != "FAILED"
        ),
    ),
    (
        "metrics.acc > 0.6 or params.model = 'rf' and status != 'FAILED'",
        lambda r: (
            _has(acc(r), lambda v: v > 0.6) or (param("model")(r) == "rf" and r.status != "FAILED")
        ),
    ),
    (
        "params.model = 'rf' and (tags.priority = 'high' or metrics.loss < 0.3)",
        lambda r: (
            param("model")(r) == "rf"
            and (tag("priority")(r) == "high" or _has(loss(r), lambda v: v < 0.3))
        ),
    ),
    (
        "((experiment = 'search-a' and params.max_depth >= 4) or (tags.note IS NOT NULL))"
        " and metrics.acc IS NOT NULL",
        lambda r: (
            (
                (r.experiment == "search-a" and _has(depth(r), lambda v: v >= 4))
                or tag("note")(r) is not None
            )
            and acc(r) is not None
        ),
    ),
    ("", lambda r: True),
]


def _sorted(rows: list[Row], columns: list[tuple[Callable[[Row], object], bool]]) -> list[Row]:
    """Sort like the store: each column with NULLs last, then newest first, then by id."""
    rows = sorted(rows, key=lambda r: r.id)
    rows.sort(key=lambda r: r.start_time, reverse=True)
    for column, descending in reversed(columns):
        present = [r for r in rows if column(r) is not None]
        present.sort(key=column, reverse=descending)  # type: ignore[arg-type]
        rows = present + [r for r in rows if column(r) is None]
    return rows


def _param_order(key: str, descending: bool) -> list[tuple[Callable[[Row], object], bool]]:
    # Numbers as numbers first, then text params in text order.
    return [(lambda r: _num(r.params.get(key)), descending), (param(key), descending)]


ORDERS: list[tuple[list[str], list[tuple[Callable[[Row], object], bool]]]] = [
    ([], []),
    (["metrics.acc DESC"], [(acc, True)]),
    (["metrics.acc"], [(acc, False)]),
    (["metrics.loss ASC", "metrics.acc DESC"], [(loss, False), (acc, True)]),
    (["params.max_depth"], _param_order("max_depth", False)),
    (
        ["params.max_depth DESC", "name"],
        [*_param_order("max_depth", True), (lambda r: r.name, False)],
    ),
    (["params.lr DESC"], _param_order("lr", True)),
    (["params.lr"], _param_order("lr", False)),
    (["params.model", "metrics.acc DESC"], [*_param_order("model", False), (acc, True)]),
    (["tags.team", "start_time"], [(tag("team"), False), (lambda r: r.start_time, False)]),
    (["tags.note DESC"], [(tag("note"), True)]),
    (["name DESC"], [(lambda r: r.name, True)]),
    (["start_time"], [(lambda r: r.start_time, False)]),
    (["end_time DESC"], [(lambda r: r.end_time, True)]),
    (["status", "user DESC"], [(lambda r: r.status, False), (lambda r: r.user, True)]),
    (["experiment DESC", "metrics.acc"], [(lambda r: r.experiment, True), (acc, False)]),
]


def _expected(
    corpus: Corpus,
    predicate: Callable[[Row], bool],
    order: list[tuple[Callable[[Row], object], bool]] | None = None,
    experiments: list[str] | None = None,
    include_deleted: bool = False,
    max_results: int = 1000,
) -> list[str]:
    rows = [
        r
        for r in corpus.rows
        if (include_deleted or not r.deleted)
        and (experiments is None or r.experiment in experiments)
        and predicate(r)
    ]
    return [r.id for r in _sorted(rows, order or [])][:max_results]


def _search(
    corpus: Corpus,
    filter_text: str | None = None,
    order_by: list[str] | None = None,
    experiments: list[str] | None = None,
    include_deleted: bool = False,
    max_results: int = 1000,
) -> list[str]:
    ids = None if experiments is None else [corpus.experiment_ids[e] for e in experiments]
    runs = corpus.store.search_runs(
        ids, parse_filter(filter_text), parse_order_by(order_by), max_results, include_deleted
    )
    return [r.id for r in runs]


# -- filters -------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "predicate"), FILTERS, ids=[text for text, _ in FILTERS])
def test_filter_matches_the_reference(
    corpus: Corpus, text: str, predicate: Callable[[Row], bool]
) -> None:
    expected = _expected(corpus, predicate)

    assert _search(corpus, text) == expected


def test_the_filter_cases_are_not_trivial(corpus: Corpus) -> None:
    """Guard the table itself: most filters should keep some runs and drop others."""
    live = [r for r in corpus.rows if not r.deleted]
    sizes = {text: sum(map(predicate, live)) for text, predicate in FILTERS}
    trivial = [text for text, n in sizes.items() if n in (0, len(live))]

    assert trivial == ["metrics.missing > 0", ""]


def test_numeric_param_comparison_is_not_lexical(corpus: Corpus) -> None:
    def depths(text: str) -> set[str]:
        found = set(_search(corpus, text))
        return {r.params["max_depth"] for r in corpus.rows if r.id in found}

    # As text, '10' < '3' < '4'; as numbers, 2 < 3 < 4 < 10.
    assert depths("params.max_depth > 3") == {"4", "10"}
    assert depths("params.max_depth < 4") == {"2"}


# -- order and limits ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("order_by", "columns"), ORDERS, ids=[" ".join(o) or "default" for o, _ in ORDERS]
)
def test_order_matches_the_reference(
    corpus: Corpus, order_by: list[str], columns: list[tuple[Callable[[Row], object], bool]]
) -> None:
    expected = _expected(corpus, lambda r: True, columns)

    assert _search(corpus, None, order_by) == expected


def test_runs_without_the_sort_metric_come_last(corpus: Corpus) -> None:
    found = corpus.store.search_runs(None, None, parse_order_by(["metrics.acc DESC"]), 1000)
    values = [r.data.metrics["acc"].value if "acc" in r.data.metrics else None for r in found]
    n = sum(v is not None for v in values)

    assert 0 < n < len(values)
    assert values[n:] == [None] * (len(values) - n)
    assert values[:n] == sorted(values[:n], reverse=True)  # type: ignore[type-var]


def test_param_order_is_numeric(corpus: Corpus) -> None:
    found = corpus.store.search_runs(None, None, parse_order_by(["params.max_depth"]), 1000)
    depths = [r.data.params["max_depth"] for r in found]

    assert depths == sorted(depths, key=int)
    assert depths[0] == "2"
    assert depths[-1] == "10"


@pytest.mark.parametrize("max_results", [1, 5, 28, 29, 1000])
def test_max_results_keeps_the_first_in_order(corpus: Corpus, max_results: int) -> None:
    expected = _expected(corpus, lambda r: True, [(acc, True)], max_results=max_results)

    assert _search(corpus, None, ["metrics.acc DESC"], max_results=max_results) == expected
    assert len(expected) == min(max_results, 29)


def test_filter_order_and_limit_together(corpus: Corpus) -> None:
    predicate = dict(FILTERS)["(metrics.acc > 0.6 or params.model = 'rf') and status != 'FAILED'"]
    expected = _expected(corpus, predicate, [(loss, True)], max_results=4)

    found = _search(
        corpus,
        "(metrics.acc > 0.6 or params.model = 'rf') and status != 'FAILED'",
        ["metrics.loss DESC"],
        max_results=4,
    )

    assert found == expected
    assert len(found) == 4


SORTED_BY_THE_FILTERED_METRIC: list[
    tuple[str, list[str], list[tuple[Callable[[Row], object], bool]]]
] = [
    ("metrics.acc > 0.6", ["metrics.acc DESC"], [(acc, True)]),
    ("metrics.acc > 0.6", ["metrics.acc"], [(acc, False)]),
    ("metrics.acc <= 0.75 and params.model != 'xgb'", ["metrics.acc DESC"], [(acc, True)]),
    ("metrics.acc != 0.57 and tags.priority = 'high'", ["metrics.acc"], [(acc, False)]),
    (
        "metrics.acc IS NOT NULL and metrics.loss < 0.8",
        ["metrics.acc DESC", "params.max_depth"],
        [(acc, True), *_param_order("max_depth", False)],
    ),
    (
        "metrics.acc NOT IN (0.5, 0.57)",
        ["metrics.acc DESC", "name"],
        [(acc, True), (lambda r: r.name, False)],
    ),
    (
        "metrics.acc IN (0.5, 0.62, 0.64, 0.71) and metrics.acc > 0.55",
        ["metrics.acc DESC"],
        [(acc, True)],
    ),
]


@pytest.mark.parametrize(
    ("max_results", "experiments"),
    [
        (1000, None),
        (3, None),
        (1000, ["search-a"]),
        (3, ["search-a"]),
        (1000, ["search-b"]),
        (2, ["search-b"]),
        (1000, ["search-a", "search-b"]),
    ],
    ids=str,
)
@pytest.mark.parametrize(
    ("text", "order_by", "columns"),
    SORTED_BY_THE_FILTERED_METRIC,
    ids=[f"{text} / {' '.join(order)}" for text, order, _ in SORTED_BY_THE_FILTERED_METRIC],
)
def test_filter_and_order_by_the_same_metric(
    corpus: Corpus,
    text: str,
    order_by: list[str],
    columns: list[tuple[Callable[[Row], object], bool]],
    max_results: int,
    experiments: list[str] | None,
) -> None:
    """Sorted by a metric the filter requires, within an experiment that holds most runs,
    one that holds few, or all: the store may read such runs in the metric's order."""
    predicates = dict(FILTERS) | {
        "metrics.acc > 0.6": lambda r: _has(acc(r), lambda v: v > 0.6),
        "metrics.acc <= 0.75 and params.model != 'xgb'": (
            lambda r: (
                _has(acc(r), lambda v: v <= 0.75) and _has(param("model")(r), lambda v: v != "xgb")
            )
        ),
        "metrics.acc != 0.57 and tags.priority = 'high'": (
            lambda r: _has(acc(r), lambda v: v != 0.57) and tag("priority")(r) == "high"
        ),
        "metrics.acc IS NOT NULL and metrics.loss < 0.8": (
            lambda r: acc(r) is not None and _has(loss(r), lambda v: v < 0.8)
        ),
        "metrics.acc IN (0.5, 0.62, 0.64, 0.71) and metrics.acc > 0.55": (
            lambda r: acc(r) in (0.62, 0.64, 0.71)
        ),
    }
    expected = _expected(corpus, predicates[text], columns, experiments, max_results=max_results)

    found = _search(corpus, text, order_by, experiments, max_results=max_results)

    assert found == expected
    assert found


# -- experiments and deleted runs ----------------------------------------------------------


@pytest.mark.parametrize(
    "experiments", [["search-a"], ["search-b"], ["search-a", "search-b"], []], ids=str
)
def test_search_within_experiments(corpus: Corpus, experiments: list[str]) -> None:
    predicate = dict(FILTERS)["metrics.acc > 0.7"]

    found = _search(corpus, "metrics.acc > 0.7", experiments=experiments)

    assert found == _expected(corpus, predicate, experiments=experiments)
    assert bool(found) == bool(experiments)


def test_deleted_runs_only_on_request(corpus: Corpus) -> None:
    deleted = next(r.id for r in corpus.rows if r.deleted)

    assert deleted not in _search(corpus)
    assert _search(corpus, include_deleted=True) == _expected(
        corpus, lambda r: True, include_deleted=True
    )
    assert deleted in _search(corpus, "tags.team IS NOT NULL", include_deleted=True)


def test_search_loads_each_run_as_stored(corpus: Corpus) -> None:
    found = corpus.store.search_runs(None, None, [], 1000, include_deleted=True)
    by_id = {r.id: r for r in corpus.rows}

    assert len(found) == len(corpus.rows)
    for run in found:
        row = by_id[run.id]
        assert run.info.experiment_name == row.experiment
        assert (run.info.name, run.info.status, run.info.end_time) == (
            row.name,
            row.status,
            row.end_time,
        )
        assert run.info.lifecycle_stage == ("deleted" if row.deleted else "active")
        assert run.data.params == row.params
        assert run.data.tags == row.tags
        assert {k: m.value for k, m in run.data.metrics.items()} == row.metrics
        assert {m.step for m in run.data.metrics.values()} <= {1}
