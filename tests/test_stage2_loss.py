"""Stage 2's S loss under its options: L_cons as L1 (Eq. 10) or cross-entropy from logits, the D_m
term's weight, and resuming a checkpoint written before those options existed."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from comgan_lib.config import load_params
from comgan_lib.stage2 import build_stage2, segmenter_spec
from comgan_lib.train import _build_from_spec, make_run_spec

TINY = ["segment.width=8", "segment.disc_width=8"]


@pytest.fixture(scope="module")
def generator(repo):
    params = load_params(repo / "params" / "smoke.yaml", TINY)
    torch.manual_seed(0)
    spec = make_run_spec(params, "g", "comgan", 1.0)
    return _build_from_spec(spec.__dict__).eval().requires_grad_(False)


def one_step(repo, generator, overrides):
    params = load_params(repo / "params" / "smoke.yaml", [*TINY, *overrides])
    spec = segmenter_spec(params, "s", "g", 0, "mask")
    step_fn = build_stage2(generator, spec, params, torch.device("cpu"), seed=0)
    real = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    return step_fn, step_fn.grads(real)


def test_l1_consistency_plus_adversarial_is_eq_9_and_10(repo, generator):
    _, r = one_step(repo, generator, ["segment.cons_weight=3"])
    assert r.loss_adv.item() > 0
    l1 = (r.pred_gen - r.m_gen).abs().mean()
    assert r.loss_cons.item() == pytest.approx(l1.item(), rel=1e-6)
    assert r.loss_s.item() == pytest.approx(3 * l1.item() + r.loss_adv.item(), rel=1e-5)


def test_bce_consistency_without_d_m_is_cross_entropy_to_the_generated_mask(repo, generator):
    step_fn, r = one_step(
        repo, generator, ["segment.cons_loss=bce", "segment.adv_weight=0", "segment.cons_weight=2"]
    )
    p = r.pred_gen.detach().clamp(1e-6, 1 - 1e-6)
    bce = F.binary_cross_entropy(p, r.m_gen)
    assert r.loss_adv.item() == 0
    assert r.loss_cons.item() == pytest.approx(bce.item(), rel=1e-4)
    assert r.loss_s.item() == pytest.approx(2 * bce.item(), rel=1e-4)
    # S's gradient is the cross-entropy's alone: no D_m parameter took part in S's backward.
    assert all(p.grad is not None for p in step_fn.S.parameters() if p.requires_grad)


def test_a_checkpoint_from_before_the_options_resumes_under_their_defaults(repo):
    params = load_params(repo / "params" / "smoke.yaml", TINY)
    spec = segmenter_spec(params, "s", "g", 0, "mask")
    old = {k: v for k, v in spec.__dict__.items() if k not in ("cons_loss", "adv_weight")}
    assert spec.differences(old) == []
    bce = segmenter_spec(
        load_params(repo / "params" / "smoke.yaml", [*TINY, "segment.cons_loss=bce"]),
        "s",
        "g",
        0,
        "mask",
    )
    assert bce.differences(old) == ["cons_loss: 'l1' -> 'bce'"]


def test_input_norm_makes_s_blind_to_per_channel_contrast_and_brightness():
    from comgan_lib.nets.segmenter import UNet

    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    paler = x * torch.tensor([0.4, 0.5, 0.3]).view(1, 3, 1, 1) + 0.2
    for norm, same in ((True, True), (False, False)):
        torch.manual_seed(1)
        net = UNet(3, 8, 3, input_norm=norm).eval()
        with torch.no_grad():
            close = torch.allclose(net(x), net(paler), atol=1e-3)
        assert close is same
