"""DS-ComGAN's optional regularisers (this workbook's, not the paper's): ``train.bg_swap`` judges
the composite over another sample's scene layer as a further fake; ``train.mask_floor`` charges
masks that cover less than a share of their image. Both leave the paper's comparison models alone.
"""

from __future__ import annotations

import pytest
import torch

from comgan_lib.config import load_params
from comgan_lib.errors import UserError
from comgan_lib.losses import mask_floor_loss
from comgan_lib.rundir import RunDir
from comgan_lib.train import (
    ImageBank,
    build_stage1,
    make_run_spec,
    swapped_composite,
    train_generator,
)

TINY = ["model.gen_width=32", "model.disc_width=8", "model.head_blocks=1", "train.batch_size=4"]


@pytest.fixture(scope="module")
def params(repo):
    return load_params(repo / "params" / "smoke.yaml", TINY)


def test_swapped_composite_takes_the_previous_samples_scene():
    fg = torch.full((3, 3, 2, 2), 5.0)
    bg = torch.arange(3.0)[:, None, None, None].expand(3, 3, 2, 2)
    mask = torch.zeros(3, 1, 2, 2)
    mask[:, :, 0, 0] = 1.0
    out = swapped_composite({"fg": fg, "bg": bg, "mask": mask})
    assert out[:, 0, 0, 0].tolist() == [5.0, 5.0, 5.0]  # under the mask: the sample's own object
    assert out[:, 0, 1, 1].tolist() == [2.0, 0.0, 1.0]  # elsewhere: the previous sample's scene


@pytest.mark.parametrize("swap", [False, True])
def test_a_step_with_bg_swap_judges_one_more_fake_and_reaches_the_scene_layer(params, swap):
    p = load_params(params.source, TINY + [f"train.bg_swap={str(swap).lower()}"])
    spec = make_run_spec(p, "s", "ds_comgan", 1.0)
    assert spec.bg_swap is swap
    step = build_stage1(spec, p, torch.device("cpu"), seed=0)
    latents = step.G.sample_latents(4, torch.Generator().manual_seed(0))
    result = step.grads(torch.rand(4, 3, 32, 32) * 2 - 1, latents)
    assert len(result.fake_logits) == (3 if swap else 2)  # composite, x̄_z (+ swapped composite)
    assert ("image_swapped" in result.out) is swap
    assert all(torch.isfinite(x.grad).all() for x in step.G.bg.parameters() if x.grad is not None)


def test_a_run_resumes_only_under_the_same_bg_swap(tmp_path, params):
    run, bank = RunDir(tmp_path), ImageBank(torch.rand(8, 3, 32, 32) * 2 - 1)
    train_generator(params, run, name="c", kind="ds_comgan", steps=2, bank=bank, progress=False)
    swapped = load_params(params.source, TINY + ["train.bg_swap=true"])
    with pytest.raises(UserError, match="bg_swap"):
        train_generator(swapped, run, name="c", kind="ds_comgan", steps=4, bank=bank)


def test_the_regularisers_leave_the_paper_s_comparison_models_alone(params):
    on = load_params(params.source, TINY + ["train.bg_swap=true", "train.mask_floor=0.1"])
    assert make_run_spec(on, "r", "ds_comgan", 1.0).mask_floor == 0.1
    for kind in ("pi1", "pi2", "comgan", "comgan_info"):
        spec = make_run_spec(on, "r", kind, 1.0)
        assert spec.bg_swap is False and spec.mask_floor == 0.0


def test_mask_floor_charges_only_masks_under_the_floor():
    logits = torch.full((3, 1, 8, 8), -6.0)
    logits[0, :, :4] = 6.0  # half the image: above a floor of 0.1, free
    logits[1, :, :1, :2] = 6.0  # 2 of 64 pixels: under the floor
    logits[2] = -300.0  # empty and saturated
    logits.requires_grad_(True)
    loss = mask_floor_loss(logits, 0.1)
    loss.backward()
    assert torch.isfinite(loss) and loss > 0
    assert logits.grad[0].abs().sum() == 0  # the covering mask pays nothing
    assert (logits.grad[1:] <= 0).all()  # pushed up ...
    assert logits.grad[2].abs().sum() > 0.1  # ... even where empty and saturated
    assert mask_floor_loss(logits.detach(), 0.0) == 0


class _EmptyMask(torch.nn.Module):
    """A mask head whose logits are one learnable value, −30: an empty, saturated mask."""

    def __init__(self):
        super().__init__()
        self.logit = torch.nn.Parameter(torch.tensor(-30.0))

    def forward(self, phi):
        return self.logit.expand(phi.shape[0], 1, *phi.shape[2:])


def test_a_step_with_a_mask_floor_pushes_an_empty_mask_open(params):
    grads = {}
    for floor in (0.0, 0.1):
        p = load_params(params.source, TINY + [f"train.mask_floor={floor}"])
        step = build_stage1(make_run_spec(p, "s", "ds_comgan", 0.0), p, torch.device("cpu"), seed=0)
        step.G.mask = _EmptyMask()
        latents = step.G.sample_latents(4, torch.Generator().manual_seed(0))
        step.grads(torch.rand(4, 3, 32, 32) * 2 - 1, latents)
        grads[floor] = step.G.mask.logit.grad.item()
    assert abs(grads[0.0]) < 1e-6  # saturated: the adversarial gradient vanishes (Lemma 1)
    assert grads[0.1] < -0.5  # the floor's does not, and it opens the mask
