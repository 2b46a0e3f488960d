"""Run-time set-up and facts: seeding, device choice, and what a manifest records."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MANIFEST_PACKAGES = (
    "torch",
    "torchvision",
    "torch-fidelity",
    "numpy",
    "pillow",
    "matplotlib",
    "papermill",
    "nbconvert",
    "ipywidgets",
    "pyyaml",
)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices) from one number."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - seeds code that uses the legacy global RNG
    torch.manual_seed(seed)


def pick_device(preference: str = "auto") -> torch.device:
    """``auto`` takes CUDA when present; asking for ``cuda`` without one is a clear error."""
    if preference == "cuda" and not torch.cuda.is_available():
        from comgan_lib.errors import ConfigError

        raise ConfigError("run.device is cuda but no CUDA device is available; use auto or cpu")
    if preference == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")


def device_description(device: torch.device | None = None) -> str:
    device = device or pick_device()
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    # The model and the vector ISA torch dispatches to: timings are only comparable between hosts
    # that agree on both (platform.processor() is empty on Linux).
    cpu = f"{cpu_model_name() or platform.machine()} ({platform.machine()}, {cpu_capability()})"
    return f"cpu: {cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def cpu_model_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The CPU's model name as the kernel reports it, or None where there is no /proc/cpuinfo."""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        return None
    return platform.processor() or None


def cpu_capability() -> str:
    """The vector instruction set torch's CPU kernels use here (e.g. AVX2, AVX512)."""
    try:
        return torch.backends.cpu.get_cpu_capability()
    except (AttributeError, RuntimeError):
        return "unknown ISA"


def package_versions(names=MANIFEST_PACKAGES) -> dict[str, str]:
    versions = {"python": sys.version.split()[0]}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit(repo: Path = PROJECT_ROOT) -> dict[str, str | bool | None]:
    """The checkout's commit and whether it has uncommitted changes (None outside git)."""

    def git(*args):
        return subprocess.run(
            ["git", *args], cwd=repo, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}
