"""Speed variants compute the same training steps as fp32 eager, from the same seed.

Each variant runs a few stage-1 steps (``Stage1Step``, the loop's own step) on tiny networks and is
compared with fp32 eager on the per-step losses and on the weight updates (``w_after - w_init``
of G and D, as one vector: ``|Δ_variant - Δ_fp32| / |Δ_fp32|``). Tolerances:

- tight (channels_last, fused_adam, compile, and ``legacy``: the step before the speed work, D's
  weight gradients computed in the G step and GLU as two operations):
  losses within 1e-4 relative, updates within 1e-2 relative. Rounding differences in the
  convolutions are ~1e-6; Adam divides each gradient by its own running scale, so an entry
  whose gradient is ~0 can move by up to ``lr`` either way, which is what the 1e-2 allows.
- loose (bf16 autocast): losses within 5e-2 relative, updates within 0.5 relative (bfloat16 keeps
  8 bits of mantissa; the direction of the update is what it must keep).

- medium (tf32: CUDA convolutions and matrix products with 10-bit-mantissa inputs): losses within
  1e-2, updates within 0.5 as bf16 (on a CPU tf32 is fp32 and matches exactly).

The file runs on the CPU; ``COMGAN_TEST_DEVICE=cuda pytest tests/test_speed_variants.py`` runs the
same checks on a GPU (cuDNN set deterministic there, so the reference repeats bit for bit).

Stage 2 (``Stage2Step``) is checked on one step (losses and S's gradients, tight); the compile
check uses ``comgan`` (fewest graphs) and takes most of this file's time on a cold compile cache.
"""

from __future__ import annotations

import os
import warnings

import pytest
import torch

from comgan_lib import speed
from comgan_lib.bench import make_legacy, parse_variant
from comgan_lib.config import load_params
from comgan_lib.train import ImageBank, build_stage1, make_run_spec

TINY = [
    "model.gen_width=32",
    "model.disc_width=8",
    "model.info_width=8",
    "model.head_blocks=1",
    "train.batch_size=4",
]
STEPS = 3
TIGHT = {"loss_rtol": 1e-4, "update_rtol": 1e-2}
MEDIUM = {"loss_rtol": 1e-2, "update_rtol": 0.5}
LOOSE = {"loss_rtol": 5e-2, "update_rtol": 0.5}
DEVICE = torch.device(os.environ.get("COMGAN_TEST_DEVICE", "cpu"))
if DEVICE.type == "cuda":
    torch.backends.cudnn.deterministic = True


@pytest.fixture(scope="module")
def params(repo):
    return load_params(repo / "params" / "smoke.yaml", TINY)


@pytest.fixture(scope="module")
def bank():
    g = torch.Generator().manual_seed(0)
    return ImageBank(torch.rand(16, 3, 32, 32, generator=g) * 2 - 1)


def run_stage1(params, bank, variant: str, kind: str = "ds_comgan"):
    """Per-step (loss_D, loss_G) and the update of G's and D's weights after STEPS steps."""
    options, legacy = parse_variant(variant)
    spec = make_run_spec(params, "speed_test", kind, 1.0)
    step_fn = build_stage1(spec, params, DEVICE, options=options, seed=0)
    if legacy:
        make_legacy(step_fn)
    layout = torch.channels_last if options.channels_last else torch.contiguous_format
    assert step_fn.D.trunk[0].weight.is_contiguous(memory_format=layout)
    nets = (step_fn.G, step_fn.D)
    before = torch.cat([p.detach().flatten().clone() for m in nets for p in m.parameters()])
    batches, latents = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    losses = []
    B = params.train.batch_size
    for i in range(STEPS):
        z = step_fn.G.sample_latents(B, generator=latents, device=DEVICE)
        r = step_fn.grads(bank.sample(B, batches).to(DEVICE), z)
        step_fn.update(i + 1)
        losses.append([r.loss_d.item(), r.loss_g.item()])
    after = torch.cat([p.detach().flatten() for m in nets for p in m.parameters()])
    return torch.tensor(losses), after - before


@pytest.fixture(scope="module")
def reference(params, bank):
    return {kind: run_stage1(params, bank, "fp32", kind) for kind in ("ds_comgan", "comgan")}


def assert_close(result, reference, tol, what):
    losses, update = result
    ref_losses, ref_update = reference
    loss_err = ((losses - ref_losses).abs() / ref_losses.abs()).max().item()
    update_err = ((update - ref_update).norm() / ref_update.norm()).item()
    assert loss_err <= tol["loss_rtol"], f"{what}: losses differ by {loss_err:.2e} (relative)"
    assert update_err <= tol["update_rtol"], f"{what}: updates differ by {update_err:.2e}"


@pytest.mark.parametrize(
    "variant,tol",
    [
        ("legacy", TIGHT),
        ("channels_last", TIGHT),
        ("fused_adam", TIGHT),
        ("channels_last+fused_adam", TIGHT),
        ("tf32", MEDIUM),
        ("bf16", LOOSE),
    ],
)
def test_eager_variants_match_fp32(params, bank, reference, variant, tol):
    assert_close(run_stage1(params, bank, variant), reference["ds_comgan"], tol, variant)


@pytest.mark.skipif(DEVICE.type != "cuda", reason="TensorFloat-32 exists on CUDA only")
def test_fp32_is_strict_on_cuda(params, bank, reference):
    """PyTorch lets cuDNN convolutions use TF32 by default; the fp32 reference must not."""
    losses, update = run_stage1(params, bank, "tf32")
    assert not torch.equal(update, reference["ds_comgan"][1])


def test_variant_names_parse_to_options():
    options, legacy = parse_variant("tf32+channels_last+compile")
    assert (options.precision, options.channels_last, options.compile, legacy) == (
        "tf32",
        True,
        True,
        False,
    )
    with pytest.raises(Exception, match="unknown variant part 'fp16'"):
        parse_variant("fp16+channels_last")


def test_the_reference_is_deterministic(params, bank, reference):
    losses, update = run_stage1(params, bank, "fp32")
    assert torch.equal(losses, reference["ds_comgan"][0])
    assert torch.equal(update, reference["ds_comgan"][1])


def test_compiled_step_matches_fp32(params, bank, reference):
    if speed.compile_unavailable(DEVICE):
        pytest.skip(speed.compile_unavailable(DEVICE))
    # comgan: the smallest set of graphs (no Q, no trunk image) keeps compiling short.
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a fallback to eager would pass silently
        result = run_stage1(params, bank, "compile", kind="comgan")
    assert_close(result, reference["comgan"], TIGHT, "compile")


@pytest.mark.skipif(DEVICE.type != "cpu", reason="the missing compiler is the CPU backend's")
def test_compile_falls_back_to_eager_with_a_warning(params, bank, reference, monkeypatch):
    monkeypatch.setattr(speed, "_WARNED", set())
    monkeypatch.setenv("PATH", "/nonexistent")  # no C++ compiler: inductor cannot run on a CPU
    assert "C++ compiler" in speed.compile_unavailable(DEVICE)
    with pytest.warns(RuntimeWarning, match="C\\+\\+ compiler.*running eager"):
        result = run_stage1(params, bank, "compile", kind="comgan")
    assert torch.equal(result[0], reference["comgan"][0])


def test_a_failing_compilation_runs_eager(monkeypatch):
    from torch._dynamo.exc import TorchRuntimeError

    monkeypatch.setattr(speed, "_WARNED", set())
    net = torch.nn.Linear(3, 2)

    def broken(*args, **kwargs):
        raise TorchRuntimeError("backend exploded")

    call = speed.CompiledOrEager(net, broken, "the test net")
    x = torch.ones(1, 3)
    with pytest.warns(RuntimeWarning, match="the test net failed.*backend exploded"):
        assert torch.equal(call(x), net(x))
    assert call.compiled is None  # eager from then on, without warning again

    def user_bug(*args, **kwargs):
        raise ValueError("a real error")

    with pytest.raises(ValueError, match="a real error"):  # not a compile error: not hidden
        speed.CompiledOrEager(net, user_bug, "the test net")(x)


def test_stage2_channels_last_matches_fp32(params, bank):
    """Stage 2 on an untrained generator, one step: the losses and S's gradients.

    The learning rate is 0: D_m sees masks near 0.5, gets near-zero weight gradients, and Adam would
    scale their rounding noise up to ±lr before S's step reads D_m. S's convolutions feed batch
    norm over 8 images, whose backward pass subtracts nearly equal terms, so the two layouts'
    gradients part by a few 1e-3 of their norm (measured 2.9e-3 on one thread, less on two); a
    layout error parts them by order 1."""
    from comgan_lib.stage2 import SegmenterSpec, build_stage2
    from comgan_lib.train import _build_from_spec

    gspec = make_run_spec(params, "g", "comgan", 1.0)
    spec = SegmenterSpec("s", "g", 0, "mask", 32, 8, 3, 8, 4, 0.0, 2.0, "fp32")

    def run(variant):
        options, _ = parse_variant(variant)
        torch.manual_seed(0)
        G = _build_from_spec(gspec.__dict__).to(DEVICE).eval().requires_grad_(False)
        step_fn = build_stage2(G, spec, params, DEVICE, seed=0, options=options)
        conv = next(m for m in step_fn.S.modules() if isinstance(m, torch.nn.Conv2d))
        layout = torch.channels_last if options.channels_last else torch.contiguous_format
        assert conv.weight.is_contiguous(memory_format=layout)
        r = step_fn.grads(bank.sample(4, torch.Generator().manual_seed(1)).to(DEVICE))
        grads = torch.cat([p.grad.flatten() for p in step_fn.S.parameters()])
        return torch.tensor([r.loss_d.item(), r.loss_s.item()]), grads

    (ref_loss, ref_grad), (loss, grad) = run("fp32"), run("channels_last")
    assert ((loss - ref_loss).abs() / ref_loss.abs()).max() <= TIGHT["loss_rtol"]
    assert (grad - ref_grad).norm() / ref_grad.norm() <= 1e-2
