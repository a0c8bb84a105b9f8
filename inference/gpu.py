"""Accelerator readings through NVML (``nvidia-ml-py``), when a GPU is present.

``GpuReader.read()`` returns one ``GpuReading`` per visible GPU, or an empty list on a
machine without NVIDIA GPUs: "no GPU" is explicit, never a reading of zero.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

__all__ = ["GpuReader", "GpuReading"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GpuReading:
    index: int
    utilization: float  # 0..1, share of the last sample period a kernel ran
    memory_used_bytes: int
    memory_total_bytes: int


class GpuReader:
    """Reads utilization and memory of every GPU NVML sees."""

    def __init__(self, nvml: Any = None) -> None:
        self._nvml = nvml
        self._handles: list[Any] = []
        if nvml is None:
            self._nvml = self._init_nvml()

    def _init_nvml(self) -> Any:
        try:
            import pynvml

            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            return pynvml
        except Exception as error:  # noqa: BLE001 - NVML absent means "no GPU", said once
            log.info("no NVIDIA GPU readings (%s: %s)", type(error).__name__, error)
            return None

    @property
    def available(self) -> bool:
        return self._nvml is not None and bool(self._handles)

    def read(self) -> list[GpuReading]:
        if not self.available:
            return []
        readings = []
        for index, handle in enumerate(self._handles):
            rates = self._nvml.nvmlDeviceGetUtilizationRates(handle)
            memory = self._nvml.nvmlDeviceGetMemoryInfo(handle)
            readings.append(GpuReading(index, rates.gpu / 100.0, memory.used, memory.total))
        return readings
