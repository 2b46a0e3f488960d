"""``python -m comgan_lib.data.check``: names every missing or malformed file, counts, exit codes
0 / 1 / 2, no traceback; and the runner stops on a bad dataset before any notebook."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
from dataset_fixtures import (
    cub_names,
    make_cars,
    make_class_folders,
    make_cub,
    make_dogs,
    make_drc,
    make_flowers,
    object_image,
    rect_mask,
    save,
)

from comgan_lib.config import params_from_dict
from comgan_lib.data.check import check_dataset, main
from comgan_lib.errors import DatasetError
from comgan_lib.run import check_data


def run_cli(repo, *args):
    return subprocess.run(
        [sys.executable, "-m", "comgan_lib.data.check", *map(str, args)],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_without_root_the_check_says_which_key_and_what_to_download(capsys, repo):
    assert main([str(repo / "params/cub.yaml")]) == 1
    out = capsys.readouterr().out
    assert f"problem: {repo / 'params/cub.yaml'}: 'data.root' is not set for data.kind cub" in out
    assert "Caltech-UCSD Birds-200-2011" in out and "docs/DATASETS.md" in out


def test_cli_on_an_empty_folder_lists_what_is_missing(repo, tmp_path):
    result = run_cli(repo, "params/cub.yaml", "--set", f"data.root={tmp_path}")
    assert result.returncode == 1, result.stdout + result.stderr
    problems = [ln for ln in result.stdout.splitlines() if ln.startswith("problem:")]
    for piece in (
        "images.txt: missing",
        "bounding_boxes.txt: missing",
        "images/: folder missing",
        "segmentations/: folder missing",
        "train_val_test_split.txt: missing",
    ):
        assert any(piece in p for p in problems), piece
    assert "official distribution: Caltech-UCSD Birds-200-2011" in result.stdout
    assert "FAILED: 5 problem(s)" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_complete_cub_passes_with_counts(tmp_path, capsys, repo):
    root = make_cub(tmp_path / "CUB_200_2011")
    assert main([str(repo / "params/cub.yaml"), "--set", f"data.root={root}"]) == 0
    out = capsys.readouterr().out
    for piece in (
        "images listed: 6",
        "images found: 6",
        "boxes: 6",
        "masks found: 6",
        "splits: all 6, train 3, val 1, test 2",
        "training reads 'all': 6 images, with masks, crop box",
        "evaluation reads 'train': 3 images, with masks, crop full",
        "OK:",
    ):
        assert piece in out, piece


def test_partial_cub_names_every_bad_file(tmp_path, capsys, repo):
    root = make_cub(tmp_path / "CUB_200_2011")
    names = cub_names()
    (root / "images" / names[0]).unlink()  # listed but absent
    (root / "segmentations" / names[1].replace(".jpg", ".png")).unlink()  # mask missing
    (root / "images" / names[2]).write_bytes(b"this is not a jpeg")  # unreadable
    save(root / "segmentations" / names[3].replace(".jpg", ".png"), np.zeros((10, 10), np.uint8))
    lines = (root / "bounding_boxes.txt").read_text().splitlines()
    lines[4] = "5 12 x 3"  # a box line that does not parse
    lines[5] = "6 500.0 400.0 30.0 30.0"  # a box outside its 200x160 image
    (root / "bounding_boxes.txt").write_text("\n".join(lines) + "\n")
    code = main(["params/cub.yaml", "--set", f"data.root={root}"])
    out = capsys.readouterr().out
    assert code == 1
    problems = "\n".join(ln for ln in out.splitlines() if ln.startswith("problem:"))
    for piece in (
        f"images/{names[0]}: listed in images.txt but missing",
        f"segmentations/{names[1].replace('.jpg', '.png')}: segmentation missing",
        f"images/{names[2]}: unreadable",
        "mask size 10x10 differs from image size 200x160",
        "bounding_boxes.txt line 5: expected '<id> <x> <y> <w> <h>', got '5 12 x 3'",
        f"{names[5]}: bounding box (500.0, 400.0, 30.0, 30.0) lies outside the 200x160 image",
    ):
        assert piece in problems, piece
    assert "Traceback" not in out


def test_quick_mode_skips_header_reads(tmp_path, capsys, repo):
    root = make_cub(tmp_path / "CUB_200_2011")
    (root / "images" / cub_names()[2]).write_bytes(b"broken")
    assert main([str(repo / "params/cub.yaml"), "--set", f"data.root={root}", "--quick"]) == 0
    assert main([str(repo / "params/cub.yaml"), "--set", f"data.root={root}"]) == 1
    capsys.readouterr()


def test_bad_parameters_exit_2(capsys, repo):
    assert main([str(repo / "params/cub.yaml"), "--set", "data.split_scheme=weird"]) == 2
    assert "allowed: official, redo" in capsys.readouterr().err


def test_problem_listing_is_capped_and_can_be_uncapped(tmp_path, capsys, repo):
    root = make_cub(tmp_path / "CUB_200_2011")
    shutil.rmtree(root / "segmentations")
    (root / "segmentations").mkdir()  # every mask missing: 6 problems
    args = [str(repo / "params/cub.yaml"), "--set", f"data.root={root}"]
    assert main([*args, "--max-problems", "2"]) == 1
    out = capsys.readouterr().out
    assert "... and 4 more (--max-problems 0 lists them all)" in out
    assert main([*args, "--max-problems", "0"]) == 1
    assert capsys.readouterr().out.count("segmentation missing") == 6


def params_for(kind, root, **data):
    return params_from_dict(
        {"run": {"name": "t"}, "data": {"kind": kind, "root": str(root), **data}}, "t.yaml"
    )


def test_dogs_and_cars_without_drc_pass_with_a_warning(tmp_path):
    dogs = check_dataset(params_for("stanford_dogs", make_dogs(tmp_path / "dogs")))
    assert dogs.ok, dogs.problems
    assert dogs.counts == {"images listed": 5, "images found": 5, "boxes": 5}
    assert any("no DRC processed release" in w for w in dogs.warnings)
    cars = check_dataset(params_for("stanford_cars", make_cars(tmp_path / "cars")))
    assert cars.ok and cars.splits == {"train": 3, "test": 2, "all": 5}


def test_dogs_with_drc_counts_its_masks_and_names_missing_ones(tmp_path):
    root = make_drc(make_dogs(tmp_path / "dogs"))
    report = check_dataset(params_for("stanford_dogs", root, eval_split="all"))
    assert report.ok, report.problems
    assert report.counts["DRC masks found"] == 3
    assert any(
        "evaluation reads 'all' (DRC processed release): 3 images" in u for u in report.usage
    )
    (root / "data_mrcnn" / "test" / "resized" / "a1_maskresized.png").unlink()
    report = check_dataset(params_for("stanford_dogs", root))
    assert report.problems == ["data_mrcnn/test/resized/a1_maskresized.png: mask missing"]


def test_flowers_class_folders_and_clevr6(tmp_path):
    flowers = check_dataset(
        params_for("flowers", make_flowers(tmp_path / "fl"), split_scheme="redo")
    )
    assert flowers.ok and flowers.splits == {"all": 5, "train": 2, "val": 1, "test": 2}
    fs_root = make_class_folders(tmp_path / "fs")
    (fs_root / "beta" / "bad.png").write_bytes(b"x")
    fs = check_dataset(params_for("class_folders", fs_root, use_masks=False))
    assert len(fs.problems) == 1 and fs.problems[0].startswith("beta/bad.png: unreadable")
    clevr = tmp_path / "clevr6"
    for i in range(2):
        save(clevr / "images" / f"{i}.png", object_image((10, 10, 20, 20), (64, 64)))
        save(clevr / "masks" / f"{i}.png", rect_mask((10, 10, 20, 20), (64, 64)))
    assert check_dataset(params_for("clevr6", clevr, train_split="all", eval_split="all")).ok
    shutil.rmtree(clevr / "masks")
    report = check_dataset(params_for("clevr6", clevr, train_split="all", eval_split="all"))
    assert any("masks: folder missing" in p for p in report.problems)


@pytest.mark.parametrize(
    "info, problem",
    [
        ({"complete": True, "counts": {"kept": 2}}, None),
        ({"complete": False, "counts": {}}, "the conversion did not finish"),
        ({"complete": True, "counts": {"kept": 5}}, "5 scenes kept but images/ holds 2 images"),
    ],
)
def test_clevr6_conversion_record_is_checked(tmp_path, info, problem):
    import json

    clevr = tmp_path / "clevr6"
    for i in range(2):
        save(clevr / "images" / f"clevr6_{i:06d}.png", object_image((10, 10, 20, 20), (64, 64)))
        save(clevr / "masks" / f"clevr6_{i:06d}.png", rect_mask((10, 10, 20, 20), (64, 64)))
    (clevr / "conversion.json").write_text(json.dumps(info))
    report = check_dataset(params_for("clevr6", clevr, train_split="all", eval_split="all"))
    if problem is None:
        assert report.ok and report.counts["scenes kept (conversion.json)"] == 2
    else:
        assert len(report.problems) == 1 and problem in report.problems[0]


def test_runner_check_data_is_one_line(tmp_path):
    root = make_cub(tmp_path / "CUB_200_2011")
    check_data(params_for("cub", root, split_scheme="redo"))  # complete: no error
    (root / "images" / cub_names()[0]).unlink()
    (root / "bounding_boxes.txt").unlink()
    with pytest.raises(DatasetError) as info:
        check_data(params_for("cub", root, split_scheme="redo"))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("data check found 2 problem(s) in CUB-200-2011")
    assert "bounding_boxes.txt: missing" in message and "comgan_lib.data.check" in message


def test_runner_stops_before_any_notebook_when_the_root_is_unset(capsys, repo, tmp_path):
    from comgan_lib.run import main as run_main

    args = ["--set", f"output.root={tmp_path / 'out'}", "--set", "run.device=cpu"]
    assert run_main([str(repo / "params/flowers.yaml"), *args]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "'data.root' is not set for data.kind flowers" in lines[0]
    assert not (tmp_path / "out").exists()
