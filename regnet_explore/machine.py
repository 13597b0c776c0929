"""What machine computed a result: the CPU kind, cores, threads and torch version recorded beside every trained or
timed model.

Two CPUs of one brand name can differ in the instructions their math libraries take ("AMD EPYC" covers Zen 2
without AVX512 and Zen 4 with it), and a short training run amplifies the last-bit differences like another seed,
so a kind is the name with its family, model and whether it has AVX512.
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

import torch

CPUINFO = Path("/proc/cpuinfo")


def parse_cpuinfo(text: str) -> dict[str, str]:
    """The first processor's fields of a ``/proc/cpuinfo`` text."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def describe_cpu(fields: dict[str, str]) -> str:
    """A CPU kind in one string, e.g. ``AMD EPYC (family 25 model 17, AVX512)``."""
    name = fields.get("model name") or platform.processor() or platform.machine() or "unknown CPU"
    if "cpu family" not in fields:
        return name
    avx512 = "AVX512" if "avx512f" in fields.get("flags", "").split() else "no AVX512"
    return f"{name} (family {fields['cpu family']} model {fields.get('model', '?')}, {avx512})"


@functools.cache
def cpu_kind() -> str:
    """This machine's CPU kind (:func:`describe_cpu` of ``/proc/cpuinfo``; elsewhere the platform's name)."""
    try:
        text = CPUINFO.read_text()
    except OSError:
        text = ""
    return describe_cpu(parse_cpuinfo(text))


def device_name(device: str | torch.device = "cpu") -> str:
    """The CPU kind, or the GPU's name for a CUDA device."""
    device = torch.device(device)
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_kind()


def machine_fields(device: str | torch.device = "cpu") -> dict:
    """The fields a results row records about where it was computed."""
    return {"cpu": cpu_kind(), "device_name": device_name(device), "cpu_cores": os.cpu_count(),
            "threads": torch.get_num_threads(), "torch": torch.__version__}


__all__ = ["cpu_kind", "describe_cpu", "device_name", "machine_fields", "parse_cpuinfo"]
