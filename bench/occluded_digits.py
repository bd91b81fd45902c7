"""The occluded-digit comparison of Spoerer, McClure & Kriegeskorte (2017) on this project's
digit debris (``tpu_convrnn.data.debris``), trained long, with the paper's controls.

    python bench/occluded_digits.py --levels=light,moderate --seeds=3 --workers=2

Models (``--models``): B, B-K, B-F, BL, BT, BLT (``gin/models/spoerer_*.gin``), the
released shallow cells in BL's place (``bl_rgc``, ``bl_simplernn``, ``bl_gru``, ``bl_lstm``,
``bl_timedecay``: the cell of the released ``*_shallow`` model's conv3, its depth set to the
layer's 32 maps, layer norms' epsilon 1e-3), and the feedforward controls matched to the RGC
cell's larger parameter count (``b_k_rgc``, ``b_f_rgc``: B-K and B-F with the number of maps
that matches ``bl_rgc``), all on the recipe of ``gin/debris.gin``; and models a gin file
defines (``--gin_models=NAME=FILE``: an architecture search's ``best.gin`` or
``median_topN.gin``), trained at the file's learning rate and contrasted with ``bl_rgc``,
BL and the feedforward models.

Protocol, the same for every model:

1. learning rate: for each level and model, seeds ``0 .. --grid_seeds - 1`` are trained for
   ``--grid_steps`` at every ``--lrs`` value (``train.base_lr``, per 256 images); the one with
   the highest top-1 on the validation split (images of the training distribution from their
   own seeds, not the test set), averaged over the grid's seeds, is chosen (a rate that
   diverges or stays at chance on one seed scores low). A grid whose best rate is its largest
   (smallest) grows by a factor of 2 that way, up to ``--grid_extend`` times, so that a pick
   is never only the grid's edge. A grid whose best mean is less than
   ``--grid_margin`` above chance cannot tell its rates apart: no rate is picked, that model's
   full runs are not started, and the command ends saying so (raise ``--grid_steps``);
2. ``--seeds`` seeds at the chosen rate for ``--steps``; seed ``s`` is ``train.seed = s`` in
   every model (the same data order; the same initial draws where shapes agree);
3. each full run is scored on the test split (``--mode=eval --eval_name=eval_test``), at
   every time step; it counts as converged when its validation top-1 at the end is less than
   ``--rise`` above its value at 80% of the budget and at least ``--floor`` above chance (a
   run that never left chance has converged to nothing: the table counts it apart).

Every run is ``python -m tpu_convrnn.main`` on a gin file under ``--output``; a killed run
resumes from its checkpoint, and a finished one is a row of ``bench/occluded_digits/runs.csv``
(kept in the repository), so this command, run again, continues where it stopped (also in a
new checkout). ``--workers`` processes share the plan, each on its own core. Writes the table
(``table.md``: test top-1 mean +- s.e.m., paired differences with 95% t intervals) and the
figures (``accuracy_by_level.png``, ``accuracy_by_step.png``) beside the CSVs.
"""
from __future__ import annotations

import argparse
import csv
import fcntl
import json
import math
import multiprocessing
import os
import subprocess
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, REPO)

from cell_comparison import BUSY, LN_EPSILON, train_gin  # noqa: E402  (one resumable-run mechanism)
from tpu_convrnn.files import write_atomic  # noqa: E402

RESULTS = os.path.join(HERE, "occluded_digits")
BASE = {"b": "spoerer_b", "b_k": "spoerer_b_k", "b_f": "spoerer_b_f", "bl": "spoerer_bl",
        "bt": "spoerer_bt", "blt": "spoerer_blt", "b_k_rgc": "spoerer_b_k",
        "b_f_rgc": "spoerer_b_f"}
# Feedforward controls whose maps are matched (at every width) to another model's parameters.
MATCHED = {"b_f": "bl", "b_k_rgc": "bl_rgc", "b_f_rgc": "bl_rgc"}
CELL_MODELS = {"bl_rgc": "rgc_shallow", "bl_simplernn": "simplernn_shallow",
               "bl_gru": "gru_shallow", "bl_lstm": "lstm_shallow",
               "bl_timedecay": "timedecay_shallow"}
MODELS = tuple(BASE) + tuple(CELL_MODELS)
# The contrasts RESULTS.md reports: (model, control), paired by seed.
CONTRASTS = [("bl", "b_k"), ("bl", "b_f"), ("bt", "b_k"), ("bt", "b_f"), ("blt", "b_k"),
             ("blt", "b_f"), ("bl", "b"), ("bl_rgc", "bl_simplernn"), ("bl_rgc", "b_k_rgc"),
             ("bl_rgc", "b_f_rgc"), ("bl_rgc", "b_k"), ("bl_rgc", "b_f"), ("bl_rgc", "bl"),
             ("bl_simplernn", "b_k"), ("bl_simplernn", "b_f"), ("bl_simplernn", "bl"),
             ("bl_gru", "b_k"), ("bl_gru", "bl"), ("bl_lstm", "b_k"), ("bl_lstm", "bl"),
             ("bl_rgc", "bl_gru"), ("bl_rgc", "bl_lstm"), ("bl_lstm", "bl_gru"),
             ("bl_gru", "b_f_rgc"),  # (GRU's 40,762 parameters are within 6% of it at width 0.5)
             ("bl_timedecay", "b"), ("bl_timedecay", "b_k"), ("bl_timedecay", "bl")]
# What a searched model (--gin_models) is contrasted with: the search's reference cell, BL, and
# the feedforward models.
SEARCH_CONTROLS = ("bl_rgc", "bl", "b_k", "b_f", "b")
CHANCE = 0.1  # ten digits
ARRIVAL = 2  # the step at which the image reaches the readout (tests/model/test_digit_models.py)
FIELDS = ["level", "model", "width", "phase", "seed", "lr", "steps", "params", "mflop",
          "val_top1", "rise_last20", "converged", "test_top1", "test_top1_per_step", "wall_s"]


def cells_of(model: str):
    """``model.cells`` for a ``bl_<cell>`` model: the released cell in conv1 and conv2."""
    if model not in CELL_MODELS:
        return None
    from tpu_convrnn.model import zoo
    cell = next(n["memory"] for n in zoo.released_graph(CELL_MODELS[model])["nodes"]
                if n.get("memory"))
    cell = dict(cell)
    if "depth" in cell:
        cell["depth"] = 32
    if cell.get("layer_norm"):
        cell["layer_norm_epsilon"] = LN_EPSILON
    return {"conv1": cell, "conv2": dict(cell)}


def data_bindings(args, level):
    """The debris settings of a level (``--num_train``/``--num_eval`` override the recipe's)."""
    out = {"debris_level": level}
    if args.data_dir:
        out["cache_dir"] = args.data_dir
    if args.num_train:
        out["debris_num_train"] = args.num_train
    if args.num_eval:
        out.update(debris_num_validation=args.num_eval, debris_num_test=args.num_eval)
    return out


def matched_width(width, model):
    """The width of ``model`` (one of ``MATCHED``) at which its parameters are closest to those
    of the model it is matched to at ``width`` (the extra maps are the matching, so they are
    re-matched at every width: the readout dominates)."""
    from tpu_convrnn import build_model
    target = build_model(BASE.get(MATCHED[model], "spoerer_bl"), cells=cells_of(MATCHED[model]),
                         width=width, image_size=32).count_params()
    base = BASE[model]
    maps = zoo_maps(base)
    best = min(range(1, 4 * maps), key=lambda m: abs(build_model(
        base, width=m / maps, image_size=32).count_params() - target))
    return best / maps


def zoo_maps(base):
    from tpu_convrnn.model import zoo
    return zoo.released_graph(base)["nodes"][0]["pre"][0]["filters"]


def model_width(args, model):
    return args.widths.get(model, args.width)


def gin_text(args, level, model, lr, seed, steps, every):
    from tpu_convrnn.search.trial_gin import gin_value
    base = BASE.get(model, "spoerer_bl")
    cells = cells_of(model)
    if model in searched(args):  # the file holds its model, width and rate
        head = [f"include {os.path.abspath(args.gin_models[model])!r}"]
    else:
        head = [f"include 'gin/models/{base}.gin'", "include 'gin/debris.gin'",
                f"model.width = {model_width(args, model)!r}"]
    return "\n".join([
        *head, *[f"data.{k} = {v!r}" for k, v in data_bindings(args, level).items()],
        f"train.base_lr = {lr!r}", f"train.seed = {seed}",
        f"train.train_steps = {steps}", f"train.warmup_steps = {max(1, steps // 20)}",
        f"train.checkpoint_every = {every}", f"train.steps_per_loop = {min(200, every)}"]
        + ([f"model.cells = {gin_value(cells)}"] if cells else []) + [""])


def run_key(level, model, width, phase, lr, seed, steps):
    return f"{level}_{model}_w{width:g}_{phase}_lr{lr:g}_seed{seed}_steps{steps}"


# ---------------------------------------------------------------------------------- records
def read_rows(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def append_row(path, row, fields=FIELDS):
    """One run's result, appended under a lock (several workers write the same file)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        new = not os.path.exists(path)
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fields)
            if new:
                w.writeheader()
            w.writerow({k: row.get(k, "") for k in fields})


def done_keys(rows):
    return {run_key(r["level"], r["model"], float(r["width"]), r["phase"], float(r["lr"]),
                    int(r["seed"]), int(r["steps"])) for r in rows}


def budgets(args, phase):
    """The budgets (steps) of a phase in this command's design."""
    return {"grid": [args.grid_steps], "full": [args.steps],
            "proxy": getattr(args, "proxy_steps", [])}[phase]


def ours(args, rows):
    """The rows of this command's design (levels, models, width, budgets)."""
    return [r for r in rows if r["level"] in args.levels and r["model"] in args.models
            and float(r["width"]) == args.width and int(r["steps"]) in budgets(args, r["phase"])]


def grid_means(rows, level, model, args):
    """{lr: mean validation top-1 over the grid's seeds} for the rates whose grid runs have
    all finished (a diverged run, ``nan``, scores 0)."""
    vals = {}
    for r in rows:
        if ((r["level"], r["model"], r["phase"]) == (level, model, "grid")
                and int(r["steps"]) == args.grid_steps and int(r["seed"]) < args.grid_seeds):
            v = float(r["val_top1"])
            vals.setdefault(float(r["lr"]), []).append(0.0 if math.isnan(v) else v)
    return {lr: round(sum(v) / len(v), 4)  # (the rows' precision: equal means tie)
            for lr, v in vals.items() if len(v) == args.grid_seeds}


def searched(args) -> dict:
    """``{model: base_lr}`` of the ``--gin_models``: models a gin file defines (a search
    report's ``best.gin`` or ``median_topN.gin``), trained at the file's rate (the search
    chose it), without a grid."""
    return getattr(args, "gin_lrs", {})


def chosen_lr(rows, level, model, args):
    """(the grid's pick for (level, model) or None, and why: 'picked', 'pending' while a grid
    run is missing, or 'at chance' when the best mean is under ``--grid_margin`` above chance;
    a ``--gin_models`` model's rate is its file's: 'searched')."""
    if model in searched(args):
        return searched(args)[model], "searched"
    return pick(grid_means(rows, level, model, args), args)  # (rows: this design's only)


def grid_rates(grid, args):
    """The rates of a (level, model) grid: ``--lrs``, extended by a factor of 2 past an edge
    while the best finished rate is at that edge (at most ``--grid_extend`` times), so that no
    model's pick is the grid's limit rather than its best; the same rule for every model."""
    rates = sorted(args.lrs)
    for _ in range(args.grid_extend):
        best = best_lr(grid, rates)
        if best == rates[-1]:
            rates.append(best * 2)
        elif best == rates[0]:
            rates.insert(0, best / 2)
        else:
            break  # inside the grid, or a rate still missing
    return rates


def best_rate(rows, level, model, args):
    """The best rate of (level, model)'s finished grid, or None while it is missing a rate
    (a ``--gin_models`` model: its file's rate)."""
    if model in searched(args):
        return searched(args)[model]
    grid = grid_means(rows, level, model, args)
    return best_lr(grid, grid_rates(grid, args))


def best_lr(grid, lrs):
    """The rate of ``lrs`` with the best mean in ``grid`` (ties: the smaller), or None while
    one of them is missing."""
    if not all(lr in grid for lr in lrs):
        return None
    return max(lrs, key=lambda lr: (grid[lr], -lr))


def pick(grid, args):
    """``chosen_lr`` from the grid's means ``{lr: mean validation top-1}``."""
    best = best_lr(grid, grid_rates(grid, args))
    if best is None:
        return None, "pending"
    if grid[best] < CHANCE + args.grid_margin:
        return None, "at chance"
    return best, "picked"


# ---------------------------------------------------------------------------------- one run
def convergence(metrics, steps, rise):
    """(validation top-1 at the end, its rise over the last 20% of the budget, converged)."""
    by_step = {e["step"]: e["top1"] for e in metrics}
    final = by_step[steps]
    before = [s for s in by_step if s <= 0.8 * steps]
    if not before:
        return final, float("nan"), False
    gain = final - by_step[max(before)]
    return final, gain, gain < rise


def test_eval(gin, model_dir, log):
    """Top-1 on the test split at every time step (``--eval_name=eval_test``)."""
    path = os.path.join(model_dir, "eval_test", "metrics.json")
    if not os.path.exists(path):
        with open(log, "a") as f:
            code = subprocess.call(
                [sys.executable, "-m", "tpu_convrnn.main", f"--gin_file={gin}", "--mode=eval",
                 f"--model_dir={model_dir}", "--eval_name=eval_test",
                 "--gin_param=data.debris_eval_split = 'test'"],
                stdout=f, stderr=subprocess.STDOUT, cwd=REPO)
        if code != 0:
            raise RuntimeError(f"test evaluation of {model_dir} failed; see {log}")
    return json.load(open(path))[-1]


def run(args, level, model, phase, lr, seed, steps):
    """Trains one run to its end and records its row; None if another worker has it."""
    every = steps // 2 if phase == "grid" else steps // 10
    key = run_key(level, model, args.width, phase, lr, seed, steps)
    os.makedirs(os.path.join(args.output, "runs"), exist_ok=True)
    with open(os.path.join(args.output, "runs", f"{key}.lock"), "w") as lock:
        try:  # the whole run, test evaluation and row included, is one worker's
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        if key in done_keys(read_rows(args.csv)):
            return None  # finished by another worker since this one read the table
        return _run_locked(args, key, level, model, phase, lr, seed, steps, every)


def _run_locked(args, key, level, model, phase, lr, seed, steps, every):
    from tpu_convrnn.search.trial_gin import inspect_gin
    text = gin_text(args, level, model, lr, seed, steps, every)
    model_dir = os.path.join(args.output, "runs", key)
    wall_file = os.path.join(args.output, "runs", f"{key}.wall.json")
    log = os.path.join(args.output, "logs", f"{key}.log")
    start, before = time.time(), wall_before(wall_file, log)
    write_atomic(wall_file, json.dumps({"wall_s": before, "started": start}))
    gin, m = train_gin(args.output, key, text, steps, wait=False)
    if m is BUSY:  # another command (not a worker of this one) trains it
        return None
    wall = before + time.time() - start
    write_atomic(wall_file, json.dumps({"wall_s": wall}))
    info = inspect_gin(gin, filters_fit_maps=False)
    row = {"level": level, "model": model, "width": args.width, "phase": phase, "seed": seed, "lr": lr,
           "steps": steps, "params": info["params"],
           "mflop": round(info["flops_forward"] / 1e6, 2),
           "wall_s": round(wall)}
    if m is None:  # diverged: a result, kept
        row.update(val_top1="nan", rise_last20="nan", converged=False)
    else:
        metrics = json.load(open(os.path.join(model_dir, "eval", "metrics.json")))
        val, gain, ok = convergence(metrics, steps, args.rise)
        row.update(val_top1=round(val, 4), rise_last20=round(gain, 4), converged=ok)
        if phase == "full":
            t = test_eval(gin, model_dir, os.path.join(args.output, "logs", f"{key}.log"))
            row.update(test_top1=round(t["top1"], 4), test_top1_per_step=" ".join(
                f"{a:.4f}" for a in t["top1_per_step"]))
    append_row(args.csv, row)
    return row


def wall_before(wall_file, log) -> float:
    """Seconds that earlier attempts spent on a run: an attempt cut off by a kill (its
    ``started`` never closed) counts until the last write to the run's log."""
    if not os.path.exists(wall_file):
        return 0.0
    record = json.load(open(wall_file))
    cut_off = record.get("started")
    if cut_off is not None and os.path.exists(log):
        return record["wall_s"] + max(0.0, os.path.getmtime(log) - cut_off)
    return record["wall_s"]


def plan(args, rows):
    """The runs still to do, in order, that can start now: (level, model, phase, lr, seed,
    steps). The proxy runs (``--proxy_steps``) come after every full run."""
    rows = ours(args, rows)
    done = done_keys(rows)
    out = []
    for level in args.levels:
        for model in (m for m in args.models if m not in searched(args)):
            rates = grid_rates(grid_means(rows, level, model, args), args)
            for seed in range(args.grid_seeds):
                for lr in rates:
                    if run_key(level, model, args.width, "grid", lr, seed,
                               args.grid_steps) not in done:
                        out.append((level, model, "grid", lr, seed, args.grid_steps))
    for seed in range(args.seeds):  # every model's seed 0 before any seed 1
        for level in args.levels:
            for model in args.models:
                lr, _ = chosen_lr(rows, level, model, args)
                if lr is not None and run_key(level, model, args.width, "full", lr, seed,
                                              args.steps) not in done:
                    out.append((level, model, "full", lr, seed, args.steps))
    for seed in range(args.proxy_seeds if args.proxy_steps else 0):
        for steps in args.proxy_steps:
            for level in args.levels:
                for model in args.models:
                    lr, _ = chosen_lr(rows, level, model, args)
                    if lr is not None and run_key(level, model, args.width, "proxy", lr, seed,
                                                  steps) not in done:
                        out.append((level, model, "proxy", lr, seed, steps))
    return out


def remaining(args, rows):
    """Runs not yet finished, leaving out the full runs of grids that stayed at chance: what
    ``plan`` can start now, and every seed of a model whose grid is still pending."""
    pending = sum(chosen_lr(ours(args, rows), level, model, args)[1] == "pending"
                  for level in args.levels for model in args.models)
    proxies = args.proxy_seeds * len(args.proxy_steps)
    return len(plan(args, rows)) + pending * (args.seeds + proxies)


def at_chance(args, rows):
    """One line for each (level, model) whose grid could not pick a rate."""
    rows = ours(args, rows)
    out = []
    for level in args.levels:
        for model in args.models:
            grid = grid_means(rows, level, model, args)
            if pick(grid, args)[1] == "at chance":
                best = max(grid, key=grid.get)
                out.append(f"{level}/{model}: the learning-rate grid ({args.grid_steps} steps, "
                           f"{args.grid_seeds} seed(s)) stayed within --grid_margin="
                           f"{args.grid_margin:g} of chance (best mean validation top-1 "
                           f"{grid[best]:.3f}, at base_lr {best:g}); no rate is picked and "
                           "its full runs are not started: raise --grid_steps")
    return out


def worker(args, index):
    if hasattr(os, "sched_setaffinity"):
        cores = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cores[index % len(cores)]})
    while True:
        rows = read_rows(args.csv)
        todo = plan(args, rows)
        if not todo:
            if remaining(args, rows) <= 0:
                return
            time.sleep(20)  # a grid another worker is finishing decides the next runs
            continue
        started = False
        for level, model, phase, lr, seed, steps in todo:
            row = run(args, level, model, phase, lr, seed, steps)
            if row is not None:
                print(f"[worker {index}] {level} {model} {phase} ({steps} steps) lr {lr:g} "
                      f"seed {seed}: "
                      f"val {row['val_top1']} test {row.get('test_top1', '-')} "
                      f"(rise {row['rise_last20']}, {row['wall_s']} s)", flush=True)
                started = True
                break
        if not started:
            time.sleep(20)


# ---------------------------------------------------------------------------------- report
T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26}


def mean_sem(values):
    n = len(values)
    if n == 0:
        return float("nan"), float("nan")
    mean = sum(values) / n
    sem = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n) if n > 1 else float("nan")
    return mean, sem


def model_styles(models) -> dict:
    """One colour and line style per model, the same in every subplot and figure: matplotlib's
    ten colours in turn, solid for the first ten models and dashed for the next ten (the
    comparison draws more models than ten, and a colour per plot order made a model's colour
    differ between debris levels)."""
    return {m: {"color": f"C{n % 10}", "ls": "-" if n < 10 else "--"}
            for n, m in enumerate(dict.fromkeys(models))}


def report(args):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    every = ours(args, read_rows(args.csv))
    grid = [r for r in every if r["phase"] == "grid"]
    # A full run is this design's only at its seeds and its grid's best rate: designs that
    # share the full budget (another grid, fewer seeds) keep their runs in the same file.
    # (The best rate, not the pick: a design run before the margin rule ran its full runs at
    # an at-chance grid's best.)
    rows = [r for r in every if r["phase"] == "full" and r["test_top1"]
            and int(r["seed"]) < args.seeds and float(r["lr"]) == best_rate(grid, r["level"], r["model"], args)]
    levels = [lv for lv in ("light", "moderate", "heavy") if any(r["level"] == lv for r in rows)]
    lines = []
    fig, ax = plt.subplots(1, max(1, len(levels)), figsize=(5 * max(1, len(levels)), 3.6),
                           squeeze=False)
    by_level = {}
    style = model_styles(m for m in MODELS + tuple(searched(args))
                         if any(r["model"] == m for r in rows))
    for i, level in enumerate(levels):
        lines += [f"### {level} debris", "", "| model | params | MFLOP/img (forward) | base_lr "
                  "(grid: mean val top-1) | seeds (converged) | test top-1 | at arrival (t=2) | "
                  "last - arrival | wall s/run |", "|---|---|---|---|---|---|---|---|---|"]
        for model in MODELS + tuple(searched(args)):
            rs = [r for r in rows if (r["level"], r["model"]) == (level, model)]
            if not rs:
                continue
            top = [float(r["test_top1"]) for r in rs]
            steps = [[float(a) for a in r["test_top1_per_step"].split()] for r in rs]
            arrival = [s[ARRIVAL] for s in steps]
            m, e = mean_sem(top)
            ma, _ = mean_sem(arrival)
            md, ed = mean_sem([t - a for t, a in zip(top, arrival)])
            g = sorted(grid_means(grid, level, model, args).items())
            how = "searched" if model in searched(args) else \
                ", ".join(f"{lr:g}: {v:.3f}" for lr, v in g)
            stuck = [r for r in rs if float(r["val_top1"]) < CHANCE + args.floor]
            conv = sum(r["converged"] == "True" and r not in stuck for r in rs)
            counted = (f"{len(rs)} ({conv}; {len(stuck)} at chance)" if stuck
                       else f"{len(rs)} ({conv})")
            lines.append(
                f"| {model} | {int(rs[0]['params']):,} | {float(rs[0]['mflop']):.1f} | "
                f"{float(rs[0]['lr']):g} ({how}) | "
                f"{counted} | {m:.3f} +- {e:.3f} | {ma:.3f} | {md:+.3f} +- {ed:.3f} | "
                f"{mean_sem([float(r['wall_s']) for r in rs])[0]:.0f} |")
            by_level.setdefault(model, {})[level] = (m, e)
            per_step = [sum(c) / len(c) for c in zip(*steps)]
            ax[0, i].plot(range(len(per_step)), per_step, marker="o", ms=3, label=model,
                          **style[model])
        ax[0, i].axvline(ARRIVAL, color="grey", lw=0.8, ls=":")
        ax[0, i].set(title=f"{level} debris: test top-1 by time step", xlabel="time step",
                     ylabel="test top-1 (mean over seeds)")
        ax[0, i].legend(fontsize=7)
        lines += ["", "Paired differences (test top-1, same seed; mean and 95% t interval):", "",
                  "| contrast | seeds | difference | 95% interval |", "|---|---|---|---|"]
        for a, b in CONTRASTS + [(g, m) for g in searched(args) for m in SEARCH_CONTROLS]:
            pa = {r["seed"]: float(r["test_top1"]) for r in rows
                  if (r["level"], r["model"]) == (level, a)}
            pb = {r["seed"]: float(r["test_top1"]) for r in rows
                  if (r["level"], r["model"]) == (level, b)}
            d = [pa[s] - pb[s] for s in sorted(set(pa) & set(pb))]
            if not d:
                continue
            m, e = mean_sem(d)
            half = T95.get(len(d) - 1, 2.0) * e if len(d) > 1 else float("nan")
            lines.append(f"| {a} - {b} | {len(d)} | {m:+.3f} | "
                         + (f"[{m - half:+.3f}, {m + half:+.3f}] |" if len(d) > 1 else "- |"))
        lines.append("")
    fig.tight_layout()
    fig.savefig(os.path.join(args.output_figures, "accuracy_by_step.png"), dpi=90)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for model, vals in by_level.items():
        xs = [lv for lv in levels if lv in vals]
        ax.errorbar(xs, [vals[x][0] for x in xs], yerr=[0 if math.isnan(vals[x][1]) else
                                                       vals[x][1] for x in xs],
                    marker="o", capsize=2, label=model, **style[model])
    ax.set(xlabel="debris level", ylabel="test top-1 (mean +- s.e.m.)",
           title="occluded digits: top-1 against debris level")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(args.output_figures, "accuracy_by_level.png"), dpi=90)
    plt.close(fig)
    table = "\n".join(lines)
    with open(os.path.join(args.output_figures, "table.md"), "w") as f:
        f.write(table + "\n")
    return table


# ------------------------------------------------------------------------------ calibration
def calibration(args, reps=2000):
    """Does a short budget rank the models as the full one does? For each level, the models
    with full and proxy runs on seeds ``0 .. --proxy_seeds - 1`` at their grid's best rate,
    scored by validation top-1 at the end of each run (the search scores its rungs on held-out
    images too). The ceiling is the Spearman correlation of one full-budget seed with another
    (seeds 0 and 1): no short budget can rank better than a rerun of the full one. A short
    budget's single-run figure pairs its seed s with the full run of the other seed (the same
    noise as the ceiling's); the mean-over-seeds figure ranks means. 95% intervals: bootstrap
    over models. Models whose full runs stay at chance are listed apart, out of the rankings.
    Writes ``calibration.md`` and ``calibration.png``; returns the text."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from proxy_calibration import spearman, top_k_overlap
    rows = ours(args, read_rows(args.csv))
    grid = [r for r in rows if r["phase"] == "grid"]
    seeds = list(range(args.proxy_seeds))
    val = {}  # (level, model, phase, steps, seed) -> validation top-1 (diverged: 0)
    for r in rows:
        if r["phase"] != "grid" and float(r["lr"]) == best_rate(grid, r["level"], r["model"],
                                                                 args):
            v = float(r["val_top1"])
            val[r["level"], r["model"], r["phase"], int(r["steps"]), int(r["seed"])] = \
                0.0 if math.isnan(v) else v
    runs = [("full", args.steps)] + [("proxy", b) for b in args.proxy_steps]
    rng = np.random.default_rng(0)
    lines, levels = [], [lv for lv in args.levels if any(k[0] == lv for k in val)]
    fig, axes = plt.subplots(len(levels) or 1, len(args.proxy_steps), squeeze=False,
                             figsize=(4.6 * len(args.proxy_steps), 4.2 * (len(levels) or 1)))
    for li, level in enumerate(levels):
        have = [m for m in args.models if all((level, m, ph, b, s) in val
                                              for ph, b in runs for s in seeds)]
        apart = [m for m in have if np.mean([val[level, m, "full", args.steps, s]
                                             for s in seeds]) < CHANCE + args.floor]
        ranked = [m for m in have if m not in apart]
        score = {(ph, b, s): np.array([val[level, m, ph, b, s] for m in ranked])
                 for ph, b in runs for s in seeds}
        full = np.mean([score["full", args.steps, s] for s in seeds], axis=0)
        lines += [f"### {level} debris: {len(ranked)} models ranked"
                  + (f"; at chance, apart: {', '.join(apart)}" if apart else ""), "",
                  "| model | " + " | ".join(f"val top-1 at {b}" for _, b in runs[1:])
                  + f" | val top-1 at {args.steps} (full) |", "|---|" + "---|" * len(runs)]
        for j in np.argsort(-full, kind="stable"):
            lines.append(f"| {ranked[j]} | " + " | ".join(
                f"{np.mean([score[ph, b, s][j] for s in seeds]):.3f}" for ph, b in runs[1:])
                + f" | {full[j]:.3f} |")
        if len(ranked) < 3:
            lines += ["", "(fewer than 3 models ranked: no correlation)", ""]
            continue
        k = min(3, len(ranked) - 1)

        def stats(idx, ph, b):
            one = [spearman(score[ph, b, s][idx], score["full", args.steps, t][idx])
                   for s in seeds for t in seeds if s != t]
            mean = np.mean([score[ph, b, s][idx] for s in seeds], axis=0)
            return (float(np.nanmean(one)), spearman(mean, full[idx]),
                    top_k_overlap(mean, full[idx], k))
        boot = [rng.integers(len(ranked), size=len(ranked)) for _ in range(reps)]
        lines += ["", f"| budget | fraction | Spearman, one run against another seed's full run "
                  f"(95% CI) | Spearman, means over {len(seeds)} seeds (95% CI) | top-{k} "
                  "overlap of the means |", "|---|---|---|---|---|"]
        for ph, b in runs:
            point = stats(np.arange(len(ranked)), ph, b)
            with warnings.catch_warnings():  # a resample of equal scores has no rho (nan)
                warnings.simplefilter("ignore")
                draws = np.array([stats(idx, ph, b) for idx in boot])
            lo, hi = np.nanpercentile(draws[:, :2], [2.5, 97.5], axis=0)
            what = f"{b} (full: the ceiling)" if ph == "full" else str(b)
            lines.append(f"| {what} | {b / args.steps:.2f} | {point[0]:+.2f} [{lo[0]:+.2f}, "
                         f"{hi[0]:+.2f}] | " + ("- | - |" if ph == "full" else
                                                f"{point[1]:+.2f} [{lo[1]:+.2f}, {hi[1]:+.2f}]"
                                                f" | {point[2]:.2f} |"))
            if ph == "proxy":
                ax = axes[li, args.proxy_steps.index(b)]
                short = np.mean([score[ph, b, s] for s in seeds], axis=0)
                ax.scatter(short, full)
                for m, x, y in zip(ranked, short, full):
                    ax.annotate(m, (x, y), fontsize=7)
                ax.set(xlabel=f"val top-1 after {b} steps", ylabel=f"after {args.steps} steps",
                       title=f"{level}: {b} steps, Spearman {point[1]:+.2f}")
        lines.append("")
    fig.tight_layout()
    fig.savefig(os.path.join(args.output_figures, "calibration.png"), dpi=90)
    plt.close(fig)
    text = "\n".join(lines)
    with open(os.path.join(args.output_figures, "calibration.md"), "w") as f:
        f.write(text + "\n")
    return text


def gin_model_lr(name, path, width) -> float:
    """The ``train.base_lr`` of a ``--gin_models`` file; ValueError (one line) for a name taken
    by a built-in model, a missing file, one that does not parse, or a width other than
    ``--width`` (its rows are filed under ``--width``)."""
    import inspect

    import gin
    from tpu_convrnn import build_model
    from tpu_convrnn.search.trial_gin import parse_trial_gin
    if name in MODELS or not name:
        raise ValueError(f"--gin_models {name}={path}: give each file a name of its own (not "
                         "one of the built-in models)")
    if not os.path.isfile(path):
        raise ValueError(f"--gin_models {name}={path}: no such file")
    try:
        _, recipe, _ = parse_trial_gin(path)
        bound = gin.get_bindings("model")
        got = bound.get("width", inspect.signature(build_model).parameters["width"].default)
    except (ValueError, KeyError, OSError) as e:
        raise ValueError(f"--gin_models {name}={path}: {str(e).splitlines()[0]}") from None
    finally:
        gin.clear_config()
    if got != width:
        raise ValueError(f"--gin_models {name}={path}: model.width = {got!r}, not --width="
                         f"{width:g} (the width its runs are filed under)")
    return recipe.base_lr


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--output", default="runs/occluded_digits",
                   help="run folders (checkpoints, logs; not kept in the repository)")
    p.add_argument("--csv", default=os.path.join(RESULTS, "runs.csv"),
                   help="every finished run, one row each (kept in the repository)")
    p.add_argument("--output_figures", default=RESULTS, help="table.md and the figures")
    p.add_argument("--levels", default="light,moderate", help="comma list of light, moderate, "
                   "heavy")
    p.add_argument("--models", default=",".join(MODELS), help="comma list of "
                   + ", ".join(MODELS) + " and the names of --gin_models")
    p.add_argument("--gin_models", default="",
                   help="comma list of NAME=FILE: models a gin file defines (e.g. a search "
                   "report's best.gin, median_top5.gin), trained and scored as the others at "
                   "the file's width and train.base_lr (no grid); list NAME in --models too")
    p.add_argument("--lrs", default="0.1,0.2,0.4,0.8", help="train.base_lr grid (per 256 images)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--width", type=float, default=1.0, help="model.width of every model (B-F "
                   "at the width that matches BL's parameters at it)")
    p.add_argument("--steps", type=int, default=12000, help="the full budget (batch 64)")
    p.add_argument("--grid_steps", type=int, default=3000, help="the learning-rate grid's budget")
    p.add_argument("--grid_seeds", type=int, default=1,
                   help="seeds of the learning-rate grid; a rate is scored by its mean "
                   "validation top-1 over them")
    p.add_argument("--grid_extend", type=int, default=2,
                   help="times a grid may grow by a factor of 2 past its largest (smallest) "
                   "rate when its best is there")
    p.add_argument("--grid_margin", type=float, default=0.02,
                   help="the grid picks a rate only if its best mean validation top-1 is this "
                   "far above chance (0.1); a negative value accepts any grid")
    p.add_argument("--proxy_steps", default="",
                   help="comma list of short budgets (steps, multiples of 10, each with its own "
                   "warmup and decay as the search's rungs): after the full runs, every model "
                   "trains --proxy_seeds seeds at each, at its chosen rate, and calibration.md "
                   "says how well each ranks the models as the full budget does")
    p.add_argument("--proxy_seeds", type=int, default=2)
    p.add_argument("--rise", type=float, default=0.01,
                   help="converged: validation top-1 rose less than this over the last 20%%")
    p.add_argument("--floor", type=float, default=0.1,
                   help="converged only this far above chance (0.1) at least; runs below it "
                   "are counted as 'at chance'")
    p.add_argument("--data_dir", default=None, help="data.cache_dir: where the images are "
                   "written once (default: the recipe's)")
    p.add_argument("--num_train", type=int, default=None,
                   help="training images per level (default: gin/debris.gin's)")
    p.add_argument("--num_eval", type=int, default=None,
                   help="validation and test images each (default: gin/debris.gin's)")
    p.add_argument("--workers", type=int, default=1, help="processes, one core each")
    p.add_argument("--report_only", action="store_true", help="train nothing; write the table")
    args = p.parse_args(argv)
    args.levels = args.levels.split(",")
    args.models = args.models.split(",")
    args.gin_models = dict(v.split("=", 1) if "=" in v else (v, "") for v in
                           args.gin_models.split(",") if v)
    try:
        args.gin_lrs = {name: gin_model_lr(name, path, args.width)
                        for name, path in args.gin_models.items()}
    except ValueError as e:
        p.error(str(e))
    args.lrs = [float(v) for v in args.lrs.split(",")]
    args.proxy_steps = sorted({int(v) for v in args.proxy_steps.split(",") if v})
    for what, values, allowed in (("levels", args.levels, ("light", "moderate", "heavy")),
                                  ("models", args.models, MODELS + tuple(args.gin_lrs))):
        bad = [v for v in values if v not in allowed]
        if bad:
            p.error(f"--{what}: unknown {', '.join(bad)} (choose from {', '.join(allowed)})")
    if args.grid_seeds < 1:
        p.error("--grid_seeds must be at least 1")
    if args.grid_steps % 2 or args.steps % 10:
        p.error("--grid_steps must be even and --steps a multiple of 10 (evaluation points)")
    bad = [v for v in args.proxy_steps if v % 10 or not 0 < v < args.steps]
    if bad:
        p.error(f"--proxy_steps: {bad} (each a multiple of 10 below --steps={args.steps})")
    if args.proxy_steps and not 2 <= args.proxy_seeds <= args.seeds:
        p.error("--proxy_seeds must lie in [2, --seeds]: the seed-to-seed ranking of the full "
                "runs is the ceiling the short budgets are judged against")
    os.makedirs(args.output_figures, exist_ok=True)
    args.widths = {m: matched_width(args.width, m) for m in MATCHED if m in args.models}
    if not args.report_only:
        from tpu_convrnn.data.sources import DataConfig
        for level in args.levels:  # written once, before the workers read them
            print(f"digit debris, {level}: writing or finding the images", flush=True)
            DataConfig(source="debris", augment="none", **data_bindings(args, level)).resolved()
        spawn = multiprocessing.get_context("spawn")  # TensorFlow is not fork-safe
        procs = [spawn.Process(target=worker, args=(args, i))
                 for i in range(args.workers)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join()
        failed = [proc.exitcode for proc in procs if proc.exitcode]
        if failed:
            sys.exit(f"a worker failed (exit {failed[0]}); see {args.output}/logs")
    print(report(args))
    print(f"wrote {args.output_figures}/table.md, accuracy_by_step.png, accuracy_by_level.png")
    if args.proxy_steps:
        print(calibration(args))
        print(f"wrote {args.output_figures}/calibration.md and calibration.png")
    stuck = at_chance(args, read_rows(args.csv))
    if stuck and args.report_only:  # (a design run before the rule may have full runs)
        print("\n".join(f"note: {line}" for line in stuck), file=sys.stderr)
    elif stuck:
        sys.exit("\n".join(f"occluded_digits.py: {line}" for line in stuck))


if __name__ == "__main__":
    main()
