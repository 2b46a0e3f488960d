"""Segment check: train the stage-2 segmenter S over seeds on one generator; score it, as JSON.

The evaluation command behind the stage-2 rows of ``docs/FINDINGS.md`` (the counterpart of
``comgan_lib.mask_check`` for stage 1). The generator is trained once (by ``make reproduce`` or
``python -m comgan_lib.train``) and reused: every seed gets its own run folder under
``OUT/LABEL/seedN`` whose ``checkpoints/<generator>.pt`` links to the given one. Each (seed, step
count) gives one JSON line in ``OUT/results.jsonl``: S's held-out (``data.eval_split``) IoU under
both protocols and Dice, its training-split IoU, the best training-free predictor on the same
held-out images and S's margin over it, S + the per-image colour refinement
(``comgan_lib.metrics.colour_em``) and its margin, with ``segment.self_train_steps`` > 0 the
self-trained S of stage 2b (``comgan_lib.self_train``) and its margin, S on generated images
(against the generator's masks and, beside it, against the oracle, as in notebook 04), and the
low-level statistics of real and generated images (``comgan_lib.metrics.image_stats``).

    python -m comgan_lib.segment_check params/synthetic.yaml --generator-run outputs/synthetic \\
        --seeds 0 1 2 --eval-at 800 1600 --label lr1e-3 --set segment.lr=1e-3
    python -m comgan_lib.segment_check --report OUT/results.jsonl

``run.seed`` is set to the seed (S's and D_m's initialisation, their batches and latents).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from comgan_lib.config import add_override_argument, load_params
from comgan_lib.errors import UserError
from comgan_lib.mask_check import oracle_for, read_rows
from comgan_lib.metrics.image_stats import image_statistics
from comgan_lib.rundir import RunDir
from comgan_lib.segment_eval import evaluate_segmenter, score_on_generated
from comgan_lib.self_train import SELF_TRAINED_NAME, self_train_segmenter
from comgan_lib.stage2 import load_segmenter, train_segmenter
from comgan_lib.train import ImageBank, load_generator, run_name


def _link_generator(source: Path, run: RunDir, generator: str) -> None:
    target = run.path("checkpoints", f"{generator}.pt")
    if not target.exists():
        target.symlink_to(source.resolve())


def check(
    params_path: str,
    overrides: list[str],
    generator_run: Path,
    seeds: list[int],
    eval_at: list[int],
    label: str,
    out: Path,
    generator: str | None = None,
    samples: int = 1000,
) -> list[dict]:
    """Train S per seed up to each step count (resuming) and score it; returns the rows also
    appended to ``out/results.jsonl``."""
    base = load_params(params_path, overrides)
    generator = generator or run_name(base.model.kind, base.train.beta_binary)
    source = Path(generator_run) / "checkpoints" / f"{generator}.pt"
    if not source.exists():
        raise UserError(f"no generator checkpoint at {source}; train stage 1 first")
    out.mkdir(parents=True, exist_ok=True)
    oracle, _ = oracle_for(base, out)
    bank = ImageBank.from_params(base)
    real_stats = image_statistics(bank.sample(samples, torch.Generator().manual_seed(0)))
    G = load_generator(RunDir(Path(generator_run)), generator)
    rows = []
    for seed in seeds:
        params = load_params(params_path, [*overrides, f"run.seed={seed}"])
        run = RunDir(out / label / f"seed{seed}")
        _link_generator(source, run, generator)
        for steps in sorted(eval_at):
            t0 = time.perf_counter()
            result = train_segmenter(params, run, generator, steps=steps, bank=bank, progress=False)
            train_s = time.perf_counter() - t0
            scores = evaluate_segmenter(params, run, progress=False)
            net, info = load_segmenter(run)
            gen = score_on_generated(
                net, G, info["orientation"]["orientation"], oracle, n=samples, seed=0
            )
            free = scores["training_free"]["test"]
            best = max(free, key=lambda k: free[k]["max_flip"]["iou"])
            test = scores["test"]
            self_trained = _self_trained(params, run, steps, bank)
            row = {
                "date": time.strftime("%Y-%m-%d"),
                "label": label,
                "params": params_path,
                "overrides": overrides,
                "generator": str(source),
                "seed": seed,
                "steps": steps,
                "iou": test["max_flip"]["iou"],
                "iou_foreground": test["foreground"]["iou"],
                "dice": test["max_flip"]["dice"],
                "iou_train": scores["train"]["max_flip"]["iou"],
                "pred_coverage_mean": test.get("pred_coverage_mean"),
                "gt_coverage_mean": test.get("gt_coverage_mean"),
                "best_training_free": best,
                "best_training_free_iou": free[best]["max_flip"]["iou"],
                "margin": test["max_flip"]["iou"] - free[best]["max_flip"]["iou"],
                "iou_colour_em": test["colour_em"]["max_flip"]["iou"],
                "margin_colour_em": test["colour_em"]["max_flip"]["iou"]
                - free[best]["max_flip"]["iou"],
                **self_trained,
                "gen_s_vs_generator": gen["s_vs_generator"]["iou"],
                "gen_s_vs_oracle": gen.get("s_vs_oracle", {}).get("iou"),
                "gen_generator_vs_oracle": gen.get("generator_vs_oracle", {}).get("iou"),
                "images_generated": gen["image_statistics"],
                "images_real": real_stats,
                "sec_per_step": result["sec_per_step"],
                "train_s_this_leg": train_s,
                "threads": torch.get_num_threads(),
                "segment": dict(params.segment.__dict__),
            }
            if self_trained:
                row["margin_self_trained"] = row["iou_self_trained"] - row["best_training_free_iou"]
            rows.append(row)
            with open(out / "results.jsonl", "a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(_line(row), flush=True)
    return rows


def _self_trained(params, run: RunDir, base_steps: int, bank: ImageBank) -> dict:
    """Stage 2b on the S just scored (``segment.self_train_steps`` > 0), under a name per stage-2
    step count: its held-out scores, alone and with the colour EM. Empty when stage 2b is off."""
    if params.segment.self_train_steps <= 0:
        return {}
    name = f"{SELF_TRAINED_NAME}_{base_steps}"
    t0 = time.perf_counter()
    result = self_train_segmenter(params, run, name=name, bank=bank, progress=False)
    seconds = time.perf_counter() - t0
    test = evaluate_segmenter(params, run, name=name, progress=False)["test"]
    return {
        "self_train_steps": result["steps"],
        "iou_self_trained": test["max_flip"]["iou"],
        "iou_self_trained_foreground": test["foreground"]["iou"],
        "dice_self_trained": test["max_flip"]["dice"],
        "iou_self_trained_colour_em": test["colour_em"]["max_flip"]["iou"],
        "self_train_s_this_leg": seconds,
    }


def _line(r: dict) -> str:
    return (
        f"{r['label']:>16} seed {r['seed']} step {r['steps']:>5}: held-out IoU {r['iou']:.3f} "
        f"(fg {r['iou_foreground']:.3f}, Dice {r['dice']:.3f}, train {r['iou_train']:.3f}) "
        f"vs {r['best_training_free']} {r['best_training_free_iou']:.3f}; S + colour EM "
        f"{_maybe(r.get('iou_colour_em'))}; after stage 2b {_maybe(r.get('iou_self_trained'))}; "
        f"generated: vs G "
        f"{r['gen_s_vs_generator']:.3f}, vs oracle {r['gen_s_vs_oracle'] or float('nan'):.3f}; "
        f"{r['sec_per_step'] or 0:.3f} s/step"
    )


def _maybe(value) -> str:
    """A score, or "not run" for rows written before the column existed."""
    return "not run" if value is None else f"{value:.3f}"


def summarise(rows: list[dict]) -> list[dict]:
    """min / median / max of the held-out IoU and of the margin per (label, steps)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["label"], r["steps"]), []).append(r)
    table = []
    for (label, steps), rs in groups.items():
        entry = {"label": label, "steps": steps, "seeds": len(rs)}
        for key in (
            "iou",
            "margin",
            "iou_colour_em",
            "margin_colour_em",
            "iou_self_trained",
            "margin_self_trained",
            "gen_s_vs_generator",
        ):
            values = [r[key] for r in rs if r.get(key) is not None]
            if not values:
                continue
            entry |= {
                f"{key}_min": min(values),
                f"{key}_median": statistics.median(values),
                f"{key}_max": max(values),
            }
        table.append(entry)
    return table


def markdown(rows: list[dict]) -> str:
    """The rows as the lab record's table (one line per seed and step count)."""
    head = (
        "| setting | seed | steps | held-out IoU | fg IoU | Dice | train IoU | best training-free "
        "| margin | S + colour EM | after stage 2b | gen: S vs G | gen: S vs oracle | s/step |"
    )
    lines = [head, "|" + "---|" * 14]
    for r in rows:
        lines.append(
            f"| {r['label']} | {r['seed']} | {r['steps']} | {r['iou']:.3f} | "
            f"{r['iou_foreground']:.3f} | {r['dice']:.3f} | {r['iou_train']:.3f} | "
            f"{r['best_training_free']} {r['best_training_free_iou']:.3f} | {r['margin']:+.3f} | "
            f"{_maybe(r.get('iou_colour_em'))} | {_maybe(r.get('iou_self_trained'))} | "
            f"{r['gen_s_vs_generator']:.3f} | "
            f"{r['gen_s_vs_oracle'] or float('nan'):.3f} | "
            f"{r['sec_per_step'] or 0:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m comgan_lib.segment_check", description=__doc__)
    parser.add_argument("params", nargs="?", help="parameter file of a dataset with masks")
    parser.add_argument("--report", type=Path, help="only print RESULTS.jsonl as a table")
    parser.add_argument("--generator-run", type=Path, help="run folder holding the generator")
    parser.add_argument("--generator", help="generator run name (default: model.kind, beta)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--eval-at", type=int, nargs="+", help="step counts (default segment.steps)"
    )
    parser.add_argument("--label", default="default", help="name of this setting in the rows")
    parser.add_argument("--samples", type=int, default=1000, help="generated samples scored")
    parser.add_argument("--out", type=Path, default=Path("outputs/segment_check"))
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    add_override_argument(parser)
    args = parser.parse_args(argv)
    if args.report:
        rows = read_rows(args.report)
        print(markdown(rows))
        for s in summarise(rows):
            print(json.dumps(s))
        return 0
    if not args.params or not args.generator_run:
        parser.error("a parameter file and --generator-run are required (or --report)")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        params = load_params(args.params, args.overrides)
        rows = check(
            args.params,
            args.overrides,
            args.generator_run,
            args.seeds,
            args.eval_at or [params.segment.steps],
            args.label,
            args.out,
            generator=args.generator,
            samples=args.samples,
        )
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for s in summarise(rows):
        print(json.dumps(s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
