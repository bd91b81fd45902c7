"""The search's own overhead: many workers on one PostgreSQL study with a zero-cost objective.

    python bench/search_overhead.py --workers=32 --trials=1000 [--space=gin/search/small.gin]

Starts a throwaway PostgreSQL server (``tpu_convrnn.search.local_postgres``), creates the study
as a worker does (``study.open_study``: multivariate grouped TPE with the constant liar, ASHA),
then starts ``--workers`` processes that ask, sample the real space (``sample.suggest``), tell a
zero-cost objective and record their latencies. Prints trials/s, ask and tell latency p50/p99
over the last 200 trials and overall, and duplicates (identical parameter sets: must be 0).

    python bench/search_overhead.py --real_search=runs/small --console=search_console.txt

reads a real search instead and splits the workers' rung time (the console's "rung k/n (...
steps): top1 ... in N s" lines) into the parts the rungs' typed results
(``<study_dir>/rungs/*.json``, ``RungResult.seconds``) record: the runner's start-up and
imports, the model build, the first loop's compile, training steps, checkpoints, evaluation,
and the worker's own share (storage, waiting). A study run before rungs had typed results is
split from its trial logs instead (training steps, the compile, the rest).
"""
from __future__ import annotations

import argparse
import glob
import json
import multiprocessing as mp
import os
import re
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "numpy")  # the workers need no TensorFlow
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def _setup(space_file):
    from tpu_convrnn.search.config import configured
    space, cfg = configured([space_file])
    cfg.heartbeat_interval, cfg.grace_period = 60, 120
    return space, cfg


def _worker(index, url, space_file, target, out):
    import optuna

    from tpu_convrnn.search import sample, study as study_lib
    space, cfg = _setup(space_file)
    storage = study_lib.open_storage(url, cfg, with_heartbeat=False)
    study, _ = study_lib.open_study(space, cfg, storage, "overhead", index)
    rows = []
    while True:
        t0 = time.perf_counter()
        trial = study.ask()
        params = sample.suggest(trial, space)
        t1 = time.perf_counter()
        value = (hash(json.dumps(params, sort_keys=True)) % 1000) / 1000  # zero-cost objective
        study.tell(trial, value)
        t2 = time.perf_counter()
        rows.append((trial.number, t1 - t0, t2 - t1, time.time()))
        if trial.number + 1 >= target:
            break
    with open(out, "w") as f:
        json.dump(rows, f)
    return len(rows)


def _pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def real_search_shares(study_dir, console):
    """(rung wall s, training-step s, first-loop compile s) of a finished search. A loop's
    time is its steps / its images/s; the first loop of a rung holds the compile, so steps are
    timed at the median rate of the later loops (of the search, where a rung has one loop)."""
    wall = sum(float(m) for m in re.findall(r"rung \d+/\d+ \(\d+ steps\): top1 \S+ in (\d+) s",
                                            open(console).read()))
    rungs = []
    for name in sorted(os.listdir(os.path.join(study_dir, "logs"))):
        text = open(os.path.join(study_dir, "logs", name)).read()
        batch = int(re.search(r"global batch (\d+)", text).group(1))
        loops, prev = [], 0
        for m in re.finditer(r"^step (\d+)/\d+ .* ([\d,.]+) images/s", text, re.M):
            step, rate = int(m.group(1)), float(m.group(2).replace(",", ""))
            if step <= prev:  # a resumed run starts again
                prev = 0
            loops.append((step - prev, (step - prev) * batch / rate, rate))
            prev = step
        if loops:
            rungs.append((batch, loops))
    later = sorted(rate for _, loops in rungs for _, _, rate in loops[1:])
    rate = later[len(later) // 2]
    train = sum(n * batch / rate for batch, loops in rungs for n, _, _ in loops)
    compile_ = sum(max(0.0, loops[0][1] - loops[0][0] * batch / rate) for batch, loops in rungs)
    return wall, train, compile_


PARTS = ("startup", "build", "compile", "train", "save", "eval")


def typed_rung_shares(study_dir, console):
    """(rung wall s, {part: s}) from the rungs' typed results; the worker's share is the rung
    wall time the results do not account for."""
    wall = sum(float(m) for m in re.findall(r"rung \d+/\d+ \(\d+ steps\): top1 \S+ in (\d+) s",
                                            open(console).read()))
    parts = dict.fromkeys(PARTS, 0.0)
    accounted = 0.0
    for path in glob.glob(os.path.join(study_dir, "rungs", "*.json")):
        seconds = json.load(open(path))["seconds"]
        for k in PARTS:
            parts[k] += seconds.get(k, 0.0)
        accounted += seconds.get("total", 0.0) + seconds.get("startup", 0.0)
    parts["worker"] = max(0.0, wall - accounted)
    return wall, parts


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=32)
    p.add_argument("--trials", type=int, default=1000)
    p.add_argument("--space", default=os.path.join(os.path.dirname(HERE), "gin", "search",
                                                   "small.gin"))
    p.add_argument("--real_search", default=None, help="a finished search's --study_dir")
    p.add_argument("--console", default=None, help="its workers' console output")
    args = p.parse_args()
    if args.real_search and os.path.isdir(os.path.join(args.real_search, "rungs")):
        wall, parts = typed_rung_shares(args.real_search, args.console)
        print(f"{wall:.0f} s of rungs: " + ", ".join(
            f"{k} {v:.0f} s ({v / wall:.0%})" for k, v in parts.items()) +
            f"; training steps are {parts['train'] / wall:.0%} of the rung wall time")
        return
    if args.real_search:
        wall, train, compile_ = real_search_shares(args.real_search, args.console)
        print(f"{wall:.0f} s of rungs: training steps {train:.0f} s ({train / wall:.0%}), "
              f"first-loop compile {compile_:.0f} s ({compile_ / wall:.0%}), the rest "
              f"{wall - train - compile_:.0f} s ({(wall - train - compile_) / wall:.0%}: process "
              "start, imports, model build, evaluation, storage)")
        return
    import optuna

    from tpu_convrnn.search import study as study_lib
    from tpu_convrnn.search.local_postgres import LocalPostgres
    with LocalPostgres() as pg:
        space, cfg = _setup(args.space)
        study_lib.open_study(space, cfg, study_lib.open_storage(pg.url, cfg, False),
                             "overhead")
        outs = [f"/tmp/overhead_{os.getpid()}_{i}.json" for i in range(args.workers)]
        t0 = time.time()
        ctx = mp.get_context("spawn")
        procs = [ctx.Process(target=_worker, args=(i, pg.url, args.space, args.trials, outs[i]))
                 for i in range(args.workers)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join()
        rows = [r for o in outs if os.path.exists(o) for r in json.load(open(o))]
        study = optuna.load_study(study_name="overhead", storage=pg.url)
        trials = study.get_trials(deepcopy=False)
        keys = [json.dumps(t.params, sort_keys=True) for t in trials]
        first = min(r[3] - r[1] - r[2] for r in rows)
        wall = max(r[3] for r in rows) - first
        late = [r for r in rows if r[0] >= args.trials - 200]
        print(f"{args.workers} workers, {len(trials)} trials on PostgreSQL in {wall:.1f} s "
              f"after the first ask (process start-up {first - t0:.1f} s): "
              f"{len(trials) / wall:.2f} trials/s")
        for label, sel in (("all trials", rows), (f"trials >= {args.trials - 200}", late)):
            print(f"  {label}: ask+sample p50 {_pct([r[1] for r in sel], .5) * 1e3:.0f} ms, "
                  f"p99 {_pct([r[1] for r in sel], .99) * 1e3:.0f} ms; tell p50 "
                  f"{_pct([r[2] for r in sel], .5) * 1e3:.0f} ms, p99 "
                  f"{_pct([r[2] for r in sel], .99) * 1e3:.0f} ms")
        print(f"  duplicate parameter sets: {len(keys) - len(set(keys))}; trial numbers "
              f"repeated: {len(rows) - len({r[0] for r in rows})}")
        for o in outs:
            if os.path.exists(o):
                os.remove(o)


if __name__ == "__main__":
    main()
