"""Does a short training budget rank architectures as the full one does? (the search's rungs)

    python bench/proxy_calibration.py --output=runs/comparison --steps=300 --short=33,100 \\
        --variants=4

Architectures: the models of ``bench/cell_comparison.py`` (the shallow base as a feedforward
net, its parameter-matched wide control, seven cell kinds in conv3-conv5) and ``--variants``
random feedback variants of rgc_intermediate: the released median cell (tied over conv4-conv10)
with each of the 21 later -> earlier edges among those layers drawn on or off and the
feedback knobs of each receiving layer drawn from ``gin/search/median_cell.gin``'s space, by
the search's own sampler. Each is trained once (seed 0, at the first ``--base_lr``) on ``--data`` at every budget of
``--short`` and at ``--steps``, each budget with its own warmup and decay to zero as the
search's rungs do, all with the comparison's recipe. Runs are shared with
``bench/cell_comparison.py`` when ``--output`` is its folder (its seed-0 runs at ``--steps``),
and a finished run is never run again.

Writes ``calibration.csv`` (top-1 per architecture and budget), ``calibration.md`` (Spearman
rank correlation and top-k overlap of each short budget with the full one) and
``calibration.png`` (full-budget top-1 against each short budget's).
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import sys

import numpy as np

from cell_comparison import DATA, MISSING, add_recipe_flags, models, run_one, train_gin, write

SPACE = "gin/search/median_cell.gin"


class RandomTrial:
    """Answers the search sampler's ``suggest_*`` calls: ``fixed`` values where given, else a
    uniform draw (log-uniform for log knobs)."""

    def __init__(self, rng, fixed):
        self.rng, self.fixed = rng, fixed

    def suggest_int(self, name, low, high, log=False):
        if name in self.fixed:
            return self.fixed[name]
        return int(round(self.suggest_float(name, low - 0.4999, high + 0.4999, log and low > 0)))

    def suggest_float(self, name, low, high, log=False):
        if name in self.fixed:
            return self.fixed[name]
        if log:
            return float(math.exp(self.rng.uniform(math.log(low), math.log(high))))
        return float(self.rng.uniform(low, high))

    def suggest_categorical(self, name, choices):
        if name in self.fixed:
            return self.fixed[name]
        return choices[int(self.rng.integers(len(choices)))]


def feedback_variants(n, seed=0):
    """``[(name, {binding: value})]``: ``n`` random feedback variants of the median RGC."""
    from tpu_convrnn.search import references, sample
    from tpu_convrnn.search.config import configured
    space, _ = configured([SPACE])
    median = references.reference_params(space)["median_rgc"]
    keep = {k: v for k, v in median.items() if k.startswith("cell.")}
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        params = sample.suggest(RandomTrial(rng, keep), space)
        b = {k: v for k, v in sample.bindings(space, params).items()
             if not k.startswith("train.")}  # the comparison's recipe for every model
        edges = sum(bool(v) for k, v in params.items() if k.startswith("edge."))
        out.append((f"rgc_intermediate_fb{i}", b, edges))
    return out


def variant_text(bindings, args, steps):
    from tpu_convrnn.search.trial_gin import gin_value
    lines = [f"include '{DATA[args.data]}'", f"model.width = {args.width!r}",
             f"model.times = {args.intermediate_times}", "model.image_off = None",
             f"train.train_steps = {steps}", f"train.warmup_steps = {max(1, steps // 10)}",
             f"train.checkpoint_every = {steps}", "train.seed = 0"]
    lines += recipe_lines(args)
    lines += [f"{k} = {gin_value(v)}" for k, v in bindings.items()]
    return "\n".join(lines) + "\n"


def recipe_lines(args):
    from cell_comparison import gin_text
    text = gin_text("x", args.data, 1.0, 1, 1, 0, args.base_lr[0], args.clip_norm)
    return [line for line in text.splitlines()
            if line.startswith(("train.clip", "train.base_lr"))]


def spearman(a, b):
    from scipy.stats import spearmanr
    return float(spearmanr(a, b).statistic)


def top_k_overlap(short, full, k):
    top = lambda xs: set(np.argsort(-np.asarray(xs), kind="stable")[:k])
    return len(top(short) & top(full)) / k


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--output", required=True, help="shares runs with bench/cell_comparison.py")
    p.add_argument("--data", default="embedded", choices=sorted(DATA),
                   help="the comparison's dataset (the additive debris these figures were "
                   "first measured on is gone; the occluded-digit calibration is to come)")
    p.add_argument("--steps", type=int, default=300, help="the full budget")
    p.add_argument("--short", default="33,100", help="comma list of short budgets (steps)")
    p.add_argument("--variants", type=int, default=4,
                   help="random feedback variants of rgc_intermediate")
    p.add_argument("--width", type=float, default=0.125)
    p.add_argument("--times", type=int, default=10, help="T of the shallow models")
    p.add_argument("--intermediate_times", type=int, default=12, help="T of the variants")
    p.add_argument("--models", default=None, help="comma list of comparison models "
                   "(default: all)")
    p.add_argument("--top_k", type=int, default=3)
    add_recipe_flags(p)
    args = p.parse_args(argv)
    short = sorted({int(s) for s in args.short.split(",")})
    if not short or short[0] < 1 or short[-1] >= args.steps:
        p.error(f"--short={args.short}: budgets must lie in [1, --steps={args.steps})")
    budgets = short + [args.steps]
    table = models(args)
    names = args.models.split(",") if args.models else list(table)
    unknown = [n for n in names if n not in table]
    if unknown:
        p.error(f"--models: unknown {unknown} (choose from {', '.join(table)})")
    variants = feedback_variants(args.variants)
    # the variants first: the comparison, if running beside, trains the full-budget runs of
    # the others meanwhile
    archs = [(n, v) for n, v, _ in variants] + [(n, table[n]) for n in names]
    total, k, rows = len(archs) * len(budgets), 0, []
    from tpu_convrnn.search.trial_gin import inspect_gin
    for name, what in archs:
        row = {"model": name}
        for steps in budgets:
            k += 1
            if isinstance(what, tuple):
                gin, m = run_one(args, args.data, name, *what, 0, steps)
            else:
                key = f"{args.data}_{name}_seed0_steps{steps}"
                gin, m = train_gin(args.output, key, variant_text(what, args, steps), steps,
                                   not args.report_only)
            if m is MISSING:
                break  # --report_only: not finished yet
            row[f"top1_{steps}"] = m["top1"] if m else 0.0  # diverged: scored 0, as the search
            print(f"[{k}/{total}] {name} {steps} steps: " +
                  (f"top1 {m['top1']:.4f}" if m else "diverged (0)"), flush=True)
        if m is MISSING:
            continue
        info = inspect_gin(gin, filters_fit_maps=False)
        row.update(params=info["params"], gflop=info["flops_train_step"] / 1e9)
        row["edges"] = next((e for n, _, e in variants if n == name), "")
        rows.append(row)
    print(write_outputs(args, rows, budgets))
    print(f"wrote {args.output}/calibration.csv, calibration.md and calibration.png")


def write_outputs(args, rows, budgets):
    full = [r[f"top1_{budgets[-1]}"] for r in rows]
    with open(os.path.join(args.output, "calibration.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, ["model", "params", "gflop", "edges"] +
                           [f"top1_{b}" for b in budgets])
        w.writeheader()
        w.writerows(rows)
    k = min(args.top_k, len(rows))
    lines = ["| model | parameters | " + " | ".join(f"top-1 at {b}" for b in budgets) + " |",
             "|---|---|" + "---|" * len(budgets)]
    for r in sorted(rows, key=lambda r: -r[f"top1_{budgets[-1]}"]):
        lines.append(f"| {r['model']} | {r['params']:,} | " +
                     " | ".join(f"{r[f'top1_{b}']:.3f}" for b in budgets) + " |")
    lines += ["", f"| short budget | fraction of {budgets[-1]} | Spearman rho | "
              f"top-{k} overlap |", "|---|---|---|---|"]
    for b in budgets[:-1]:
        s = [r[f"top1_{b}"] for r in rows]
        lines.append(f"| {b} | {b / budgets[-1]:.2f} | {spearman(s, full):.3f} | "
                     f"{top_k_overlap(s, full, k):.2f} |")
    text = "\n".join(lines)
    write(os.path.join(args.output, "calibration.md"), text + "\n")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(budgets) - 1, figsize=(5 * (len(budgets) - 1), 4.4),
                             squeeze=False)
    for ax, b in zip(axes[0], budgets[:-1]):
        s = [r[f"top1_{b}"] for r in rows]
        ax.scatter(s, full)
        for r, x, y in zip(rows, s, full):
            ax.annotate(r["model"], (x, y), fontsize=6)
        ax.set(xlabel=f"top-1 after {b} steps", ylabel=f"top-1 after {budgets[-1]} steps",
               title=f"{b} steps: Spearman {spearman(s, full):.2f}, "
                     f"top-{k} overlap {top_k_overlap(s, full, k):.2f}")
    fig.tight_layout()
    fig.savefig(os.path.join(args.output, "calibration.png"), dpi=90)
    plt.close(fig)
    return text


if __name__ == "__main__":
    sys.exit(main())
