"""The batching policy, the Batcher, and batched predictions equal to unbatched ones."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import orjson
import pytest

from segue.serving.batching import (
    Batcher,
    BatcherClosed,
    BatcherFailed,
    PredictionFailed,
    should_flush,
)
from segue.serving.config import ServeConfig
from segue.serving.deployment import deploy
from segue.serving.protocol import parse_predict

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


FLUSH = [
    # (rows, oldest age s, requests being received, flush?)
    (0, 0.0, 0, False),  # nothing waiting
    (0, 1.0, 3, False),
    (1, 0.0, 0, True),  # a lone request goes at once
    (30, 0.0, 0, True),  # nothing more on its way
    (1, 0.0, 2, False),  # others are on their way: wait for them
    (10, 0.004, 1, False),
    (10, 0.005, 1, True),  # waited max_latency
    (64, 0.0, 5, True),  # full batch
    (100, 0.0, 5, True),
]


@pytest.mark.parametrize(("rows", "age", "incoming", "flush"), FLUSH)
def test_should_flush(rows, age, incoming, flush):
    decided = should_flush(rows, age, max_batch_size=64, max_latency=0.005, incoming=incoming)

    assert decided is flush


async def test_concurrent_requests_share_batches_and_get_their_own_results():
    sizes: list[int] = []
    threads: set[str] = set()

    def double(items: list[int]) -> list[int]:
        threads.add(threading.current_thread().name)
        return [x * 2 for x in items]

    batcher = Batcher(double, max_batch_size=8, max_latency_ms=50, on_batch=sizes.append)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(20)))
    await batcher.drain()

    assert results == [i * 2 for i in range(20)]
    assert sum(sizes) == 20 and max(sizes) == 8 and len(sizes) < 20
    assert threads and all(name.startswith("segue-predict") for name in threads)


async def test_a_request_larger_than_the_batch_goes_alone():
    sizes: list[int] = []
    batcher = Batcher(lambda items: items, max_batch_size=4, on_batch=sizes.append)

    results = await asyncio.gather(batcher.submit("big", rows=10), batcher.submit("small", rows=1))
    await batcher.drain()

    assert results == ["big", "small"]
    assert sizes == [10, 1]


def _pieces(item: list, start: int, stop: int) -> list:
    return item[start:stop]


def _joined(results: list[list]) -> list:
    return [row for result in results for row in result]


async def test_a_request_larger_than_the_batch_is_split_across_batches_in_order():
    sizes: list[int] = []
    batches: list[list[list[int]]] = []

    def rows_times_ten(items: list[list[int]]) -> list[list[int]]:
        batches.append(items)
        return [[x * 10 for x in item] for item in items]

    batcher = Batcher(
        rows_times_ten, max_batch_size=4, on_batch=sizes.append, split=_pieces, join=_joined
    )
    big = list(range(10))

    results = await asyncio.gather(batcher.submit(big, rows=10), batcher.submit([99], rows=1))
    await batcher.drain()

    assert results == [[x * 10 for x in big], [990]]  # one answer per row, in order
    assert max(sizes) <= 4 and sum(sizes) == 11
    assert [x for b in batches for x in b] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9], [99]]
    assert any(len(batch) > 1 for batch in batches)  # the last piece shared its batch


async def test_a_failing_piece_fails_its_whole_request_alone():
    def refuse_sevens(items: list[list[int]]) -> list[list[int]]:
        if any(7 in item for item in items):
            raise ValueError("seven")
        return items

    batcher = Batcher(refuse_sevens, max_batch_size=4, split=_pieces, join=_joined)

    big, other = batcher.submit(list(range(10)), rows=10), batcher.submit([1], rows=1)
    results = await asyncio.gather(big, other, return_exceptions=True)
    await batcher.drain()

    assert isinstance(results[0], PredictionFailed) and "seven" in str(results[0])
    assert results[1] == [1]


async def test_batches_are_filled_by_splitting_the_request_that_does_not_fit():
    batches: list[list[list[int]]] = []

    def record(items: list[list[int]]) -> list[list[int]]:
        batches.append(items)
        return items

    batcher = Batcher(record, max_batch_size=4, split=_pieces, join=_joined)
    first, second, third = [1, 2, 3], [4, 5, 6], [7, 8]

    results = await asyncio.gather(
        *(batcher.submit(r, rows=len(r)) for r in (first, second, third))
    )
    await batcher.drain()

    assert results == [first, second, third]
    assert batches == [[[1, 2, 3], [4]], [[5, 6], [7, 8]]]


async def test_the_rest_of_a_request_whose_piece_failed_is_not_predicted():
    calls: list[list[list[int]]] = []

    def refuse_ones(items: list[list[int]]) -> list[list[int]]:
        calls.append(items)
        if any(1 in item for item in items):
            raise ValueError("one")
        return items

    batcher = Batcher(refuse_ones, max_batch_size=2, split=_pieces, join=_joined)

    results = await asyncio.gather(
        batcher.submit([1, 2, 3, 4, 5], rows=5), batcher.submit([6], rows=1), return_exceptions=True
    )
    await batcher.drain()

    assert isinstance(results[0], PredictionFailed) and results[1] == [6]
    assert calls == [[[1, 2]], [[6]]]  # rows 3 to 5 never reach the model


async def test_100_row_requests_are_split_and_batched_with_the_unbatched_predictions(
    served_cancer,
):
    X = served_cancer.X.iloc[:300]
    sizes: list[int] = []
    deployment = deploy("cancer", served_cancer.model, ServeConfig(max_batch_size=64))
    deployment.batcher.on_batch = sizes.append
    bodies = [
        {
            "dataframe_split": {
                "columns": list(X.columns),
                "data": X.iloc[i : i + 100].to_numpy().tolist(),
            }
        }
        for i in (0, 100, 200)
    ]
    requests = [parse_predict(orjson.dumps(body), deployment.schema) for body in bodies]
    object.__setattr__(requests[1], "outputs", ("predict", "predict_proba"))

    answers = await asyncio.gather(*(deployment.batcher.submit(r, 100) for r in requests))
    await deployment.batcher.drain()

    assert sizes == [64, 64, 64, 64, 44]  # each batch filled: 5 calls for 300 rows, not 6
    for i, answer in enumerate(answers):
        rows = X.iloc[i * 100 : (i + 1) * 100]
        assert answer["predict"].tolist() == served_cancer.model.predict(rows).tolist()
    np.testing.assert_allclose(
        answers[1]["predict_proba"], served_cancer.model.predict_proba(X.iloc[100:200]), rtol=1e-12
    )


async def test_a_model_failing_on_every_input_fails_every_request(caplog):
    def boom(items: list[int]) -> list[int]:
        raise ValueError("bad weights")

    batcher = Batcher(boom, max_batch_size=64, max_latency_ms=50)

    results = await asyncio.gather(*(batcher.submit(i) for i in range(5)), return_exceptions=True)
    await batcher.drain()

    assert all(isinstance(r, PredictionFailed) for r in results)
    assert "ValueError: bad weights" in str(results[0])
    failures = [r for r in caplog.records if r.name == "segue.serving"]
    # One line for the five requests (they failed alone too), with the traceback.
    assert len(failures) == 1 and failures[0].exc_info is not None
    assert "prediction failed for 5 request(s): ValueError: bad weights" in failures[0].message


def _poisoned_by(poison: int, calls: list[list[int]], threads: set[str]):
    """A batch function doubling its items that raises for ``poison`` (recording its calls)."""

    def predict(items: list[int]) -> list[int]:
        calls.append(list(items))
        threads.add(threading.current_thread().name)
        if poison in items:
            raise ValueError(f"Input contains infinity ({poison})")
        return [x * 2 for x in items]

    return predict


async def test_a_request_the_model_cannot_handle_fails_alone_not_its_batch(caplog):
    calls: list[list[int]] = []
    threads: set[str] = set()
    splits: list[int] = []
    batcher = Batcher(_poisoned_by(13, calls, threads), max_batch_size=64, on_split=splits.append)

    items = [1, 2, 13, 4, 5]
    results = await asyncio.gather(*(batcher.submit(i) for i in items), return_exceptions=True)
    await batcher.drain()

    assert calls[0] == items  # they did share a batch
    assert calls[1:] == [[1], [2], [13], [4], [5]]  # then each alone, in order
    assert threads and all(name.startswith("segue-predict") for name in threads)
    assert [results[i] for i in (0, 1, 3, 4)] == [2, 4, 8, 10]
    assert isinstance(results[2], PredictionFailed)
    assert str(results[2]) == "ValueError: Input contains infinity (13)"
    assert splits == [5]
    failures = [r for r in caplog.records if r.name == "segue.serving"]
    assert [r.message for r in failures] == [
        "prediction failed for 1 request(s): ValueError: Input contains infinity (13)"
    ]


async def test_a_batch_failing_where_each_request_alone_succeeds_answers_them_all(caplog):
    def only_alone(items: list[int]) -> list[int]:
        if len(items) > 1:
            raise TypeError("cannot combine these requests")
        return items

    batcher = Batcher(only_alone, max_batch_size=64)

    results = await asyncio.gather(*(batcher.submit(i) for i in range(3)))
    await batcher.drain()

    assert results == [0, 1, 2]
    failures = [r for r in caplog.records if r.name == "segue.serving"]
    assert len(failures) == 1 and failures[0].exc_info is not None
    assert "a batch of 3 requests failed where each alone did not" in failures[0].message


async def test_a_repeated_failure_logs_its_traceback_once_a_minute(caplog):
    def predict(items: list[int]) -> list[int]:
        if 13 in items:
            raise ValueError("Input contains infinity")
        if 7 in items:
            raise KeyError("x")
        return items

    now = [0.0]
    batcher = Batcher(predict, clock=lambda: now[0])

    async def fail(item: int, at: float) -> None:
        now[0] = at
        with pytest.raises(PredictionFailed):
            await batcher.submit(item)

    for at in (0.0, 10.0, 59.9):  # the same error three times within a minute
        await fail(13, at)
    await fail(7, 30.0)  # another error: its own traceback
    await fail(13, 60.0)  # a minute after the first traceback
    await fail(13, 61.0)
    await batcher.drain()

    records = [r for r in caplog.records if r.name == "segue.serving"]
    assert [r.exc_info is not None for r in records] == [True, False, False, True, True, False]
    assert "repeated; its traceback is logged once every 60 s" in records[1].message
    assert records[3].message == "prediction failed for 1 request(s): KeyError: 'x'"
    assert records[4].message.endswith("(and 2 more time(s) since its last traceback)")
    assert all(len(r.message.splitlines()) == 1 for r in records)


async def test_a_wrong_number_of_results_is_a_failure():
    batcher = Batcher(lambda items: items[:-1], max_batch_size=64, max_latency_ms=50)

    results = await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)
    await batcher.drain()

    assert all(isinstance(r, PredictionFailed) for r in results)


async def test_a_batch_waits_for_requests_being_received():
    sizes: list[int] = []
    batcher = Batcher(lambda items: items, max_batch_size=64, max_latency_ms=1000)
    batcher.on_batch = sizes.append

    with batcher.incoming():  # a second request's body is still arriving
        first = asyncio.ensure_future(batcher.submit("first"))
        for _ in range(5):
            await asyncio.sleep(0)
        assert sizes == []
    second = await batcher.submit("second")
    await batcher.drain()

    assert (await first, second) == ("first", "second")
    assert sizes == [2]


async def test_max_latency_bounds_the_wait():
    now = [0.0]
    sizes: list[int] = []
    batcher = Batcher(lambda items: items, max_latency_ms=5, clock=lambda: now[0])
    batcher.on_batch = sizes.append

    with batcher.incoming():  # a request that never finishes arriving
        waiting = asyncio.ensure_future(batcher.submit("a"))
        for _ in range(3):
            await asyncio.sleep(0)
        assert sizes == []
        now[0] = 0.005
        assert await waiting == "a"
    await batcher.drain()

    assert sizes == [1]


async def test_drain_answers_what_is_queued_then_refuses():
    release = threading.Event()

    def slow(items: list[int]) -> list[int]:
        release.wait(5)
        return items

    batcher = Batcher(slow, max_batch_size=1)
    pending = [asyncio.ensure_future(batcher.submit(i)) for i in range(3)]
    await asyncio.sleep(0.01)
    draining = asyncio.ensure_future(batcher.drain())
    await asyncio.sleep(0.01)
    assert not draining.done()
    release.set()

    await draining
    assert [p.result() for p in pending] == [0, 1, 2]
    with pytest.raises(BatcherClosed):
        await batcher.submit(3)


class CountingClock:
    """Monotonic seconds that move only when told; counts how often they are read."""

    def __init__(self) -> None:
        self.now = 0.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now


async def test_a_batch_waiting_for_a_body_sleeps_instead_of_spinning():
    clock = CountingClock()
    sizes: list[int] = []
    batcher = Batcher(lambda items: items, max_latency_ms=60_000, clock=clock)
    batcher.on_batch = sizes.append

    with batcher.incoming():  # a second request's body is still arriving
        first = asyncio.ensure_future(batcher.submit("first"))
        for _ in range(200):
            await asyncio.sleep(0)
        # A collector polling the clock on every loop pass would have read it ~200 times.
        assert clock.reads <= 3 and sizes == []
    # The body arrived (and turned out bad: never submitted): the waiting batch goes at once,
    # although the clock has not moved.
    assert await first == "first"
    await batcher.drain()

    assert sizes == [1]


async def test_a_failing_collector_fails_its_requests_then_serves_again(caplog):
    def count(rows: int) -> None:
        if rows == 3:
            raise RuntimeError("metrics backend broke")

    batcher = Batcher(lambda items: items, max_batch_size=64, on_batch=count)

    async with asyncio.timeout(30):  # guards against a hang only
        failed = await asyncio.gather(
            *(batcher.submit(i) for i in range(3)), return_exceptions=True
        )
        assert [type(r) for r in failed] == [BatcherFailed] * 3
        assert "RuntimeError" in str(failed[0]) and "retry" in str(failed[0])
        assert "the batcher's collector failed" in caplog.text
        assert await batcher.submit("again") == "again"  # a new collector took over
        await batcher.drain()


async def test_drain_returns_when_the_collector_has_failed():
    batcher = Batcher(lambda items: items, on_batch=lambda rows: 1 / 0)

    async with asyncio.timeout(30):  # guards against a hang only
        with pytest.raises(BatcherFailed):
            await batcher.submit(1)
        await batcher.drain()
    with pytest.raises(BatcherClosed):
        await batcher.submit(2)


async def test_drain_with_a_deadline_fails_what_a_stuck_model_still_holds():
    release = threading.Event()
    started = threading.Event()

    def stuck(items: list[int]) -> list[int]:
        started.set()
        release.wait(30)
        return items

    batcher = Batcher(stuck, max_batch_size=1)
    pending = [asyncio.ensure_future(batcher.submit(i)) for i in range(2)]
    await asyncio.to_thread(started.wait, 30)

    await batcher.drain(timeout=0)
    release.set()

    results = await asyncio.gather(*pending, return_exceptions=True)
    assert [type(r) for r in results] == [BatcherClosed, BatcherClosed]


async def test_64_concurrent_requests_give_exactly_the_unbatched_predictions(served_cancer):
    X = served_cancer.X.iloc[:64]
    sizes: list[int] = []
    deployment = deploy("cancer", served_cancer.model, ServeConfig(max_batch_size=64))
    deployment.batcher.on_batch = sizes.append
    requests = [
        parse_predict(orjson.dumps({"instances": [row]}), deployment.schema)
        for row in X.to_dict(orient="records")
    ]
    for request in requests[::2]:
        object.__setattr__(request, "outputs", ("predict", "predict_proba"))

    answers = await asyncio.gather(*(deployment.batcher.submit(request, 1) for request in requests))
    await deployment.batcher.drain()

    assert max(sizes) > 1  # they really were batched
    for i, answer in enumerate(answers):
        alone = X.iloc[[i]]
        assert answer["predict"].tolist() == served_cancer.model.predict(alone).tolist()
        if i % 2 == 0:
            # Matrix products over 64 rows may round differently from one row in the last bit.
            np.testing.assert_allclose(
                answer["predict_proba"], served_cancer.model.predict_proba(alone), rtol=1e-12
            )
        else:
            assert "predict_proba" not in answer


async def test_a_cheap_batch_function_runs_on_the_loop_after_its_first_call():
    threads: list[str] = []

    def double(items: list[int]) -> list[int]:
        threads.append(threading.current_thread().name)
        return [x * 2 for x in items]

    batcher = Batcher(double, max_batch_size=8, inline_ms=1000.0)
    first = await batcher.submit(1)
    rest = [await batcher.submit(i) for i in range(2, 5)]
    await batcher.drain()

    assert [first, *rest] == [2, 4, 6, 8]
    assert threads[0].startswith("segue-predict")  # its cost is unknown until it has run
    assert threads[1:] == [threading.current_thread().name] * 3
    assert batcher.cost is not None


async def test_a_batch_function_costing_more_than_the_budget_stays_on_the_thread():
    threads: list[str] = []

    def costly(items: list[int]) -> list[int]:
        threads.append(threading.current_thread().name)
        return items

    batcher = Batcher(costly, max_batch_size=8, inline_ms=1.0)
    batcher.cost = 0.5  # as if its calls had cost half a second of CPU each
    results = [await batcher.submit(i) for i in range(3)]
    await batcher.drain()

    assert results == [0, 1, 2]
    assert threads and all(name.startswith("segue-predict") for name in threads)


@pytest.mark.parametrize(("max_latency_ms", "budget_ms"), [(5.0, 5.0), (20.0, 20.0), (0.2, 1.0)])
async def test_a_deployment_predicts_on_the_loop_within_its_latency_budget(
    served_cancer, max_latency_ms: float, budget_ms: float
):
    """A batch may hold the loop as long as a request already waits for its batch, and at
    least 1 ms: a scikit-learn batch measured 1.1-1.5 ms on the predict thread under load,
    and at a 1 ms budget alone never came back to the loop."""
    config = ServeConfig(max_batch_size=64, max_latency_ms=max_latency_ms)
    deployment = deploy("cancer", served_cancer.model, config)
    batcher = deployment.batcher
    assert batcher.inline_budget == pytest.approx(budget_ms / 1000)
    threads: list[str] = []
    run = batcher.run

    def traced(items):
        threads.append(threading.current_thread().name)
        return run(items)

    batcher.run = traced
    body = {"instances": served_cancer.X.iloc[:1].to_dict(orient="records")}
    batcher.cost = 0.0015  # what such a batch measured on the predict thread
    await batcher.submit(parse_predict(orjson.dumps(body), deployment.schema), 1)
    await batcher.drain()

    on_loop = threads == [threading.current_thread().name]
    assert on_loop == (budget_ms > 1.5), threads


async def test_an_inline_batch_that_fails_is_predicted_request_by_request_on_the_loop():
    calls: list[list[int]] = []
    threads: set[str] = set()
    batcher = Batcher(_poisoned_by(13, calls, threads), max_batch_size=64, inline_ms=1000.0)
    batcher.cost = 0.0

    items = [1, 13, 3]
    results = await asyncio.gather(*(batcher.submit(i) for i in items), return_exceptions=True)
    await batcher.drain()

    assert calls == [items, [1], [13], [3]]
    assert threads == {threading.current_thread().name}
    assert results[0] == 2 and results[2] == 6 and isinstance(results[1], PredictionFailed)


async def test_a_request_leaving_incoming_is_no_longer_waited_for_even_when_it_failed():
    batcher = Batcher(lambda items: items, max_batch_size=8)

    with batcher.incoming(), batcher.incoming():
        assert batcher._incoming == 2
    with pytest.raises(ValueError), batcher.incoming():
        raise ValueError("a bad body")

    assert batcher._incoming == 0
    assert await batcher.submit(7) == 7
    await batcher.drain()


async def test_a_batch_of_requests_all_gone_is_not_run():
    calls: list[list[list[int]]] = []

    def record(items: list[list[int]]) -> list[list[int]]:
        calls.append(items)
        return items

    batcher = Batcher(record, max_batch_size=4, split=_pieces, join=_joined, max_latency_ms=50)
    with batcher.incoming():  # a request still arriving holds the batch back
        first = asyncio.ensure_future(batcher.submit([1, 2, 3, 4, 5, 6], rows=6))
        second = asyncio.ensure_future(batcher.submit([7], rows=1))
        await asyncio.sleep(0)
    while not calls:  # the first four rows went; the rest of the first request waits
        await asyncio.sleep(0)
    first.cancel()
    second.cancel()
    while batcher.waiting_rows:  # the collector takes the gone ones off the queue
        await asyncio.sleep(0)
    third = await batcher.submit([8], rows=1)  # and goes on
    await batcher.drain()

    assert third == [8]
    assert [] not in calls and all(calls)
    assert calls[-1] == [[8]] and batcher.waiting_rows == 0
