"""Networks: shapes at 32/64/128, the released code's parameter counts, boundary checks."""

from __future__ import annotations

import pytest
import torch

from comgan_lib.nets import GENERATORS, ComGAN, FeatureGenerator, ImageDiscriminator, SimpleGAN
from comgan_lib.nets.blocks import GLU, ResBlock, same_block, up_block


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_reference_parameter_counts_at_128():
    # Released code: feature generator 4,815,808; basic ComGAN generator 5,039,728;
    # IMAGE_D (ndf 32, with its 20-way code head) about 3.01 M.
    assert count(FeatureGenerator(128, 100, 512)) == pytest.approx(4_815_808, rel=0.05)
    assert count(ComGAN(128, 100, 512)) == pytest.approx(5_039_728, rel=0.05)
    assert count(ImageDiscriminator(128, 32, code_dim=20)) == pytest.approx(3.01e6, rel=0.05)


@pytest.mark.parametrize("resolution, width", [(32, 64), (64, 64), (128, 128)])
@pytest.mark.parametrize("kind", list(GENERATORS))
def test_generator_outputs(kind, resolution, width):
    torch.manual_seed(0)
    G = GENERATORS[kind](resolution, z_dim=16, width=width)
    out = G(**G.sample_latents(3))
    assert out["image"].shape == (3, 3, resolution, resolution)
    assert out["image"].abs().max() <= 1
    if G.has_mask:
        assert out["mask"].shape == (3, 1, resolution, resolution)
        assert 0 <= out["mask"].min() and out["mask"].max() <= 1
        recomposed = out["fg"] * out["mask"] + out["bg"] * (1 - out["mask"])
        assert torch.allclose(out["image"], recomposed)
        groups = G.parameter_groups()
        assert {"mask", "fg", "bg"} <= set(groups)
        grouped = {id(p) for plist in groups.values() for p in plist}
        assert grouped == {id(p) for p in G.parameters()}  # every parameter in exactly a group
        assert sum(len(v) for v in groups.values()) == len(grouped)


def test_ds_comgan_matches_the_released_parameter_count():
    # Released G_NET_of_DSComGAN at 128 px, 200 codes, F/B with 2 residual blocks: 8,555,488.
    from comgan_lib.nets import DSComGAN

    G = DSComGAN(128, width=512, head_blocks=2, num_codes=200)
    assert count(G) == pytest.approx(8_555_488, rel=0.05)
    assert G.phi_channels == 64  # 16 | 32 | 16 channels of Eq. 5's φ at 128 px
    narrow = DSComGAN(128, width=512, head_blocks=2, num_codes=200, head_factor=2)
    assert count(narrow) < count(G) and narrow(**narrow.sample_latents(2))["image"].shape[-1] == 128


@pytest.mark.parametrize("kind", ["comgan_info", "ds_comgan"])
def test_codes_drive_the_layers_they_name(kind):
    torch.manual_seed(0)
    G = GENERATORS[kind](32, z_dim=16, width=64, num_codes=4).eval()
    z = G.sample_z(2)
    zero, one = torch.zeros(2, dtype=torch.long), torch.ones(2, dtype=torch.long)
    base = G(z, f=zero, b=zero)
    new_f = G(z, f=one, b=zero)
    new_b = G(z, f=zero, b=one)
    # f changes F only, b changes B only, and neither changes the mask M(φ).
    assert not torch.allclose(base["fg"], new_f["fg"]) and torch.equal(base["bg"], new_f["bg"])
    assert not torch.allclose(base["bg"], new_b["bg"]) and torch.equal(base["fg"], new_b["fg"])
    assert torch.equal(base["mask"], new_f["mask"]) and torch.equal(base["mask"], new_b["mask"])
    one_hot = G(z, f=torch.eye(4)[[1, 1]], b=torch.eye(4)[[0, 0]])
    assert torch.allclose(one_hot["image"], new_f["image"])  # indices and one-hot rows agree
    assert ("trunk_image" in base) == (kind == "ds_comgan")
    with pytest.raises(ValueError, match="needs codes"):
        G(z)
    with pytest.raises(ValueError, match="codes must lie"):
        G(z, f=torch.tensor([0, 4]), b=zero)


def test_tied_codes_set_b_to_f():
    from comgan_lib.nets import DSComGAN

    tied = DSComGAN(32, width=64, num_codes=7, tied_codes=True).sample_latents(50)
    assert torch.equal(tied["f"], tied["b"])
    free = DSComGAN(32, width=64, num_codes=7).sample_latents(50)
    assert not torch.equal(free["f"], free["b"])


def test_pi_models_have_independent_background_generators():
    from comgan_lib.nets import Pi1, Pi2

    assert count(Pi1(32, width=64)) > count(ComGAN(32, width=64))
    assert count(Pi2(32, width=64)) > count(Pi1(32, width=64))


@pytest.mark.parametrize("resolution", [32, 64, 128])
def test_discriminator_gives_one_logit_and_code_logits(resolution):
    D = ImageDiscriminator(resolution, 8, code_dim=5)
    x = torch.randn(2, 3, resolution, resolution)
    assert D(x).shape == (2,)
    assert D.classify_code(x).shape == (2, 5)


def test_shape_errors_name_the_boundary():
    with pytest.raises(ValueError, match="feature generator input z"):
        SimpleGAN(32, z_dim=8, width=64)(torch.randn(2, 9))
    with pytest.raises(ValueError, match="D input"):
        ImageDiscriminator(32, 8)(torch.randn(2, 3, 64, 64))
    with pytest.raises(ValueError, match="power of two"):
        FeatureGenerator(48)
    with pytest.raises(ValueError, match="cannot be halved"):
        FeatureGenerator(128, width=64)


def test_blocks():
    x = torch.randn(2, 8, 5, 5)
    assert torch.allclose(GLU()(x), x[:, :4] * torch.sigmoid(x[:, 4:]))
    assert same_block(8, 6)(x).shape == (2, 6, 5, 5)
    assert up_block(8, 4)(x).shape == (2, 4, 10, 10)
    assert ResBlock(8)(x).shape == x.shape


def test_same_seed_same_z_on_any_device():
    G = SimpleGAN(32, z_dim=8, width=64)
    a = G.sample_z(4, generator=torch.Generator().manual_seed(1))
    b = G.sample_z(4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.std() > 2  # z_scale 4


def test_discriminator_init_is_orthogonal_or_pytorch_default():
    torch.manual_seed(0)
    ortho = ImageDiscriminator(32, 8)
    torch.manual_seed(0)
    plain = ImageDiscriminator(32, 8, init="default")
    w_o, w_p = ortho.trunk[0].weight.flatten(1), plain.trunk[0].weight.flatten(1)
    # 8 filters of 48 weights: orthogonal rows have a Gram matrix equal to the identity.
    assert torch.allclose(w_o @ w_o.T, torch.eye(8), atol=1e-5)
    assert not torch.allclose(w_p @ w_p.T, torch.eye(8), atol=1e-2)
    with pytest.raises(ValueError, match="unknown discriminator init"):
        ImageDiscriminator(32, 8, init="xavier")
