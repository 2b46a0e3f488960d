"""Parameter files: valid files load; every kind of mistake is one clear ConfigError line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from comgan_lib.config import (
    NOTEBOOKS,
    Params,
    describe_params,
    load_params,
    params_from_dict,
    save_params,
)
from comgan_lib.errors import ConfigError

MINIMAL = {"data": {"kind": "synthetic"}}


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["synthetic.yaml", "clutter.yaml", "smoke.yaml"])
def test_shipped_parameter_files_load(repo, name):
    params = load_params(repo / "params" / name)
    assert isinstance(params, Params)
    assert params.run.name == Path(name).stem
    assert params.data.kind == "synthetic"


def test_default_is_the_paper_regime_and_clutter_the_stress_test(repo):
    assert load_params(repo / "params" / "synthetic.yaml").data.variant == "scenery"
    assert load_params(repo / "params" / "clutter.yaml").data.variant == "clutter"
    # The stress test runs the default's settings: only the name and the dataset differ (its
    # variant, and the camouflage that only scenery draws), and the border turn of stage 2b,
    # whose premise (objects wholly inside the frame) is what clutter breaks.
    default = yaml.safe_load((repo / "params" / "synthetic.yaml").read_text())
    clutter = yaml.safe_load((repo / "params" / "clutter.yaml").read_text())
    assert "camouflage" in default["data"] and "camouflage" not in clutter["data"]
    default["data"].pop("camouflage")
    assert default["segment"].pop("self_train_border_flip") is True
    assert clutter["segment"].pop("self_train_border_flip") is False
    for tree in (default, clutter):
        del tree["run"]["name"], tree["data"]["variant"]
    assert clutter == default


def test_every_parameter_file_in_params_loads(repo, tmp_path):
    files = sorted((repo / "params").glob("*.yaml"))
    assert len(files) >= 2
    for path in files:
        try:
            load_params(path)
        except ConfigError as e:
            # my_images.yaml points at the user's own folder, which a fresh clone does not have:
            # the error names it, and the file loads once the folder exists.
            assert "'data.root' folder not found" in str(e), e
            load_params(path, [f"data.root={tmp_path}"])


def test_defaults_and_run_name_from_file_stem(tmp_path):
    params = load_params(write(tmp_path, "data: {kind: synthetic}\n", "my_run.yaml"))
    assert params.run.name == "my_run"
    assert params.train.lr == pytest.approx(2e-4)
    assert params.run.notebooks == list(NOTEBOOKS)


def test_unknown_key_suggests_the_closest_valid_key(tmp_path):
    path = write(tmp_path, "data: {kind: synthetic}\ntrain: {stesp: 10}\n")
    with pytest.raises(ConfigError) as info:
        load_params(path)
    message = str(info.value)
    assert str(path) in message
    assert "'train.stesp'" in message
    assert "did you mean 'train.steps'" in message
    assert "\n" not in message


def test_misplaced_key_suggests_its_section(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'train.steps'"):
        load_params(write(tmp_path, "data: {kind: synthetic, steps: 3}\n"))


def test_unknown_section_suggests_the_section(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'train'"):
        load_params(write(tmp_path, "data: {kind: synthetic}\ntrian: {steps: 3}\n"))


@pytest.mark.parametrize(
    "text, pieces",
    [
        ("data: {kind: synthetic, resolution: big}", ["'data.resolution'", "integer", "'big'"]),
        ("data: {kind: synthetic}\ntrain: {steps: 1.5}", ["'train.steps'", "integer"]),
        ("data: {kind: synthetic}\noutput: {html: 3}", ["'output.html'", "true/false"]),
        ("data: {kind: synthetic}\ntrain: {lr: -1}", ["'train.lr'", "at least 0.0"]),
        ("data: {kind: synthetic}\ntrain: {ema_decay: 1.5}", ["'train.ema_decay'", "at most 1.0"]),
        ("data: {kind: imagenet}", ["'data.kind'", "allowed: synthetic, folder"]),
        ("data: {kind: synthetic, resolution: 256}", ["'data.resolution'", "32 to 128"]),
        ("run: {notebooks: [00_data, 99_x]}\ndata: {kind: synthetic}", ["'run.notebooks'", "99_x"]),
        ("train: {steps: 3}", ["missing required key 'data'"]),
        ("data: {resolution: 32}", ["missing required key 'data.kind'"]),
        ("data: {kind: folder}", ["'data.root' is required"]),
        ("data: [1, 2]", ["data must be a mapping"]),
        ("- just\n- a list", ["must hold a mapping"]),
        ("data: {kind: synthetic\n", ["not valid YAML"]),
        ("data: {kind: synthetic, resolution: 48}", ["'data.resolution' is 48", "power of two"]),
        ("data: {kind: synthetic}\nmodel: {gen_width: 36}", ["'model.gen_width'", "multiple of 8"]),
        ("data: {kind: synthetic}\nsegment: {depth: 7}", ["'segment.depth' is 7", "64"]),
        (
            "data: {kind: synthetic, variant: simple, num_species: 4}",
            ["simple variant has 3 species", "'data.num_species' is 4"],
        ),
        (
            "data: {kind: synthetic, variant: clutter, camouflage: 0.5}",
            ["'data.camouflage' applies to the synthetic scenery variant only", "clutter"],
        ),
        ("data: {kind: synthetic, camouflage: 1.5}", ["'data.camouflage'", "at most 1.0"]),
        (
            "data: {kind: synthetic, variant: clutter, extra_scene_colours: 2}",
            ["'data.extra_scene_colours' applies to the synthetic scenery variant only"],
        ),
        (
            "data: {kind: synthetic, extra_scene_colours: 5}",
            ["'data.extra_scene_colours'", "at most 4"],
        ),
    ],
)
def test_mistakes_are_one_clear_line(tmp_path, text, pieces):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_params(path)
    message = str(info.value)
    assert message.startswith(str(path))
    assert "\n" not in message
    for piece in pieces:
        assert piece in message


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="parameter file not found"):
        load_params(tmp_path / "nope.yaml")


def test_missing_dataset_folder_is_named(tmp_path):
    path = write(tmp_path, "data: {kind: folder, root: no_such_folder}\n")
    with pytest.raises(ConfigError, match="no_such_folder"):
        load_params(path)


def test_relative_paths_are_relative_to_the_parameter_file(tmp_path):
    (tmp_path / "images_here").mkdir()
    sub = tmp_path / "params"
    sub.mkdir()
    params = load_params(write(sub, "data: {kind: folder, root: ../images_here}\n"))
    assert Path(params.data.root) == (tmp_path / "images_here").resolve()


def test_overrides_by_dotted_key(repo):
    params = load_params(
        repo / "params" / "smoke.yaml",
        ["train.steps=200", "eval.inception_weights=null", "run.notebooks=[00_data]"],
    )
    assert params.train.steps == 200
    assert params.eval.inception_weights is None
    assert params.run.notebooks == ["00_data"]


def test_float_in_exponent_notation_without_a_dot(repo):
    # PyYAML (YAML 1.1) reads "5e-4" as a string; a float key still takes it, an int key does not.
    params = load_params(repo / "params" / "smoke.yaml", ["train.lr=5e-4"])
    assert params.train.lr == pytest.approx(5e-4)
    with pytest.raises(ConfigError, match="'train.steps' must be an integer"):
        load_params(repo / "params" / "smoke.yaml", ["train.steps=1e3"])
    with pytest.raises(ConfigError, match="'train.lr' must be a number"):
        load_params(repo / "params" / "smoke.yaml", ["train.lr=e-4"])


@pytest.mark.parametrize(
    "override, piece",
    [
        ("train.stepz=3", "did you mean 'train.steps'"),
        ("train.steps=many", "'train.steps' must be an integer"),
        ("train.steps", "expected key=value"),
        ("train.steps.x=1", "'train.steps' is not a section"),
        ("train.precision=fp16", "allowed: fp32, tf32, bf16"),
    ],
)
def test_bad_override_names_the_override(repo, override, piece):
    with pytest.raises(ConfigError) as info:
        load_params(repo / "params" / "smoke.yaml", [override])
    assert f"--set {override}" in str(info.value)
    assert piece in str(info.value)


def test_saved_parameters_round_trip(tmp_path, repo):
    params = load_params(repo / "params" / "synthetic.yaml", ["train.steps=7"])
    out = tmp_path / "resolved.yaml"
    save_params(params, out)
    again = load_params(out)
    assert again.to_dict() == params.to_dict()


def test_describe_params_lists_every_key():
    text = describe_params()
    for key in ("run.name", "data.kind", "train.steps", "segment.cons_weight", "output.root"):
        assert f"\n{key}:" in "\n" + text
    assert "required" in text


def test_dict_source_needs_a_run_name():
    with pytest.raises(ConfigError, match="missing required key 'run'"):
        params_from_dict(MINIMAL)


@pytest.mark.parametrize(
    "args, piece",
    [
        (["params/missing.yaml"], "params/missing.yaml: parameter file not found"),
        (["BAD"], "unknown key 'train.stesp'; did you mean 'train.steps'?"),
        (["params/smoke.yaml", "--set", "data.kind=cifar"], "allowed: synthetic, folder"),
        (["params/smoke.yaml", "--only", "99"], "--only 99: no such notebook"),
        (["params/synthetic.yaml", "--set", "data.resolution=48"], "power of two"),
    ],
)
def test_runner_reports_user_errors_in_one_line_without_traceback(repo, tmp_path, args, piece):
    if args == ["BAD"]:
        args = [str(write(tmp_path, "data: {kind: synthetic}\ntrain: {stesp: 10}\n"))]
    result = subprocess.run(
        [sys.executable, "-m", "comgan_lib.run", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert piece in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
