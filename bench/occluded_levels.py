"""Top-1 against the debris level, one line per model, from the designs RESULTS.md reports
(``bench/occluded_digits/runs.csv``; nothing is trained).

    python bench/occluded_levels.py          # -> bench/occluded_digits/levels.png

Each level ran its own design (``bench/occluded_digits.py``), so the budgets differ:

* light: a 1,500-step grid on seed 0, then 6,000 steps on 3 paired seeds;
* moderate: a 6,000-step grid on 2 seeds, then 24,000 steps on 3 paired seeds;
* heavy: the moderate design's grid only (every rate of every model stayed at chance, so no
  full run started): its best mean validation top-1 at 6,000 steps, drawn hollow.

Filled markers are test top-1 (mean +- s.e.m. over the seeds) at the grid's pick; the x tick
labels name each level's budget.
"""
from __future__ import annotations

import argparse
import os
import sys
from types import SimpleNamespace

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import occluded_digits as od  # noqa: E402  (its records, grid rule and statistics)

MODELS = ("b", "b_k", "b_f", "bl", "bt", "blt")
# (level, full budget, grid budget, grid seeds): the published designs (RESULTS.md)
DESIGNS = (("light", 6000, 1500, 1), ("moderate", 24000, 6000, 2), ("heavy", 24000, 6000, 2))


def design(level, steps, grid_steps, grid_seeds):
    return SimpleNamespace(levels=[level], models=list(MODELS), width=0.5, steps=steps,
                           grid_steps=grid_steps, grid_seeds=grid_seeds, seeds=3,
                           lrs=[0.1, 0.2, 0.4, 0.8], grid_extend=2, grid_margin=0.02,
                           proxy_steps=[])


def points(rows):
    """{model: {level: (value, s.e.m., filled)}}: test top-1 of the full runs at the grid's
    best rate, or (no full run) the grid's best mean validation top-1."""
    out = {}
    for level, steps, grid_steps, grid_seeds in DESIGNS:
        args = design(level, steps, grid_steps, grid_seeds)
        mine = od.ours(args, rows)
        grid = [r for r in mine if r["phase"] == "grid"]
        for model in MODELS:
            best = od.best_rate(grid, level, model, args)
            full = [float(r["test_top1"]) for r in mine
                    if (r["level"], r["model"], r["phase"]) == (level, model, "full")
                    and r["test_top1"] and int(r["seed"]) < args.seeds
                    and best is not None and float(r["lr"]) == best]
            if full:
                out.setdefault(model, {})[level] = (*od.mean_sem(full), True)
                continue
            means = od.grid_means(grid, level, model, args) or _partial_grid(grid, level,
                                                                              model, args)
            if means:
                out.setdefault(model, {})[level] = (max(means.values()), float("nan"), False)
    return out


def _partial_grid(grid, level, model, args):
    """The seed-0 means of a grid whose later seeds did not run (heavy BL)."""
    one = SimpleNamespace(**{**vars(args), "grid_seeds": 1})
    return od.grid_means(grid, level, model, one)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--csv", default=os.path.join(od.RESULTS, "runs.csv"),
                   help="the comparison's rows")
    p.add_argument("--output", default=os.path.join(od.RESULTS, "levels.png"),
                   help="the figure")
    args = p.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    data = points(od.read_rows(args.csv))
    levels = [d[0] for d in DESIGNS]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for i, model in enumerate(MODELS):
        vals = data.get(model, {})
        xs = [levels.index(lv) + (i - 2.5) * 0.04 for lv in levels if lv in vals]
        ys = [vals[lv][0] for lv in levels if lv in vals]
        line, = ax.plot(xs, ys, lw=1, label=model)
        for x, lv in zip(xs, [lv for lv in levels if lv in vals]):
            y, e, filled = vals[lv]
            ax.errorbar(x, y, yerr=0 if e != e else e, marker="o", capsize=2,
                        color=line.get_color(), mfc=line.get_color() if filled else "white")
        print(f"{model}: " + ", ".join(f"{lv} {vals[lv][0]:.3f}" + ("" if vals[lv][2] else
                                                                    " (grid, validation)")
                                       for lv in levels if lv in vals))
    ax.axhline(od.CHANCE, color="grey", lw=0.8, ls=":")
    ax.set_xticks(range(len(levels)), ["light\n(6,000 steps)", "moderate\n(24,000 steps)",
                                       "heavy\n(grid: 6,000 steps)"])
    ax.set(ylabel="test top-1 (mean +- s.e.m., 3 seeds)",
           title="occluded digits: top-1 against debris level\n(hollow: no full run; the grid's best validation top-1)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.output, dpi=90)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
