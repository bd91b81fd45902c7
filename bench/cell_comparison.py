"""The paper's comparison of cell kinds (NeurIPS 2018 Fig. 2) at small scale, on this CPU.

    python bench/cell_comparison.py --output=runs/comparison --data=embedded --seeds=3

Models: the shallow base as a feedforward net, a wider feedforward control with about the
parameters of rgc_shallow, and the released shallow models' cells in conv3-conv5 (time decay,
SimpleRNN, GRU, LSTM, UGRNN, IntersectionRNN, reciprocal gated), and the two layer-normed cells
(LSTM, SimpleRNN) with the norms' epsilon at 1e-3 instead of 1e-12, all at ``--width`` of the
channels, T = ``--times`` with the image shown at every step, the same ``--steps`` and seeds.
Each run is ``python -m tpu_convrnn.main --mode=train_and_eval`` on a gin file written under
``--output`` (parameters and FLOPs from the search's own inspection of that file); a run with
metrics at its last step is not run again, and a killed one resumes from its checkpoint, so the
command continues where it stopped. Writes ``results.csv``, ``table.md`` (top-1 mean and s.e.m.
over seeds, parameters, FLOPs per training image) and ``comparison.png`` (top-1 against
parameters; top-1 by time step for each model).
"""
from __future__ import annotations

import argparse
import csv
import fcntl
import json
import math
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

CELLS = {"timedecay": "timedecay_shallow", "simplernn": "simplernn_shallow",
         "gru": "gru_shallow", "lstm": "lstm_shallow", "ugrnn": "ugrnn_shallow",
         "intersectionrnn": "intersectionrnn_shallow", "rgc": "rgc_shallow"}
# The released layer-normed cells with the norms' variance epsilon raised from the original's
# 1e-12: on the steps before the image arrives their pre-norm maps are constant, where the
# norm's slope is 1/sqrt(epsilon) (gradients of ~1e20 measured at 1e-12; RESULTS.md).
LN_EPSILON = 1e-3
LN_VARIANTS = {"lstm_ln1e-3": "lstm_shallow", "simplernn_ln1e-3": "simplernn_shallow"}
DATA = {"embedded": "gin/local.gin"}


def with_epsilon(base, eps):
    """``model.cells`` of ``base`` with every cell's ``layer_norm_epsilon`` set to ``eps``."""
    from tpu_convrnn.model import zoo
    return {n["name"]: {**n["memory"], "layer_norm_epsilon": eps}
            for n in zoo.released_graph(base)["nodes"] if n.get("memory")}


def gin_text(base, data, width, times, steps, seed, base_lr=None, clip_norm=None, cells=None):
    from tpu_convrnn.search.trial_gin import gin_value
    return "\n".join([
        f"include '{DATA[data]}'", f"model.base = '{base}'", f"model.width = {width!r}",
        f"model.times = {times}", "model.image_off = None", f"train.train_steps = {steps}",
        f"train.warmup_steps = {max(1, steps // 10)}", f"train.checkpoint_every = {steps}",
        f"train.seed = {seed}",
        # the original's searched per-element gradient clipping (gin/recipes/imagenet.gin): at
        # gin/local.gin's learning rate the feedforward nets diverge on debris without it
        # (both bindings written: gin/local.gin's own global-norm clipping is replaced)
        *((f"train.clip_norm = {clip_norm!r}", "train.clip_value = None") if clip_norm else
          ("train.clip_value = 0.32374580586841245", "train.clip_norm = None"))]
        + ([f"train.base_lr = {base_lr!r}"] if base_lr else [])
        + ([f"model.cells = {gin_value(cells)}"] if cells else []) + [""])


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


def matched_width(args, target_params):
    """The width of the shallow base whose parameter count is closest to ``target_params``."""
    from tpu_convrnn.search.trial_gin import inspect_gin
    lo, hi = args.width, args.width * 4
    probe = os.path.join(args.output, "gins", "width_probe.gin")
    for _ in range(10):
        mid = (lo + hi) / 2
        write(probe, gin_text("shallow_base", "embedded", mid, args.times, args.steps, 0))
        if inspect_gin(probe, filters_fit_maps=False)["params"] < target_params:
            lo = mid
        else:
            hi = mid
    return round((lo + hi) / 2, 4)


def models(args):
    """{name: (base graph, width, model.cells or None)}."""
    from tpu_convrnn.search.trial_gin import inspect_gin
    rgc = write(os.path.join(args.output, "gins", "rgc_probe.gin"),
                gin_text("rgc_shallow", "embedded", args.width, args.times, args.steps, 0))
    target = inspect_gin(rgc, filters_fit_maps=False)["params"]
    out = {"feedforward": ("shallow_base", args.width, None),
           "feedforward_wide": ("shallow_base", matched_width(args, target), None)}
    out.update({name: (base, args.width, None) for name, base in CELLS.items()})
    out.update({name: (base, args.width, with_epsilon(base, LN_EPSILON))
                for name, base in LN_VARIANTS.items()})
    return out


MISSING = "missing"  # a run not finished (and, with --report_only, not started)
BUSY = "busy"        # a run another process is training now (``wait=False``)


def train_gin(output, key, text, steps, train=True, wait=True):
    """Trains (or resumes) the gin ``text`` as ``<output>/runs/<key>`` to ``steps``; returns
    (gin path, metrics entry at ``steps``), or (gin path, None) for a run that diverged;
    with ``train=False`` an unfinished run is (gin path, MISSING); with ``wait=False`` a run
    that another process holds is (gin path, BUSY) instead of waited for."""
    from tpu_convrnn.files import write_atomic
    gin = os.path.join(output, "gins", f"{key}.gin")
    write_atomic(gin, text)  # another command may be starting a run of it
    model_dir = os.path.join(output, "runs", key)
    metrics = os.path.join(model_dir, "eval", "metrics.json")
    diverged = os.path.join(model_dir, "DIVERGED")

    def done():
        if not os.path.exists(metrics):
            return None
        entries = [e for e in json.load(open(metrics)) if e["step"] == steps]
        return entries[0] if entries else None
    os.makedirs(os.path.join(output, "logs"), exist_ok=True)
    log = os.path.join(output, "logs", f"{key}.log")
    with open(f"{log}.lock", "w") as lock:
        try:  # a second command (the calibration) waits for this run, or moves on
            fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            return gin, BUSY
        if done() is not None or os.path.exists(diverged):
            return gin, done()
        if not train:
            return gin, MISSING
        with open(log, "a") as f:
            code = subprocess.call([sys.executable, "-m", "tpu_convrnn.main", f"--gin_file={gin}",
                                    "--mode=train_and_eval", f"--model_dir={model_dir}"],
                                   stdout=f, stderr=subprocess.STDOUT, cwd=REPO)
        if code != 0 and "TrainingDiverged" in open(log).read():
            write(diverged, f"see {log}\n")
            return gin, None  # a result: recorded as diverged
    if code != 0 or done() is None:
        raise RuntimeError(f"{key} failed (exit {code}); see {log}")
    return gin, done()


def run_one(args, data, name, base, width, cells, seed, steps=None, lr=None):
    """One comparison run (``steps`` defaults to ``--steps``, ``lr`` to the first of
    ``--base_lr``); see ``train_gin``."""
    steps = steps or args.steps
    lr = lr or args.base_lr[0]
    key = f"{data}_{name}_seed{seed}_lr{lr:g}" + ("" if steps == args.steps else f"_steps{steps}")
    return train_gin(args.output, key, gin_text(base, data, width, args.times, steps, seed,
                                                 lr, args.clip_norm, cells), steps,
                     not args.report_only)


def final_train_loss(gin):
    """Mean training loss of the last three loops of the run of ``gin`` (from its log)."""
    log = gin.replace(os.sep + "gins" + os.sep, os.sep + "logs" + os.sep)[:-4] + ".log"
    losses = [float(line.split("loss ")[1].split()[0]) for line in open(log)
              if line.startswith("step ") and " loss " in line]
    return sum(losses[-3:]) / len(losses[-3:]) if losses else float("inf")


def tuned_lr(args, data, name, spec):
    """The learning rate of ``--base_lr`` whose seed-0 run ends at the lowest training loss
    (chosen on training data, not on the held-out images the table reports)."""
    if len(args.base_lr) == 1:
        return args.base_lr[0]
    losses = {}
    for lr in args.base_lr:
        gin, m = run_one(args, data, name, *spec, 0, lr=lr)
        if m is MISSING:
            return None
        losses[lr] = final_train_loss(gin) if m else float("inf")
    best = min(losses, key=losses.get)
    print(f"    {data} {name}: final training loss " + ", ".join(
        f"{v:.3f} at lr {k:g}" for k, v in losses.items()) + f" -> lr {best:g}", flush=True)
    return best


def summarise(rows):
    groups = {}
    for r in rows:
        groups.setdefault((r["data"], r["model"]), []).append(r)
    out = []
    for (data, model), rs in groups.items():
        ok = [r for r in rs if not math.isnan(r["top1"])]
        accs = [r["top1"] for r in ok]
        mean = sum(accs) / len(accs) if accs else float("nan")
        sem = (math.sqrt(sum((a - mean) ** 2 for a in accs) / (len(accs) - 1) / len(accs))
               if len(accs) > 1 else float("nan"))
        per_step = [sum(s) / len(s) for s in zip(*[r["top1_per_step"] for r in ok])]
        out.append({"data": data, "model": model, "seeds": len(ok), "diverged": len(rs) - len(ok),
                    "top1": mean, "sem": sem, "params": rs[0]["params"],
                    "gflop": rs[0]["gflop"], "lr": rs[0]["lr"], "per_step": per_step})
    return out


def write_outputs(args, rows):
    with open(os.path.join(args.output, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, ["data", "model", "seed", "lr", "top1", "params", "gflop",
                               "top1_per_step"])
        w.writeheader()
        w.writerows([{**r, "top1_per_step": " ".join(f"{a:.3f}" for a in r["top1_per_step"])}
                     for r in rows])
    summary = summarise(rows)
    lines = ["| data | model | top-1 (mean +- s.e.m.) | seeds (diverged) | parameters | "
             "GFLOP/img | base_lr |", "|---|---|---|---|---|---|---|"]
    for s in sorted(summary, key=lambda s: (s["data"], -1 if math.isnan(s["top1"])
                                            else s["top1"])):
        lines.append(f"| {s['data']} | {s['model']} | {s['top1']:.3f} +- {s['sem']:.3f} | "
                     f"{s['seeds']} ({s['diverged']}) | {s['params']:,} | {s['gflop']:.3g} | "
                     f"{s['lr']:g} |")
    table = "\n".join(lines)
    write(os.path.join(args.output, "table.md"), table + "\n")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    datasets = sorted({s["data"] for s in summary})
    fig, ax = plt.subplots(len(datasets), 2, figsize=(12, 4.2 * len(datasets)), squeeze=False)
    for i, data in enumerate(datasets):
        ss = [s for s in summary if s["data"] == data]
        for s in ss:
            if math.isnan(s["top1"]):
                continue
            ax[i, 0].errorbar(s["params"], s["top1"], yerr=0 if math.isnan(s["sem"]) else
                              s["sem"], fmt="o")
            ax[i, 0].annotate(s["model"], (s["params"], s["top1"]), fontsize=7)
            ax[i, 1].plot(s["per_step"], label=s["model"])
        ax[i, 0].set(xscale="log", xlabel="parameters", ylabel="held-out top-1",
                     title=f"{data}: top-1 against parameters (mean +- s.e.m.)")
        ax[i, 1].set(xlabel="time step", ylabel="held-out top-1",
                     title=f"{data}: top-1 by time step")
        ax[i, 1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(args.output, "comparison.png"), dpi=90)
    plt.close(fig)
    return table


def add_recipe_flags(p):
    p.add_argument("--report_only", action="store_true",
                   help="train nothing: write the outputs from the runs finished so far")
    p.add_argument("--base_lr", type=lambda v: [float(x) for x in v.split(",")],
                   default=[0.1, 0.4], help="train.base_lr per 256 images; with several, each "
                   "model takes the one with the lowest final training loss on seed 0")
    p.add_argument("--clip_norm", type=float, default=None,
                   help="global-norm gradient clipping instead of the original's per-element")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--output", required=True)
    p.add_argument("--data", default="embedded", help="comma list of: embedded (MNIST-5k)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--width", type=float, default=0.125)
    p.add_argument("--times", type=int, default=10)
    p.add_argument("--models", default=None, help="comma list (default: all)")
    add_recipe_flags(p)
    args = p.parse_args(argv)
    for d in args.data.split(","):
        if d not in DATA:
            p.error(f"--data: unknown dataset {d!r} (choose from {', '.join(DATA)})")
    from tpu_convrnn.search.trial_gin import inspect_gin
    table = models(args)
    names = args.models.split(",") if args.models else list(table)
    unknown = [n for n in names if n not in table]
    if unknown:
        p.error(f"--models: unknown {unknown} (choose from {', '.join(table)})")
    rows, total, k = [], len(args.data.split(",")) * len(names) * args.seeds, 0
    for data in args.data.split(","):
        lrs = {}
        for seed, name in [(s, n) for s in range(args.seeds) for n in names]:  # seed 0 first
            if name not in lrs:
                lrs[name] = tuned_lr(args, data, name, table[name])
            base, width, cells = table[name]
            k += 1
            gin, m = (None, MISSING) if lrs[name] is None else \
                run_one(args, data, name, base, width, cells, seed, lr=lrs[name])
            if m is MISSING:
                continue  # --report_only: not finished yet
            info = inspect_gin(gin, filters_fit_maps=False)
            m = m or {"top1": float("nan"), "top1_per_step": []}
            rows.append({"data": data, "model": name, "seed": seed, "lr": lrs[name],
                         "top1": m["top1"],
                         "params": info["params"], "gflop": info["flops_train_step"] / 1e9,
                         "top1_per_step": m["top1_per_step"]})
            print(f"[{k}/{total}] {data} {name} (width {width}) seed {seed}: " + (
                  "diverged" if math.isnan(m["top1"]) else f"top1 {m['top1']:.4f}") +
                  f", {info['params']:,} params", flush=True)
    print(write_outputs(args, rows))
    print(f"wrote {args.output}/results.csv, table.md and comparison.png")


if __name__ == "__main__":
    main()
