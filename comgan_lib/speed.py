"""How a training step is computed, never what it computes: precision, memory format, compilation.

Each option is a parameter (``train.*`` for stage 1, ``segment.*`` for stage 2) and fp32 eager is
the reference; ``tests/test_speed_variants.py`` checks every option against it from the same seed.
``python -m comgan_lib.bench`` measures them side by side (docs/PAPER_SCALE.md has the numbers).

- ``precision``: ``fp32`` is strict fp32 (on CUDA, TensorFloat-32 is switched off for
  convolutions and matrix products, which PyTorch otherwise allows for cuDNN convolutions);
  ``tf32`` lets CUDA convolutions and matrix products round their inputs to TensorFloat-32
  (10-bit mantissa, fp32 accumulation; the same as fp32 on a CPU); ``bf16``: autocast to
  bfloat16 (loss terms in fp32). Fast on GPUs; on CPUs without native bf16 it is far *slower*
  (about 25x measured on the 2-core development machine).
- ``channels_last``: NHWC memory format for the networks and their image inputs (same math).
- ``compile``: ``torch.compile`` (inductor) of the networks; fuses batch norm, GLU and the other
  element-wise work around the convolutions. Unavailable (no C++ compiler on a CPU, unsupported
  Python) or failing to compile, it warns once and runs eager.
- ``cudnn_benchmark``: cuDNN autotuning (CUDA only; a no-op on the CPU).
- ``fused_adam``: Adam's fused kernel (the same update up to rounding).
"""

from __future__ import annotations

import contextlib
import shutil
import warnings
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class SpeedOptions:
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    cudnn_benchmark: bool = False
    fused_adam: bool = False

    @classmethod
    def for_stage1(cls, params) -> SpeedOptions:
        t = params.train
        return cls(t.precision, t.channels_last, t.compile, t.cudnn_benchmark, t.fused_adam)

    @classmethod
    def for_stage2(cls, params) -> SpeedOptions:
        s, t = params.segment, params.train
        return cls(s.precision, s.channels_last, s.compile, t.cudnn_benchmark, t.fused_adam)


def autocast(device: torch.device, precision: str):
    """bf16 autocast for ``precision == "bf16"``, otherwise nothing."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def apply_backend_flags(device: torch.device, options: SpeedOptions) -> None:
    """Process-wide CUDA flags of the options (no-ops on a CPU). The steps set them on every call
    (three assignments), so variants timed side by side in one process each run with their own."""
    if device.type != "cuda":
        return
    torch.backends.cudnn.benchmark = options.cudnn_benchmark
    # bf16 autocast leaves the layers it keeps in fp32 (norms, losses) as they are: strict.
    tf32 = options.precision == "tf32"
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32


def memory_format(options: SpeedOptions) -> torch.memory_format:
    return torch.channels_last if options.channels_last else torch.contiguous_format


def to_format(x: torch.Tensor, options: SpeedOptions) -> torch.Tensor:
    """An image batch in the networks' memory format (a no-op for the default format)."""
    if options.channels_last and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def adam(parameters, lr: float, betas: tuple[float, float], options: SpeedOptions, device):
    """Adam as the paper trains (lr, betas), with the fused kernel when asked for."""
    fused = True if options.fused_adam else None
    return torch.optim.Adam(list(parameters), lr=lr, betas=betas, fused=fused)


def compile_unavailable(device: torch.device) -> str | None:
    """Why ``torch.compile`` cannot be used here, or None when it can."""
    if not hasattr(torch, "compile"):
        return f"torch {torch.__version__} has no torch.compile"
    try:
        import importlib

        if not importlib.import_module("torch._dynamo").is_dynamo_supported():
            return "torch.compile does not support this Python version"
    except Exception as e:  # noqa: BLE001 - any import problem means: not available
        return f"torch.compile is not importable ({type(e).__name__}: {e})"
    if device.type == "cpu" and not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        return "the inductor CPU backend needs a C++ compiler (c++, g++ or clang++) on PATH"
    return None


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def _is_compile_error(exc: BaseException) -> bool:
    module = type(exc).__module__ or ""
    return (
        module.startswith(("torch._dynamo", "torch._inductor"))
        or "CompileError" in type(exc).__name__
    )


class CompiledOrEager:
    """Calls a compiled module; if compiling fails, warns once and calls the eager module from
    then on (compilation happens before anything runs, so no step is half-done)."""

    def __init__(self, module: nn.Module, compiled, what: str):
        self.module, self.compiled, self.what = module, compiled, what

    def __call__(self, *args, **kwargs):
        if self.compiled is not None:
            try:
                return self.compiled(*args, **kwargs)
            except Exception as e:
                if not _is_compile_error(e):
                    raise
                first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
                _warn_once(
                    f"torch.compile of {self.what} failed ({type(e).__name__}: {first}); "
                    "running eager"
                )
                self.compiled = None
        return self.module(*args, **kwargs)


def maybe_compile(module: nn.Module, options: SpeedOptions, device: torch.device, what: str):
    """``module`` itself, or (``options.compile``) a callable running its compiled version."""
    if not options.compile:
        return module
    why = compile_unavailable(device)
    if why:
        _warn_once(f"train/segment compile is on but {why}; running eager")
        return module
    return CompiledOrEager(module, torch.compile(module, dynamic=False), what)
