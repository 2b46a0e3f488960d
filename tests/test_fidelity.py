"""FID / IS through torch-fidelity: the Inception path (random weights: plumbing only), the
"not run" path without weights, and the synthetic domain classifier as a feature extractor.

Caches (torch hub, matplotlib, ...) point at temporary folders: see conftest.py. No test downloads.
"""

from __future__ import annotations

from unittest import mock

import pytest
import torch
import torch_fidelity
from torch import nn
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

from comgan_lib.config import load_params
from comgan_lib.data import build_dataset, stack_items
from comgan_lib.metrics.domain import (
    DOMAIN_EXTRACTOR,
    classify,
    train_domain_classifier,
)
from comgan_lib.metrics.fidelity import (
    Uint8Images,
    fid_is,
    inception_status,
    training_images,
)
from comgan_lib.rundir import NOT_RUN, RunDir

SMOKE = "params/smoke.yaml"
N_INCEPTION = 8  # Inception runs at 299x299 whatever the input: ~0.1-0.3 s per image on a CPU


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on the shared 2-core machine two threads run several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_inception_weights(path, seed: int = 0) -> None:
    """Save a state dict for torch-fidelity's InceptionV3 with random (Kaiming) weights.

    The module is built without its download (loading is patched out), then every conv and
    linear layer is re-initialised with Kaiming normal so features neither vanish nor explode.
    The numbers mean nothing: this tests the plumbing, not Inception.
    """
    no_load = mock.patch.object(FeatureExtractorInceptionV3, "load_state_dict", lambda *a, **k: 0)
    no_url = mock.patch(
        "torch_fidelity.feature_extractor_inceptionv3.load_state_dict_from_url",
        side_effect=AssertionError("no download"),
    )
    with no_load, no_url:
        net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], path)
    gen = torch.Generator().manual_seed(seed)
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, generator=gen)
    torch.save(net.state_dict(), path)


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("inception") / "random-inception.pth"
    torch.save({}, path)  # the constructor is handed a path; its load is patched out
    random_inception_weights(path)
    return path


@pytest.fixture(scope="module")
def domain(tmp_path_factory):
    """A domain classifier trained on a tiny synthetic set (3 species, 3 scenes)."""
    params = load_params(
        SMOKE,
        [
            "data.train_size=256",
            "data.test_size=64",
            "eval.domain_steps=150",
            "eval.fid_samples=64",
        ],
    )
    run = RunDir(tmp_path_factory.mktemp("run"))
    net, info = train_domain_classifier(params, run)
    return params, run, net, info


def test_uint8_conversion_covers_the_range():
    x = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0, 3.0]).view(1, 1, 1, 6).expand(2, 3, 1, 6)
    data = Uint8Images(x)
    assert len(data) == 2 and data[0].dtype == torch.uint8 and data[0].shape == (3, 1, 6)
    assert data[0][0, 0].tolist() == [0, 64, 128, 191, 255, 255]


def test_inception_path_runs_with_a_local_weights_file(inception_file, tmp_path):
    params = load_params(
        SMOKE, [f"eval.inception_weights={inception_file}", f"eval.fid_samples={N_INCEPTION}"]
    )
    available, reason = inception_status(params)
    assert available and str(inception_file) in reason
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(N_INCEPTION, 3, 32, 32, generator=gen) * 2 - 1
    shifted = (x + 0.6).clamp(-1, 1)
    cache = tmp_path / "cache"
    download = mock.patch(
        "torch_fidelity.feature_extractor_inceptionv3.load_state_dict_from_url",
        side_effect=AssertionError("torch-fidelity tried to download"),
    )
    with download:
        # The standard FID layer once (its 2048-d eigen-decomposition costs seconds on a CPU) ...
        standard = fid_is(shifted, x, params, cache, real_label="x")
        cached = sorted(p.name for p in cache.iterdir())
        # ... then FID(x, x) against FID(shifted x, x) on the cheaper 768-d layer.
        same = fid_is(x, x, params, cache, feature_layer_fid="768")
        other = fid_is(shifted, x, params, cache, feature_layer_fid="768")
    assert standard["status"] == "ok" and standard["features"] == "inception"
    assert standard["feature_layer_fid"] == "2048" and same["feature_layer_fid"] == "768"
    assert standard["n_samples"] == N_INCEPTION and standard["real"] == "x"
    for result in (standard, same, other):
        assert all(torch.isfinite(torch.tensor(result[k])) for k in ("fid", "is", "is_std"))
    assert standard["fid"] > 1e-3 and other["fid"] > 1e-3
    assert abs(same["fid"]) < 1e-3 * other["fid"]
    # The real set's features are cached under a content-hashed name, and reused.
    assert cached and all(name.startswith("real-") for name in cached)
    assert set(cached) < {p.name for p in cache.iterdir()}


def test_missing_inception_weights_give_a_not_run_result():
    params = load_params(SMOKE)
    assert params.eval.inception_weights is None
    x = torch.zeros(4, 3, 32, 32)
    with mock.patch.object(torch_fidelity, "calculate_metrics", side_effect=AssertionError):
        result = fid_is(x, x, params)
        available, reason = inception_status(params)
        params.eval.inception_weights = "/nonexistent/weights.pth"  # deleted after loading
        missing = fid_is(x, x, params)
    assert not available and result["reason"] == reason
    assert result["status"] == NOT_RUN and result["fid"] is None and result["is"] is None
    assert "eval.inception_weights" in reason and "https://" in reason
    assert missing["status"] == NOT_RUN and "/nonexistent/weights.pth" in missing["reason"]
    assert "eval.inception_weights" in missing["reason"]


def test_domain_classifier_learns_both_labels_and_reloads(domain):
    params, run, net, info = domain
    acc = info["held_out"]
    assert not info["reloaded"] and info["train_seconds"] > 0
    assert acc["species_image"] > 0.6 and acc["scene_image"] > 0.6  # chance: 1/3
    assert acc["species_F"] > 0.6 and acc["scene_B"] > 0.6
    again, info2 = train_domain_classifier(params, run)
    assert info2["reloaded"] and info2["held_out"] == acc
    x = torch.rand(5, 3, 32, 32) * 2 - 1
    assert all(torch.equal(a, b) for a, b in zip(classify(net, x), classify(again, x), strict=True))
    species, scene = classify(net, x)
    assert species.shape == (5, 3) and scene.shape == (5, 3)


def test_domain_fid_of_real_images_is_smaller_than_of_noise(domain):
    params, run, net, info = domain
    real, label = training_images(params)
    held_out = stack_items(build_dataset(params, "test"))["image"]
    noise = torch.rand_like(held_out) * 2 - 1
    kw = {"features": "domain", "domain_checkpoint": info["checkpoint"], "real_label": label}
    good = fid_is(held_out, real, params, **kw)
    bad = fid_is(noise, real, params, **kw)
    assert good["status"] == "ok" and good["features"] == "domain"
    assert good["real"] == "train split, 256 images, 32px" and good["n_samples"] == 64
    assert good["fid"] < bad["fid"] / 5
    assert good["is"] > bad["is"]  # held-out images are classified confidently, noise is not
    assert 1 <= good["is"] <= 9 and 1 <= good["is_species"] <= 3 and 1 <= good["is_scene"] <= 3


def test_domain_extractor_is_registered_with_torch_fidelity(domain):
    params, run, net, info = domain
    held_out = stack_items(build_dataset(params, "test"))["image"]
    metrics = torch_fidelity.calculate_metrics(
        input1=Uint8Images(held_out),
        isc=True,
        feature_extractor=DOMAIN_EXTRACTOR,
        feature_layer_isc="logits_species",
        feature_extractor_weights_path=info["checkpoint"],
        isc_splits=1,
        cuda=False,
        cache=False,
        save_cpu_ram=True,
        verbose=False,
    )
    assert 1 < metrics["inception_score_mean"] <= 3


def test_domain_features_are_not_run_on_other_datasets(domain):
    params, run, net, info = domain
    params = load_params(SMOKE)
    params.data.kind = "cub"
    x = torch.zeros(4, 3, 32, 32)
    result = fid_is(x, x, params, features="domain", domain_checkpoint=info["checkpoint"])
    assert result["status"] == NOT_RUN and "synthetic" in result["reason"]
