"""Stage 2: the orientation rule, the S + D_m loop (log, checkpoint, resume, NaN guard), scoring
on both protocols and splits, and the segment-your-own-images command line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from comgan_lib.config import load_params
from comgan_lib.errors import UserError
from comgan_lib.oracle import compare_with_oracle
from comgan_lib.orientation import orient_generator
from comgan_lib.rundir import RunDir
from comgan_lib.segment import main
from comgan_lib.segment_eval import evaluate_segmenter, score_on_generated
from comgan_lib.stage2 import load_segmenter, predict_masks, train_segmenter
from comgan_lib.train import ImageBank, TrainingDiverged, read_log, train_generator

TINY = [
    "model.kind=comgan",
    "model.gen_width=32",
    "model.disc_width=8",
    "model.head_blocks=1",
    "train.batch_size=4",
    "segment.batch_size=4",
    "segment.width=4",
    "segment.disc_width=4",
    "segment.log_every=2",
    "segment.checkpoint_every=4",
    "segment.orientation_samples=16",
]


class SquareMaskGenerator(nn.Module):
    """A fake generator whose mask is a centred square (``inverse=True``: everything else)."""

    def __init__(self, inverse: bool = False, size: int = 16):
        super().__init__()
        self.inverse, self.size = inverse, size
        self.dummy = nn.Parameter(torch.zeros(1))

    def sample_latents(self, n, generator=None, device=None):
        return {"z": torch.rand(n, 2, generator=generator)}

    def forward(self, z):
        s = self.size
        square = torch.zeros(z.shape[0], 1, s, s)
        square[:, :, s // 4 : s - s // 4, s // 4 : s - s // 4] = 1
        mask = 1 - square if self.inverse else square
        image = square.expand(-1, 3, s, s) * 2 - 1
        return {"image": image, "mask": mask, "fg": image, "bg": -image}


@pytest.mark.parametrize("inverse, expected", [(False, "mask"), (True, "inverse")])
def test_border_rule_picks_the_layer_that_does_not_touch_the_border(inverse, expected):
    record = orient_generator(SquareMaskGenerator(inverse), n=10, seed=0, batch_size=4)
    assert record["orientation"] == expected
    assert record["border_mask_mean"] == (1.0 if inverse else 0.0)
    assert record["border_inverse_mean"] == 1.0 - record["border_mask_mean"]
    assert record["centre_mask_mean"] == (0.0 if inverse else 1.0)
    assert record["frac_samples_agree"] == 1.0 and record["confident"]
    assert record["n_samples"] == 10 and record["border_px"] == 2


class BrightIsForeground(nn.Module):
    """An 'oracle' that calls bright pixels foreground."""

    def forward(self, x):
        return 20 * x[:, :1]


class BrightSegmenter(BrightIsForeground):
    """The same rule as a 'segmenter' (S needs a parameter to find its device)."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))


@pytest.mark.parametrize("orientation, expected", [("inverse", 1.0), ("mask", 0.0)])
def test_segmenter_on_generated_images_against_teacher_and_oracle(orientation, expected):
    G = SquareMaskGenerator(inverse=True)  # the object is the square; M is everything else
    out = score_on_generated(BrightSegmenter(), G, orientation, oracle=BrightSegmenter(), n=6)
    assert out["s_vs_generator"]["iou"] == expected  # S segments the square; M oriented or not
    assert out["generator_vs_oracle"]["iou"] == expected
    assert out["s_vs_oracle"]["iou"] == 1.0 and out["n_scored_oracle"] == 6
    assert "s_vs_oracle" not in score_on_generated(BrightSegmenter(), G, orientation, n=6)


def test_border_rule_agrees_with_the_oracle_orientation():
    result = compare_with_oracle(SquareMaskGenerator(inverse=True), BrightIsForeground(), n=8)
    assert result["border_rule"] == result["oracle"] == "inverse" and result["agree"]
    assert result["oracle_fidelity"]["iou"] == 1.0


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: the tiny networks gain nothing from more, and CI cores are shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def params(repo):
    return load_params(repo / "params" / "smoke.yaml", TINY)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, params):
    """A run folder with a 2-step stage-1 ComGAN and a 6-step segmenter on it."""
    torch.manual_seed(0)
    run = RunDir(tmp_path_factory.mktemp("seg_run"))
    bank = ImageBank(torch.rand(16, 3, 32, 32) * 2 - 1)
    train_generator(params, run, name="g", kind="comgan", steps=2, bank=bank, progress=False)
    result = train_segmenter(params, run, "g", steps=6, progress=False)  # the smoke images
    return run, result


def test_training_writes_log_and_checkpoint_and_resumes(trained, params):
    run, result = trained
    assert result["steps"] == 6 and result["generator"] == "g"
    assert result["orientation"]["orientation"] in ("mask", "inverse")
    records = read_log(run, "segmenter")
    assert [r["step"] for r in records] == [2, 4, 6]
    for key in ("loss_d", "loss_s", "loss_cons", "loss_adv", "d_gen_mask", "d_pred_real"):
        assert all(torch.isfinite(torch.tensor(r[key])) for r in records), key
    assert 0.0 <= records[-1]["coverage_real"] <= 1.0
    state = torch.load(run.path("checkpoints", "segmenter.pt"), weights_only=False)
    assert state["step"] == 6 and state["generator"] == "g" and state["generator_step"] == 2
    assert {"width", "depth", "resolution"} <= set(state["spec"])
    assert state["spec"]["depth"] == 4  # the automatic depth at 32 px
    # Resume: the same call with more steps continues the count and the log.
    bank = ImageBank.from_params(params)
    more = train_segmenter(params, run, "g", steps=8, bank=bank, progress=False)
    assert more["steps"] == 8
    assert [r["step"] for r in read_log(run, "segmenter")] == [2, 4, 6, 8]
    assert more["orientation"] == result["orientation"]  # read back, not re-measured
    # A finished run is not retrained.
    before = run.path("checkpoints", "segmenter.pt").stat().st_mtime_ns
    train_segmenter(params, run, "g", steps=8, bank=None, progress=False)
    assert run.path("checkpoints", "segmenter.pt").stat().st_mtime_ns == before
    # Other settings are refused, naming the key.
    other = load_params(params.source, [*TINY, "segment.cons_weight=5"])
    with pytest.raises(UserError, match="cons_weight"):
        train_segmenter(other, run, "g", steps=10, bank=bank, progress=False)


def test_nan_stops_training_and_keeps_the_last_good_checkpoint(trained, params, tmp_path):
    run = RunDir(tmp_path)
    src = trained[0].path("checkpoints", "g.pt")
    run.path("checkpoints", "g.pt").write_bytes(src.read_bytes())
    bank = ImageBank(torch.zeros(4, 3, 32, 32))
    train_segmenter(params, run, "g", steps=4, bank=bank, progress=False)
    good = run.path("checkpoints", "segmenter.pt").read_bytes()
    bank.sample = lambda n, g: torch.full((n, 3, 32, 32), float("nan"))
    with pytest.raises(TrainingDiverged, match="non-finite loss at step 5") as info:
        train_segmenter(params, run, "g", steps=8, bank=bank, progress=False)
    assert "step 4" in str(info.value)
    assert run.path("checkpoints", "segmenter.pt").read_bytes() == good


def test_evaluation_scores_both_protocols_on_both_splits(trained, params):
    run, _ = trained
    scores = evaluate_segmenter(params, run, progress=False)
    assert scores["has_masks"] and scores["generator"] == "g"
    assert scores["train"]["n_images"] == params.data.train_size
    assert scores["test"]["n_images"] == params.data.test_size
    for role in ("train", "test"):
        for protocol in ("max_flip", "foreground"):
            for metric in ("iou", "dice"):
                value = scores[role][protocol][metric]
                assert 0.0 <= value <= 1.0
            # max-flip takes the better labelling per image, so it is never below foreground-only.
            assert scores[role]["max_flip"]["iou"] >= scores[role]["foreground"]["iou"]
        free = scores["training_free"][role]
        assert set(free) == {"all_foreground", "centred_disc", "border_otsu", "centre_colour_em"}
        assert free["all_foreground"]["foreground"]["iou"] == pytest.approx(
            scores[role]["gt_coverage_mean"]
        )
    json.dumps(scores)  # plain numbers, ready for metrics.json
    net, info = load_segmenter(run)
    probs = predict_masks(net, torch.zeros(3, 3, 32, 32), batch_size=2)
    assert probs.shape == (3, 1, 32, 32) and 0 <= probs.min() and probs.max() <= 1
    assert info["orientation"] == scores["orientation"]


def test_cli_segments_good_images_at_their_size_and_names_the_bad_one(trained, tmp_path, capsys):
    run, _ = trained
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(images / "wide.jpg")
    Image.new("RGB", (17, 50), (30, 200, 30)).save(images / "tall.png")
    (images / "broken.png").write_bytes(b"not an image at all")
    (images / "notes.txt").write_text("ignored: not an image extension")
    out = tmp_path / "masks"
    code = main(
        ["--run", str(run.root), "--images", str(images), "--out", str(out), "--overlay"]
        + ["--quiet"]
    )
    captured = capsys.readouterr()
    assert code == 0
    assert "broken.png" in captured.err
    assert captured.out.splitlines()[0] == "2 segmented, 1 skipped: broken.png"
    assert Image.open(out / "wide.png").size == (40, 30)
    assert Image.open(out / "tall.png").size == (17, 50)
    assert Image.open(out / "wide.png").mode == "L"
    assert set(np.unique(np.asarray(Image.open(out / "tall.png"))).tolist()) <= {0, 255}
    assert Image.open(out / "wide_overlay.png").size == (40, 30)
    assert sorted(p.name for p in out.iterdir()) == [
        "tall.png",
        "tall_overlay.png",
        "wide.png",
        "wide_overlay.png",
    ]


def test_colour_em_draws_the_square_that_a_blob_prior_misses(trained, tmp_path, monkeypatch):
    """--colour-em refines S's mask by the image's colours: a blob inside a red square on blue
    becomes the square; without the flag the blob is what is written."""
    import comgan_lib.segment as segment

    run, _ = trained
    images = tmp_path / "images"
    images.mkdir()
    square = np.zeros((32, 32), bool)
    square[8:24, 8:24] = True
    pixels = np.where(square[..., None], [220, 40, 40], [30, 60, 200]).astype(np.uint8)
    Image.fromarray(pixels).save(images / "square.png")
    blob = torch.zeros(1, 1, 32, 32)
    blob[..., 12:20, 12:20] = 1  # S's guess: the centre of the object only

    def blob_prior(net, x, batch_size=None):
        return (0.3 + 0.4 * blob).expand(x.shape[0], -1, -1, -1)

    monkeypatch.setattr(segment, "predict_masks", blob_prior)
    for flag, expected in ((False, blob[0, 0].numpy() > 0), (True, square)):
        out = tmp_path / f"masks_{flag}"
        result = segment.segment_folder(run.root, images, out, progress=False, colour_em=flag)
        assert result["colour_em"] is flag
        mask = np.asarray(Image.open(out / "square.png")) > 127
        assert (mask == expected).all()


def test_cli_missing_run_is_one_line_and_exit_2(tmp_path, repo):
    (tmp_path / "images").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "comgan_lib.segment", "--run", str(tmp_path / "nope")]
        + ["--images", str(tmp_path / "images"), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=repo,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: run folder not found: {tmp_path / 'nope'}"]
    assert not (tmp_path / "nope").exists()


def test_cli_missing_checkpoint_or_images_folder_is_exit_2(trained, tmp_path, capsys):
    empty_run = tmp_path / "run"
    empty_run.mkdir()
    (tmp_path / "images").mkdir()
    args = ["--images", str(tmp_path / "images"), "--out", str(tmp_path / "out")]
    assert main(["--run", str(empty_run), *args]) == 2
    assert "no segmenter checkpoint" in capsys.readouterr().err
    run, _ = trained
    assert main(["--run", str(run.root), "--images", str(tmp_path / "none")] + args[2:]) == 2
    assert "images folder not found" in capsys.readouterr().err
    assert main(["--run", str(run.root), *args]) == 2  # an empty images folder
    assert "no image files" in capsys.readouterr().err


def test_cli_recursive_keeps_subfolders_and_separates_shared_stems(trained, tmp_path, capsys):
    run, _ = trained
    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    for name in ("a.jpg", "a.png", "sub/b.bmp"):
        Image.new("RGB", (24, 24), (90, 90, 200)).save(images / name)
    out = tmp_path / "masks"
    args = ["--run", str(run.root), "--images", str(images), "--out", str(out), "--quiet"]
    assert main([*args, "--recursive"]) == 0
    assert capsys.readouterr().out.startswith("3 segmented, 0 skipped")
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))
    assert written == ["a_jpg.png", "a_png.png", "sub/b.png"]
