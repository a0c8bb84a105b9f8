"""GPU readings reach /metrics when NVML answers (NVML itself is injected: no GPU here)."""

from __future__ import annotations

from types import SimpleNamespace

from prometheus_client import CollectorRegistry

from inference.gpu import GpuReader
from inference.metrics import ServiceMetrics

LABELS = {"model": "m", "endpoint": "e", "replica": "r"}


class FakeNvml:
    """Answers like pynvml does for two GPUs."""

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(gpu=[87, 12][handle], memory=0)

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(used=[40 * 2**30, 2**30][handle], total=80 * 2**30)


def gpu_reader(handles: list[int]) -> GpuReader:
    reader = GpuReader(nvml=FakeNvml())
    reader._handles = handles  # what nvmlDeviceGetHandleByIndex would have returned
    return reader


def test_gpu_utilization_and_memory_per_gpu() -> None:
    metrics = ServiceMetrics(LABELS, registry=CollectorRegistry(), gpus=gpu_reader([0, 1]))
    text = metrics.exposition().decode()
    assert 'inferplane_gpu_utilization_ratio{endpoint="e",gpu="0",model="m",replica="r"} 0.87' in text
    assert 'inferplane_gpu_utilization_ratio{endpoint="e",gpu="1",model="m",replica="r"} 0.12' in text
    assert (
        'inferplane_gpu_memory_used_bytes{endpoint="e",gpu="0",model="m",replica="r"} 4.294967296e+10' in text
    )


def test_no_gpu_means_no_gpu_series_rather_than_zero() -> None:
    metrics = ServiceMetrics(LABELS, registry=CollectorRegistry(), gpus=gpu_reader([]))
    text = metrics.exposition().decode()
    assert "inferplane_gpu_utilization_ratio" not in text
    assert "inferplane_gpu_memory_used_bytes" not in text


def test_real_nvml_on_this_machine_reports_no_gpu() -> None:
    assert GpuReader().read() == []
