"""``train.ds_trunk_from``: DS-ComGAN's feature generator Φ starts from another run's EMA Φ (this
workbook's start, not the paper's). Only Φ is copied, only on a fresh run, and a missing or
mismatched source is a clear error."""

from __future__ import annotations

import pytest
import torch

from comgan_lib.config import load_params
from comgan_lib.errors import UserError
from comgan_lib.rundir import RunDir
from comgan_lib.train import ImageBank, load_generator, make_run_spec, train_generator

TINY = ["model.gen_width=32", "model.disc_width=8", "model.head_blocks=1", "train.batch_size=4"]


@pytest.fixture(scope="module")
def params(repo):
    return load_params(repo / "params" / "smoke.yaml", TINY)


@pytest.fixture()
def bank():
    return ImageBank(torch.rand(8, 3, 32, 32) * 2 - 1)


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(
        torch.equal(x, y)
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def _train_source(params, run, bank):
    train_generator(
        params, run, name="comgan_beta1", kind="comgan", steps=2, bank=bank, progress=False
    )
    return load_generator(run, "comgan_beta1")


def test_a_fresh_run_starts_from_the_source_s_ema_trunk_and_nothing_else(tmp_path, params, bank):
    run, plain_run = RunDir(tmp_path / "warm"), RunDir(tmp_path / "plain")
    source = _train_source(params, run, bank)
    warm = load_params(params.source, TINY + ["train.ds_trunk_from=comgan_beta1"])
    train_generator(warm, run, name="ds", kind="ds_comgan", steps=0, bank=bank, progress=False)
    train_generator(
        params, plain_run, name="ds", kind="ds_comgan", steps=0, bank=bank, progress=False
    )
    for ema in (True, False):
        assert _same(load_generator(run, "ds", ema=ema).phi, source.phi)
    plain = load_generator(plain_run, "ds")
    assert not _same(plain.phi, source.phi)
    # Same run name, same seed: the heads start where a from-scratch run's do; only Φ differs.
    started = load_generator(run, "ds")
    for head in ("mask", "fg", "bg"):
        assert _same(getattr(started, head), getattr(plain, head))
    assert make_run_spec(warm, "ds", "ds_comgan", 1.0).trunk_from == "comgan_beta1"
    assert make_run_spec(warm, "c", "comgan", 1.0).trunk_from == ""  # 02's ComGAN stays the paper's


def test_a_resumed_run_keeps_its_own_trunk(tmp_path, params, bank):
    run = RunDir(tmp_path)
    _train_source(params, run, bank)
    warm = load_params(params.source, TINY + ["train.ds_trunk_from=comgan_beta1"])
    train_generator(warm, run, name="warm", kind="ds_comgan", steps=2, bank=bank, progress=False)
    trained = load_generator(run, "warm", ema=False).phi
    train_generator(
        params, run, name="comgan_beta1", kind="comgan", steps=4, bank=bank, progress=False
    )
    train_generator(warm, run, name="warm", kind="ds_comgan", steps=2, bank=bank, progress=False)
    assert _same(load_generator(run, "warm", ema=False).phi, trained)  # not copied again


def test_a_missing_source_run_is_a_clear_error(tmp_path, params, bank):
    warm = load_params(params.source, TINY + ["train.ds_trunk_from=comgan_beta1"])
    with pytest.raises(UserError, match="ds_trunk_from.*comgan_beta1"):
        train_generator(warm, RunDir(tmp_path), name="w", kind="ds_comgan", steps=1, bank=bank)


def test_a_source_of_another_width_is_a_clear_error(tmp_path, params, bank):
    run = RunDir(tmp_path)
    wide = load_params(params.source, TINY + ["model.gen_width=64"])
    _train_source(wide, run, bank)
    warm = load_params(params.source, TINY + ["train.ds_trunk_from=comgan_beta1"])
    with pytest.raises(UserError, match="does not fit"):
        train_generator(warm, run, name="w", kind="ds_comgan", steps=1, bank=bank)


def test_a_run_resumes_only_under_the_same_trunk_start(tmp_path, params, bank):
    run = RunDir(tmp_path)
    _train_source(params, run, bank)
    train_generator(params, run, name="w", kind="ds_comgan", steps=1, bank=bank, progress=False)
    warm = load_params(params.source, TINY + ["train.ds_trunk_from=comgan_beta1"])
    with pytest.raises(UserError, match="trunk_from"):
        train_generator(warm, run, name="w", kind="ds_comgan", steps=2, bank=bank)
