"""System metrics: CPU, memory, disk, network and GPU use, sampled into ``system/…`` metrics.

``segue.start_run(..., system_metrics=True)`` starts a :class:`SystemMetricsMonitor` that
samples every 10 seconds (``system_metrics=2.5`` for every 2.5 s) from a daemon thread and logs
each sample as one step of these metrics; the monitor stops, and takes one last sample, when the
run ends:

- ``system/cpu_utilization_percentage`` (all cores, since the previous sample)
- ``system/system_memory_usage_megabytes``, ``system/system_memory_usage_percentage``
- ``system/process_memory_rss_megabytes`` (this process)
- ``system/disk_usage_megabytes``, ``system/disk_available_megabytes``,
  ``system/disk_usage_percentage`` (the file system of the working directory)
- ``system/disk_read_megabytes``, ``system/disk_write_megabytes`` (since the run started; where
  the kernel reports disk I/O, which containers often do not)
- ``system/network_receive_megabytes``, ``system/network_transmit_megabytes`` (since the run
  started)
- per NVIDIA GPU ``i``, when ``nvidia-ml-py`` is installed (``pip install segue[gpu]``) and a
  driver answers:
  ``system/gpu_<i>_utilization_percentage``, ``system/gpu_<i>_memory_usage_megabytes``,
  ``system/gpu_<i>_memory_usage_percentage``. Without a GPU (or without ``nvidia-ml-py``) these
  are simply not logged.

Time is injectable: the loop waits on an ``Event``-like object (``wait(timeout)`` returning
whether it was set), so tests drive the samples one by one with no sleeping.

Example:
    >>> with segue.start_run(experiment="churn", system_metrics=5) as run:
    ...     train()  # system/* metrics every 5 s
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from segue.errors import InvalidArgument

__all__ = [
    "DEFAULT_INTERVAL",
    "GpuSampler",
    "HostSampler",
    "Sampler",
    "SystemMetricsMonitor",
    "default_samplers",
    "interval_of",
]

#: Seconds between two samples unless the run asks otherwise.
DEFAULT_INTERVAL = 10.0
_MB = 1024 * 1024
PREFIX = "system/"

log = logging.getLogger(__name__)


class Sampler(Protocol):
    """Reads one kind of system use; ``sample`` returns metric names (without ``system/``)."""

    def sample(self) -> dict[str, float]: ...


class Waiter(Protocol):
    """What the sampling loop waits on: ``threading.Event`` or a test's driver."""

    def wait(self, timeout: float | None = None) -> bool: ...

    def set(self) -> None: ...


class HostSampler:
    """CPU, memory, disk and network use from psutil, I/O counted from construction on."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        import psutil

        self._psutil = psutil
        self._path = os.fspath(path) if path is not None else os.getcwd()
        self._process = psutil.Process()
        psutil.cpu_percent(interval=None)  # the first call only starts the measurement
        self._net0 = psutil.net_io_counters()
        self._disk0 = psutil.disk_io_counters()

    def sample(self) -> dict[str, float]:
        psutil = self._psutil
        memory = psutil.virtual_memory()
        disk = psutil.disk_usage(self._path)
        values = {
            "cpu_utilization_percentage": float(psutil.cpu_percent(interval=None)),
            "system_memory_usage_megabytes": (memory.total - memory.available) / _MB,
            "system_memory_usage_percentage": float(memory.percent),
            "process_memory_rss_megabytes": self._process.memory_info().rss / _MB,
            "disk_usage_megabytes": disk.used / _MB,
            "disk_available_megabytes": disk.free / _MB,
            "disk_usage_percentage": float(disk.percent),
        }
        net = psutil.net_io_counters()
        if net is not None and self._net0 is not None:
            values["network_receive_megabytes"] = (net.bytes_recv - self._net0.bytes_recv) / _MB
            values["network_transmit_megabytes"] = (net.bytes_sent - self._net0.bytes_sent) / _MB
        io = psutil.disk_io_counters()
        if io is not None and self._disk0 is not None:
            values["disk_read_megabytes"] = (io.read_bytes - self._disk0.read_bytes) / _MB
            values["disk_write_megabytes"] = (io.write_bytes - self._disk0.write_bytes) / _MB
        return values


class GpuSampler:
    """Utilization and memory of every NVIDIA GPU, through NVML (``nvidia-ml-py``).

    Build it with :meth:`detect`, which returns None where there is no GPU to read.
    """

    def __init__(self, nvml: Any) -> None:
        self._nvml = nvml
        count = nvml.nvmlDeviceGetCount()
        self._handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]

    @classmethod
    def detect(cls, nvml: Any = None) -> GpuSampler | None:
        """A sampler over the GPUs NVML sees, or None (no ``pynvml``, no driver, no GPU).

        ``nvml`` is the ``pynvml`` module of ``nvidia-ml-py`` (default: imported if installed).
        """
        if nvml is None:
            try:
                import pynvml
            except ImportError:
                return None
            nvml = pynvml
        try:
            nvml.nvmlInit()
            sampler = cls(nvml)
        except Exception as exc:  # NVMLError: no driver or no device, i.e. no GPU to sample
            log.debug("no GPU metrics: %s", exc)
            return None
        return sampler if sampler._handles else None

    def sample(self) -> dict[str, float]:
        values: dict[str, float] = {}
        for i, handle in enumerate(self._handles):
            rates = self._nvml.nvmlDeviceGetUtilizationRates(handle)
            memory = self._nvml.nvmlDeviceGetMemoryInfo(handle)
            values[f"gpu_{i}_utilization_percentage"] = float(rates.gpu)
            values[f"gpu_{i}_memory_usage_megabytes"] = memory.used / _MB
            values[f"gpu_{i}_memory_usage_percentage"] = 100.0 * memory.used / memory.total
        return values


def default_samplers() -> list[Sampler]:
    """psutil's host sampler, plus the GPU sampler when an NVIDIA GPU can be read.

    A sampler that cannot start is left out with a warning in the log: asking for system
    metrics never keeps a run from starting.
    """
    samplers: list[Sampler] = []
    try:
        samplers.append(HostSampler())
    except Exception as exc:  # no psutil, or a host whose counters cannot be read
        log.warning("system metrics: CPU, memory, disk and network cannot be sampled: %s", exc)
    gpu = GpuSampler.detect()
    if gpu is not None:
        samplers.append(gpu)
    return samplers


def interval_of(system_metrics: bool | float) -> float | None:
    """The sampling interval ``start_run(system_metrics=...)`` asks for, or None for none."""
    if system_metrics is False or system_metrics is None:
        return None
    if system_metrics is True:
        return DEFAULT_INTERVAL
    if isinstance(system_metrics, (int, float)) and system_metrics > 0:
        return float(system_metrics)
    raise InvalidArgument(
        f"system_metrics must be True, False or a positive number of seconds, "
        f"got {system_metrics!r}"
    )


class SystemMetricsMonitor:
    """Samples system use every ``interval`` seconds from a daemon thread until :meth:`stop`.

    Args:
        log_metrics: called with ``({"system/…": value}, step)`` for each sample, from the
            sampling thread (``ActiveRun.log_metrics``).
        interval: seconds between samples.
        samplers: what to read (default :func:`default_samplers`).
        event: what the loop waits on between samples (default a new ``threading.Event``);
            ``wait(interval)`` returning False means "sample now", True means "stop".

    A sampler that raises is reported once in the log and left out of later samples; sampling
    never raises into the run.
    """

    def __init__(
        self,
        log_metrics: Callable[[Mapping[str, float], int], None],
        interval: float = DEFAULT_INTERVAL,
        *,
        samplers: Sequence[Sampler] | None = None,
        event: Waiter | None = None,
    ) -> None:
        self._log_metrics = log_metrics
        self.interval = interval
        self._samplers = list(default_samplers() if samplers is None else samplers)
        self._event: Waiter = threading.Event() if event is None else event
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        #: Samples logged so far (the step of the next one).
        self.steps = 0

    def start(self) -> SystemMetricsMonitor:
        self._thread = threading.Thread(target=self._loop, name="segue-system-metrics", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._event.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        """Take one sample now and log it as the next step."""
        with self._lock:
            values: dict[str, float] = {}
            for sampler in list(self._samplers):
                try:
                    values.update(sampler.sample())
                except Exception as exc:
                    log.warning(
                        "system metrics: %s failed and is no longer sampled: %s",
                        type(sampler).__name__,
                        exc,
                    )
                    self._samplers.remove(sampler)
            if not values:
                return
            try:
                self._log_metrics({PREFIX + k: v for k, v in values.items()}, self.steps)
            except Exception as exc:
                log.warning("system metrics: a sample could not be logged: %s", exc)
            self.steps += 1

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop the thread and take a last sample, so even a short run has one."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._event.set()
        thread.join(timeout)
        if thread.is_alive():
            log.warning("system metrics: the sampling thread did not stop in %s s", timeout)
            return
        self.sample()
