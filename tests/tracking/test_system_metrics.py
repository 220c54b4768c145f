"""System metrics: psutil samples logged as ``system/…`` steps, driven without sleeping."""

from __future__ import annotations

import math
import os
import queue
import threading
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

import segue
from segue.errors import InvalidArgument
from segue.tracking.client import get_client
from segue.tracking.system_metrics import (
    DEFAULT_INTERVAL,
    GpuSampler,
    HostSampler,
    SystemMetricsMonitor,
    interval_of,
)

HOST_KEYS = {
    "cpu_utilization_percentage",
    "system_memory_usage_megabytes",
    "system_memory_usage_percentage",
    "process_memory_rss_megabytes",
    "disk_usage_megabytes",
    "disk_available_megabytes",
    "disk_usage_percentage",
    "network_receive_megabytes",
    "network_transmit_megabytes",
}


class Ticks:
    """The monitor's event, driven by the test: each ``tick()`` lets one sample through,
    ``set()`` (what ``stop`` calls) ends the loop once the ticks before it are taken."""

    def __init__(self) -> None:
        self._queue: queue.Queue[bool] = queue.Queue()
        self.timeouts: list[float | None] = []

    def tick(self) -> None:
        self._queue.put(False)

    def set(self) -> None:
        self._queue.put(True)

    def wait(self, timeout: float | None = None) -> bool:
        self.timeouts.append(timeout)
        return self._queue.get()


@pytest.fixture(autouse=True)
def _no_leftover_runs() -> Iterator[None]:
    yield
    while (run := segue.active_run()) is not None:
        run.end("KILLED")


def steps(run_id: str, key: str) -> list[int]:
    return [m.step for m in get_client().metric_history(run_id, key)]


def sampler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "segue-system-metrics"]


def test_the_host_sampler_reads_real_numbers(tmp_path):
    values = HostSampler(tmp_path).sample()
    assert set(values) >= HOST_KEYS
    assert all(math.isfinite(v) for v in values.values())
    assert 0 <= values["system_memory_usage_percentage"] <= 100
    assert values["process_memory_rss_megabytes"] > 1
    assert values["disk_available_megabytes"] > 0


def test_each_tick_logs_one_step_and_stop_logs_the_last(segue_env):
    ticks = Ticks()
    with segue.start_run(experiment="sys") as run:
        monitor = SystemMetricsMonitor(run.log_metrics, 7.5, event=ticks).start()
        for _ in range(3):
            ticks.tick()
        monitor.stop()
        assert monitor.steps == 4
    assert ticks.timeouts == [7.5] * 4  # three samples, then the wait that saw the stop
    stored = segue.get_run(run.id).data.metrics
    assert {f"system/{key}" for key in HOST_KEYS} <= set(stored)
    assert steps(run.id, "system/cpu_utilization_percentage") == [0, 1, 2, 3]
    assert steps(run.id, "system/disk_usage_percentage") == [0, 1, 2, 3]


def test_start_run_samples_until_the_run_ends(segue_env):
    assert sampler_threads() == []
    with segue.start_run(experiment="sys", system_metrics=True) as run:
        assert len(sampler_threads()) == 1
    assert sampler_threads() == []
    # The run was shorter than the interval: the sample taken as it ended is there.
    assert steps(run.id, "system/system_memory_usage_megabytes") == [0]
    assert segue.get_run(run.id).info.status == "FINISHED"


def test_a_failed_run_stops_its_sampler_too(segue_env):
    with pytest.raises(RuntimeError), segue.start_run(system_metrics=0.5):
        assert len(sampler_threads()) == 1
        raise RuntimeError("diverged")
    assert sampler_threads() == []


@pytest.mark.parametrize(
    ("given", "interval"),
    [(True, DEFAULT_INTERVAL), (False, None), (None, None), (2, 2.0), (0.25, 0.25)],
)
def test_interval_of(given, interval):
    assert interval_of(given) == interval


@pytest.mark.parametrize("given", [0, -1, "10", float("nan")])
def test_a_bad_interval_is_refused_before_the_run_starts(given, segue_env):
    with pytest.raises(InvalidArgument, match="system_metrics"):
        segue.start_run(system_metrics=given)
    assert segue.active_run() is None


def test_a_host_that_cannot_be_sampled_still_starts_its_run(segue_env, caplog, tmp_path):
    # A working directory that has gone away: psutil cannot tell which disk it is on.
    gone = tmp_path / "gone"
    gone.mkdir()
    before = os.getcwd()
    os.chdir(gone)
    gone.rmdir()
    try:
        with segue.start_run(system_metrics=True) as run:
            pass
    finally:
        os.chdir(before)
    assert segue.get_run(run.id).info.status == "FINISHED"
    assert "CPU, memory, disk and network cannot be sampled" in caplog.text


class Broken:
    def sample(self) -> dict[str, float]:
        raise OSError("sensor gone")


class Constant:
    def sample(self) -> dict[str, float]:
        return {"fan_rpm": 1200.0}


def test_a_failing_sampler_is_dropped_and_the_others_go_on(caplog):
    logged: list[tuple[dict[str, float], int]] = []
    monitor = SystemMetricsMonitor(
        lambda values, step: logged.append((dict(values), step)), samplers=[Broken(), Constant()]
    )
    monitor.sample()
    monitor.sample()
    assert logged == [({"system/fan_rpm": 1200.0}, 0), ({"system/fan_rpm": 1200.0}, 1)]
    assert [r.message for r in caplog.records].count(
        "system metrics: Broken failed and is no longer sampled: sensor gone"
    ) == 1


def test_a_sample_that_cannot_be_logged_does_not_raise(caplog):
    def refuse(values, step):
        raise InvalidArgument("store is read-only")

    monitor = SystemMetricsMonitor(refuse, samplers=[Constant()])
    monitor.sample()
    assert "could not be logged: store is read-only" in caplog.text


def fake_nvml(devices: int) -> SimpleNamespace:
    """NVML's calls as nvidia-ml-py exposes them, for the machines with no GPU (like CI's):
    this checks only how readings become metrics; a real GPU is read by ``GpuSampler.detect``."""
    return SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlDeviceGetCount=lambda: devices,
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetUtilizationRates=lambda h: SimpleNamespace(gpu=40 + h, memory=10),
        nvmlDeviceGetMemoryInfo=lambda h: SimpleNamespace(
            used=(h + 1) * 1024 * 1024 * 1024, total=8 * 1024 * 1024 * 1024
        ),
    )


def test_gpu_readings_become_per_device_metrics():
    sampler = GpuSampler.detect(fake_nvml(2))
    assert sampler is not None
    assert sampler.sample() == {
        "gpu_0_utilization_percentage": 40.0,
        "gpu_0_memory_usage_megabytes": 1024.0,
        "gpu_0_memory_usage_percentage": 12.5,
        "gpu_1_utilization_percentage": 41.0,
        "gpu_1_memory_usage_megabytes": 2048.0,
        "gpu_1_memory_usage_percentage": 25.0,
    }


def test_no_gpu_means_no_gpu_sampler():
    assert GpuSampler.detect(fake_nvml(0)) is None

    def no_driver() -> None:
        raise RuntimeError("NVML Shared Library Not Found")

    assert GpuSampler.detect(SimpleNamespace(nvmlInit=no_driver)) is None
