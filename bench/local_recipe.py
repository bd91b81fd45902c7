"""Does the CPU recipe ``gin/local.gin`` train every released model, and how much does
README's main job vary?

    python bench/local_recipe.py                          # both parts, as README reports them
    python bench/local_recipe.py --models=rgc_shallow --repeats=0 --seeds=0
    python bench/local_recipe.py --report_only            # the tables from the CSV

1. **Every released model** (``zoo.RELEASED_MODELS``): ``gin/models/<name>.gin`` then
   ``gin/local.gin``, trained for the recipe's ``train.train_steps`` (``--steps`` overrides),
   then evaluated: finished or diverged (``TrainingDiverged``), the last loops' training
   loss, held-out top-1, wall time.
2. **README's main job** (its first command's gin files): ``--repeats`` fresh runs of the same
   command (seed 0: what this machine repeats) and ``--seeds`` runs with ``train.seed`` =
   1.. (what another install, CPU or initialisation order can move it by): top-1 at the last
   step, mean, s.d. and range.

Runs go through ``python -m tpu_convrnn.main`` (``bench/cell_comparison.train_gin``: a model
run resumed after a kill, a main-job run started afresh; a diverged run recorded as such). Results: ``bench/local_recipe/runs.csv``, one
row per run, keyed by a hash of the gin text, so a changed recipe is run again and a finished
run is never repeated.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
FIELDS = ["part", "model", "seed", "repeat", "recipe", "steps", "status", "final_loss",
          "top1", "wall_s"]


def readme_gin_files():
    """The --gin_file arguments of README's first command."""
    text = open(os.path.join(REPO, "README.md")).read()
    first = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    return re.findall(r"--gin_file=(\S+)", first)


def gin_text(gin_files, steps, seed):
    lines = [f"include '{g}'" for g in gin_files]
    if steps:
        lines.append(f"train.train_steps = {steps}")
    if seed:
        lines.append(f"train.seed = {seed}")
    return "\n".join(lines) + "\n"


def recipe_hash(gin_files, text):
    """Changes when the gin text or any included file changes."""
    h = hashlib.sha1(text.encode())
    for g in gin_files:
        h.update(open(os.path.join(REPO, g), "rb").read())
    return h.hexdigest()[:10]


def plan(args):
    """(part, model, seed, repeat, gin files) of every run of this command."""
    main = readme_gin_files()
    runs = [("main_job", "readme", 0, r, main) for r in range(args.repeats)]
    runs += [("main_job", "readme", s, 0, main) for s in range(1, args.seeds + 1)]
    return runs + [("models", m, 0, 0, [f"gin/models/{m}.gin", "gin/local.gin"])
                   for m in args.models]


def run_all(args, rows):
    from cell_comparison import final_train_loss, train_gin
    from occluded_digits import append_row
    done = {(r["part"], r["model"], r["seed"], r["repeat"], r["recipe"]) for r in rows}
    for part, model, seed, repeat, gin_files in plan(args):
        text = gin_text(gin_files, args.steps, seed)
        recipe = recipe_hash(gin_files, text)
        if (part, model, str(seed), str(repeat), recipe) in done:
            continue
        key = f"{part}_{model}_seed{seed}_repeat{repeat}_{recipe}"
        print(f"{part}: {model} seed {seed} repeat {repeat} ...", flush=True)
        t0 = time.time()
        steps = args.steps or recipe_steps(gin_files)
        if part == "main_job":  # a repeat measures a fresh run: one cut off is started again
            shutil.rmtree(os.path.join(args.output, "runs", key), ignore_errors=True)
        gin, metrics = train_gin(args.output, key, text, steps)
        row = {"part": part, "model": model, "seed": seed, "repeat": repeat,
               "recipe": recipe, "steps": steps, "wall_s": round(time.time() - t0),
               "status": "diverged" if metrics is None else "done",
               "final_loss": f"{final_train_loss(gin):.4f}",
               "top1": "" if metrics is None else f"{metrics['top1']:.4f}"}
        print(f"  {row['status']}: loss {row['final_loss']}, top1 {row['top1'] or '-'}, "
              f"{row['wall_s']} s", flush=True)
        rows.append(row)
        append_row(args.csv, row, FIELDS)
    return rows


def recipe_steps(gin_files):
    """``train.train_steps`` as the gin files set it (the last binding wins)."""
    steps = None
    for g in gin_files:
        for line in open(os.path.join(REPO, g)):
            m = re.match(r"\s*train\.train_steps\s*=\s*(\d+)", line)
            steps = int(m.group(1)) if m else steps
    return steps


def report(args, rows):
    current = {recipe_hash(g, gin_text(g, args.steps, s)) for _, _, s, _, g in plan(args)}
    rows = [r for r in rows if r["recipe"] in current]
    models = [r for r in rows if r["part"] == "models"]
    lines = ["| model | steps | status | training loss (last loops) | top-1 | wall s |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['steps']} | {r['status']} | {r['final_loss']} | "
              f"{r['top1'] or '-'} | {r['wall_s']} |" for r in models]
    diverged = [r["model"] for r in models if r["status"] != "done"]
    lines.append(f"\n{len(models)} models, {len(diverged)} diverged"
                 + (f": {', '.join(diverged)}" if diverged else ""))
    for label, sel in (("seed 0, repeated", lambda r: r["seed"] == "0"),
                       ("seeds 1..", lambda r: r["seed"] != "0")):
        top1 = [float(r["top1"]) for r in rows if r["part"] == "main_job" and sel(r)
                and r["top1"]]
        if top1:
            sd = statistics.stdev(top1) if len(top1) > 1 else 0.0
            lines.append(f"README main job, {label}: top-1 {', '.join(f'{t:.3f}' for t in top1)}"
                         f" (mean {statistics.mean(top1):.3f}, s.d. {sd:.3f}, range "
                         f"{min(top1):.3f}-{max(top1):.3f})")
    print("\n".join(lines))


def main(argv=None):
    from tpu_convrnn.model.zoo import RELEASED_MODELS
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--models", default=",".join(RELEASED_MODELS),
                   help="comma list of released models (empty: none)")
    p.add_argument("--steps", type=int, default=None,
                   help="train.train_steps (default: the recipe's)")
    p.add_argument("--repeats", type=int, default=3,
                   help="fresh runs of README's main job at seed 0")
    p.add_argument("--seeds", type=int, default=3,
                   help="runs of README's main job at train.seed = 1..N")
    p.add_argument("--output", default="runs/local_recipe", help="model dirs, gins, logs")
    p.add_argument("--csv", default=os.path.join(HERE, "local_recipe", "runs.csv"),
                   help="one row per finished run (kept in the repository)")
    p.add_argument("--report_only", action="store_true", help="train nothing")
    args = p.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    unknown = sorted(set(args.models) - set(RELEASED_MODELS))
    if unknown:
        p.error(f"--models: not released models: {', '.join(unknown)}")
    from occluded_digits import read_rows
    rows = read_rows(args.csv)
    if not args.report_only:
        rows = run_all(args, rows)
    report(args, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
