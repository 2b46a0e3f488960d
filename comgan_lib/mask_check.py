"""Mask check: train ComGAN (or, with ``--kind``, DS-ComGAN) over seeds; score its masks, as JSON.

The evaluation command behind the mask-quality rows of ``docs/FINDINGS.md`` and the parity check
of ``params/simple.yaml``: one setting (a parameter file plus ``--set`` overrides), several seeds,
scores at chosen step counts (training resumes from one to the next). Each (seed, step, sampler)
gives one JSON line in ``OUT/results.jsonl``: the oracle IoU in the chosen orientation and in the
other, spill, miss, the oriented coverage beside the oracle's and the ground truth's, and the step
time. ``sampler`` is ``ema`` (the EMA generator, eval-mode batch norm: what the notebooks use),
``raw`` (the trained generator itself, eval mode) or ``raw_batch_stats`` (the trained generator
with batch norm in training mode, i.e. on the statistics of each batch of 256 samples, as it ran
while training).

    python -m comgan_lib.mask_check params/simple.yaml --seeds 0 1 2 --eval-at 1500 3000
    python -m comgan_lib.mask_check params/my_images.yaml --set data.root=/tmp/simple \\
        --set model.gen_width=64 --label width64 --seeds 0 1

With ``train.ds_trunk_from`` (DS-ComGAN started from a ComGAN's feature generator) a seed's
folder holds that ComGAN too: trained first (``train.steps``, notebook 02's run) unless its
checkpoint is already there. The oracle is trained once per dataset (its seed fixed, whatever the
run's seed) and reused.
After each seed's last step count, ``OUT/LABEL/seedN/layers_STEPS.png`` shows twelve samples of the
EMA generator as Fig. 5's rows, oriented so that the mask row is the object (the README's picture).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from comgan_lib.config import add_override_argument, load_params
from comgan_lib.data import build_dataset, stack_items
from comgan_lib.errors import UserError
from comgan_lib.metrics.masks import coverage
from comgan_lib.nets import GENERATORS
from comgan_lib.oracle import mask_fidelity, train_oracle
from comgan_lib.rundir import RunDir
from comgan_lib.train import ImageBank, load_generator, make_run_spec, sample, train_generator

RUN = "comgan"
SAMPLERS = ("ema", "raw", "raw_batch_stats")
SCORES = ("iou", "iou_other_orientation", "spill", "miss", "coverage_mean", "oracle_coverage_mean")


def _data_key(params) -> str:
    return hashlib.sha1(json.dumps(params.data.__dict__, sort_keys=True).encode()).hexdigest()[:10]


def oracle_for(params, out: Path):
    """The oracle of ``params``'s dataset, trained once under ``out/oracle-<data hash>``; its seed
    follows ``params.run.seed``, so pass the parameters without a per-run seed."""
    run = RunDir(out / f"oracle-{_data_key(params)}")
    return train_oracle(params, run, steps=params.eval.oracle_steps, progress=False)


def check(
    params_path: str,
    overrides: list[str],
    seeds: list[int],
    eval_at: list[int],
    label: str,
    out: Path,
    samples: int = 1000,
    kind: str = "comgan",
    run_name: str = RUN,
) -> list[dict]:
    """Train and score; returns the rows also appended to ``out/results.jsonl``. ``run_name`` is
    part of the run's seed (``train.run_seed``): notebook 02 names its run ``comgan_beta1``."""
    out.mkdir(parents=True, exist_ok=True)
    base = load_params(params_path, overrides)
    oracle, held_out = oracle_for(base, out)
    gt = stack_items(build_dataset(base, "train"))
    gt_cov = float(coverage(gt["mask"]).mean()) if "mask" in gt else float("nan")
    bank = ImageBank(gt["image"], flip=base.train.flip)
    rows = []
    for seed in seeds:
        params = load_params(params_path, [*overrides, f"run.seed={seed}"])
        run = RunDir(out / label / f"seed{seed}")
        source = params.train.ds_trunk_from if kind == "ds_comgan" else ""
        if source and not run.path("checkpoints", f"{source}.pt").exists():
            # DS-ComGAN starts from a ComGAN's Φ: train that ComGAN first, as notebook 02 does.
            train_generator(params, run, name=source, kind="comgan", bank=bank, progress=False)
        for steps in sorted(eval_at):
            t0 = time.perf_counter()
            result = train_generator(
                params, run, name=run_name, kind=kind, steps=steps, bank=bank, progress=False
            )
            train_s = time.perf_counter() - t0
            for sampler in SAMPLERS:
                G = load_generator(run, run_name, ema=sampler == "ema")
                if sampler == "raw_batch_stats":
                    G.train()  # sample() runs under no_grad; only the BN statistics change
                f = mask_fidelity(G, oracle, n=samples, seed=0)
                row = {
                    "date": time.strftime("%Y-%m-%d"),
                    "label": label,
                    "params": params_path,
                    "overrides": overrides,
                    "seed": seed,
                    "run_name": run_name,
                    "steps": steps,
                    "sampler": sampler,
                    "orientation": f["orientation"],
                    **{k: f[k] for k in SCORES},
                    "gt_coverage_mean": gt_cov,
                    "frac_coverage_5_95": f["frac_coverage_5_95"],
                    "n_no_object": f["n_no_object"],
                    "sec_per_step": result["sec_per_step"],
                    "train_s_this_leg": train_s,
                    "oracle_held_out_iou": held_out["foreground"]["iou"],
                    "threads": torch.get_num_threads(),
                    # The settings as resolved (file and overrides): a label can mislead when the
                    # parameter file changes between two runs of the same command.
                    "spec": make_run_spec(
                        params, run_name, kind, params.train.beta_binary
                    ).__dict__,
                }
                rows.append(row)
                with open(out / "results.jsonl", "a") as fh:
                    fh.write(json.dumps(row) + "\n")
                print(_line(row), flush=True)
        ema = next(r for r in rows[::-1] if r["sampler"] == "ema")
        save_layers_figure(
            load_generator(run, run_name), run.root / f"layers_{steps}.png", ema["orientation"]
        )
    return rows


def save_layers_figure(G, path: Path, orientation: str | None, n: int = 12) -> None:
    """``n`` samples of the EMA generator (fixed seed) as a small PNG: the image, then the object's
    mask and layer and the scene's layer. With ``orientation`` "inverse" M took the scene (F and B
    are symmetric), so the rows show 1 - M, B and F; unoriented (None), M, F and B as drawn."""
    from comgan_lib import viz

    s = sample(G, n, seed=0)
    if orientation == "inverse":
        rows, labels = [1 - s["mask"], s["bg"], s["fg"]], ["1 − M", "B", "F"]
    else:
        rows, labels = [s["mask"], s["fg"], s["bg"]], ["M", "F", "B"]
    labels = [f"mask\n({labels[0]})", f"object\n({labels[1]})", f"scene\n({labels[2]})"]
    fig = viz.grid_rows([s["image"], *rows], ["image", *labels], pad_value=1.0)
    fig.savefig(path, dpi=80, bbox_inches="tight")
    viz.plt.close(fig)


def _line(r: dict) -> str:
    return (
        f"{r['label']:>16} seed {r['seed']} step {r['steps']:>5} {r['sampler']:>3}: "
        f"IoU {r['iou']:.3f} (other {r['iou_other_orientation']:.3f}, {r['orientation']}) "
        f"spill {r['spill']:.2f} miss {r['miss']:.2f} cov {r['coverage_mean']:.3f} "
        f"(gt {r['gt_coverage_mean']:.3f}) {r['sec_per_step'] or 0:.3f} s/step"
    )


def summarise(rows: list[dict]) -> list[dict]:
    """min / median / max of the oracle IoU per (label, steps, sampler)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["label"], r["steps"], r["sampler"]), []).append(r)
    table = []
    for (label, steps, sampler), rs in groups.items():
        ious = [r["iou"] for r in rs]
        table.append(
            {
                "label": label,
                "steps": steps,
                "sampler": sampler,
                "seeds": len(rs),
                "iou_min": min(ious),
                "iou_median": statistics.median(ious),
                "iou_max": max(ious),
                "other_max": max(r["iou_other_orientation"] for r in rs),
                "coverage_error_max": max(
                    abs(r["coverage_mean"] - r["gt_coverage_mean"]) for r in rs
                ),
            }
        )
    return table


def markdown(rows: list[dict]) -> str:
    """The rows as the lab record's table (one line per seed, step and sampler)."""
    cols = "setting seed steps sampler oracle_IoU other spill miss coverage_(gt) s/step".split()
    lines = ["| " + " | ".join(c.replace("_", " ") for c in cols) + " |", "|" + "---|" * 10]
    for r in rows:
        lines.append(
            f"| {r['label']} | {r['seed']} | {r['steps']} | {r['sampler']} | {r['iou']:.3f} | "
            f"{r['iou_other_orientation']:.3f} | {r['spill']:.2f} | {r['miss']:.2f} | "
            f"{r['coverage_mean']:.3f} ({r['gt_coverage_mean']:.3f}) | {r['sec_per_step']:.2f} |"
        )
    return "\n".join(lines)


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m comgan_lib.mask_check", description=__doc__)
    parser.add_argument(
        "params", nargs="?", help="parameter file of a dataset with ground-truth masks"
    )
    parser.add_argument(
        "--report", type=Path, help="only print RESULTS.jsonl as a markdown table and summary"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--eval-at", type=int, nargs="+", help="step counts (default train.steps)")
    parser.add_argument("--label", default="default", help="name of this setting in the rows")
    parser.add_argument(
        "--run-name", default=RUN, help="run name, part of the seed (02 uses comgan_beta1)"
    )
    parser.add_argument(
        "--kind",
        default="comgan",
        choices=tuple(k for k in GENERATORS if k != "simplegan"),
        help="generator whose masks are scored (03 trains ds_comgan as its main run)",
    )
    parser.add_argument("--samples", type=int, default=1000, help="generated samples scored")
    parser.add_argument("--out", type=Path, default=Path("outputs/mask_check"))
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    add_override_argument(parser)
    args = parser.parse_args(argv)
    if args.report:
        rows = read_rows(args.report)
        print(markdown(rows))
        for s in summarise(rows):
            print(json.dumps(s))
        return 0
    if not args.params:
        parser.error("a parameter file is required (or --report RESULTS.jsonl)")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        params = load_params(args.params, args.overrides)
        eval_at = args.eval_at or [params.train.steps]
        rows = check(
            args.params,
            args.overrides,
            args.seeds,
            eval_at,
            args.label,
            args.out,
            args.samples,
            kind=args.kind,
            run_name=args.run_name,
        )
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for s in summarise(rows):
        print(json.dumps(s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
