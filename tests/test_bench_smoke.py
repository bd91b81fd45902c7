"""Benchmarks run end to end at a tiny size (figures are printed, never asserted)."""
import argparse
import csv
import os
import re
import subprocess
import sys

from jax_subprocess import needs_jax, run_command_under_jax

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_input_pipeline_benchmark_runs():
    proc = subprocess.run([sys.executable, "bench/input_pipeline.py", "--images", "16",
                           "--batch", "4", "--batches", "1", "--size", "32"], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ratio pipeline / baseline:" in proc.stdout


def test_train_step_benchmark_runs():
    proc = subprocess.run([sys.executable, "bench/train_step.py", "--model=rgc_intermediate",
                           "--baseline=rgc_intermediate_scaffold", "--image_size=32",
                           "--times=12", "--batch=2", "--steps=1", "--repeats=1", "--warmup=0"],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "images/s" in proc.stdout and "recurrence_overhead =" in proc.stdout
    assert "work elimination at batch 2:" in proc.stdout


def test_rerun_benchmark_finds_the_same_seed_starts_from_the_same_weights(tmp_path):
    # The initial weights follow from train.seed alone: two fresh processes must agree to the
    # bit. What training does after that is TensorFlow's round-off (printed, not asserted).
    proc = subprocess.run([sys.executable, "bench/rerun.py",
                           "--gin_file=gin/models/spoerer_bl.gin", "--gin_file=gin/local.gin",
                           "--gin_param=model.times = 6", "--gin_param=train.global_batch = 8",
                           "--steps=2", "--runs=2", "--threads=1", f"--output={tmp_path}"],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    init, = [l for l in proc.stdout.splitlines() if l.startswith("initial weights") and
             "against run 1" in l]
    assert re.search(r": 0 of [1-9][0-9]* float variables differ$", init), init
    trained, = [l for l in proc.stdout.splitlines() if l.startswith("after 2 step(s): run 2")]
    assert re.search(r": [0-9]+ of [1-9][0-9]* float variables differ", trained), trained


@needs_jax
def test_depthwise_benchmark_runs_under_jax():
    out = run_command_under_jax([sys.executable, "bench/depthwise.py", "--batch=1",
                                 "--scale=0.15", "--repeats=1", "--dtype=float32"], cwd=REPO)
    assert "total rows" in out and "\nbest " in out


def test_gpu_session_script_is_shellcheck_clean():  # shellcheck comes with the test extra
    proc = subprocess.run(["shellcheck", os.path.join(REPO, "bench", "gpu.sh")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_neural_fit_benchmark_runs():
    proc = subprocess.run([sys.executable, "bench/neural_fit.py", "--stimuli=200", "--sites=8",
                           "--dims=50", "--bins=2", "--splits=2"], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "s per bin x split); peak RSS" in proc.stdout


def test_cell_comparison_runs_end_to_end(tmp_path):
    args = [sys.executable, "bench/cell_comparison.py", f"--output={tmp_path}", "--data=embedded",
            "--seeds=1", "--steps=2", "--models=feedforward", "--base_lr=0.1,0.4",
            "--width=0.0625", "--times=7"]
    proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| embedded | feedforward |" in proc.stdout
    assert "embedded feedforward: final training loss" in proc.stdout  # the lr was chosen
    for name in ("results.csv", "table.md", "comparison.png"):
        assert os.path.getsize(tmp_path / name) > 0


def _occluded_digits():
    sys.path.insert(0, os.path.join(REPO, "bench"))
    try:
        import occluded_digits
    finally:
        sys.path.pop(0)
    return occluded_digits


def test_occluded_digit_grid_picks_by_the_mean_over_its_seeds_and_only_above_chance():
    bench = _occluded_digits()
    args = argparse.Namespace(lrs=[0.1, 0.8], grid_steps=6, grid_seeds=2, grid_margin=0.02,
                              grid_extend=0)

    def grid(values):  # {(lr, seed): validation top-1}
        return [{"level": "moderate", "model": "bl", "phase": "grid", "steps": "6",
                 "lr": str(lr), "seed": str(seed), "val_top1": str(v)}
                for (lr, seed), v in values.items()]
    # 0.8 is best on seed 0 but diverges (nan) on seed 1: the mean picks 0.1.
    rows = grid({(0.1, 0): 0.20, (0.1, 1): 0.22, (0.8, 0): 0.30, (0.8, 1): float("nan")})
    assert bench.grid_means(rows, "moderate", "bl", args) == {0.1: 0.21, 0.8: 0.15}
    assert bench.chosen_lr(rows, "moderate", "bl", args) == (0.1, "picked")
    # A missing grid run: no pick yet.
    assert bench.chosen_lr(rows[:3], "moderate", "bl", args) == (None, "pending")
    # Every rate within the margin of chance (0.1): the grid cannot tell them apart.
    rows = grid({(0.1, 0): 0.11, (0.1, 1): 0.12, (0.8, 0): 0.13, (0.8, 1): 0.10})
    assert bench.chosen_lr(rows, "moderate", "bl", args) == (None, "at chance")
    args.grid_margin = 0.01  # 0.115 against a threshold of 0.11: ties go to the smaller rate
    assert bench.chosen_lr(rows, "moderate", "bl", args) == (0.1, "picked")


def test_occluded_digit_grid_grows_past_an_edge_while_its_best_rate_is_there():
    bench = _occluded_digits()
    args = argparse.Namespace(lrs=[0.4, 0.1, 0.2], grid_steps=6, grid_seeds=1, grid_margin=0.02,
                              grid_extend=2)

    def rows(values):  # {lr: validation top-1}, seed 0
        return [{"level": "light", "model": "bl", "phase": "grid", "steps": "6", "lr": str(lr),
                 "seed": "0", "val_top1": str(v)} for lr, v in values.items()]

    def rates_and_pick(values):
        r = rows(values)
        return (bench.grid_rates(bench.grid_means(r, "light", "bl", args), args),
                bench.chosen_lr(r, "light", "bl", args))
    inside = {0.1: 0.5, 0.2: 0.7, 0.4: 0.6}
    assert rates_and_pick(inside) == ([0.1, 0.2, 0.4], (0.2, "picked"))
    # the best is the largest rate: 0.8 is added and the pick waits for it
    top = {0.1: 0.5, 0.2: 0.6, 0.4: 0.7}
    assert rates_and_pick(top) == ([0.1, 0.2, 0.4, 0.8], (None, "pending"))
    assert rates_and_pick({**top, 0.8: 0.65}) == ([0.1, 0.2, 0.4, 0.8], (0.4, "picked"))
    # still rising at 0.8 and 1.6: two growths at most, then the best of what ran
    assert rates_and_pick({**top, 0.8: 0.75, 1.6: 0.8}) == ([0.1, 0.2, 0.4, 0.8, 1.6],
                                                             (1.6, "picked"))
    # the best is the smallest rate: 0.05 is added
    assert rates_and_pick({0.1: 0.7, 0.2: 0.6, 0.4: 0.5})[0] == [0.05, 0.1, 0.2, 0.4]


def test_occluded_digit_figures_give_each_model_its_own_style_in_every_subplot():
    bench = _occluded_digits()
    models = [f"m{i}" for i in range(14)]
    style = bench.model_styles(models)
    pairs = [(s["color"], s["ls"]) for s in style.values()]
    assert len(set(pairs)) == len(models)            # no two models drawn alike past ten
    # a model's style follows the models list, not the order a subplot happens to draw in
    assert bench.model_styles(models)["m3"] == style["m3"]
    assert bench.model_styles(models[:5] + ["m3"]) == bench.model_styles(models[:5])


def test_occluded_digit_table_holds_only_its_own_designs_full_runs(tmp_path):
    # Two designs share the full budget (24 steps) but not the grid (4 or 6 steps), whose
    # best rates differ; a third has a seed more. Each table holds its own runs only.
    bench = _occluded_digits()
    args = argparse.Namespace(
        csv=str(tmp_path / "runs.csv"), output_figures=str(tmp_path), levels=["moderate"],
        models=["b"], width=0.5, lrs=[0.1, 0.8], grid_steps=6, grid_seeds=1, grid_margin=0.02,
        steps=24, seeds=1, floor=0.1, grid_extend=0)

    def row(phase, lr, seed, steps, val, test=""):
        return {**dict.fromkeys(bench.FIELDS, ""), "level": "moderate", "model": "b",
                "width": "0.5", "phase": phase, "seed": str(seed), "lr": str(lr),
                "steps": str(steps), "params": "10", "mflop": "1", "val_top1": str(val),
                "converged": "True", "test_top1": str(test), "wall_s": "1",
                "test_top1_per_step": " ".join([str(test)] * 6) if test else ""}
    rows = [row("grid", 0.1, 0, 6, 0.3), row("grid", 0.8, 0, 6, 0.2),   # picks 0.1
            row("grid", 0.1, 0, 4, 0.2), row("grid", 0.8, 0, 4, 0.3),   # picks 0.8
            row("full", 0.1, 0, 24, 0.5, 0.41), row("full", 0.8, 0, 24, 0.5, 0.63),
            row("full", 0.1, 1, 24, 0.5, 0.47)]
    for r in rows:
        bench.append_row(args.csv, r)
    table = bench.report(args)
    assert "| 1 (1) | 0.410 +- nan |" in table and "0.630" not in table
    args.grid_steps = 4
    assert "| 1 (1) | 0.630 +- nan |" in bench.report(args)
    args.grid_steps, args.seeds = 6, 2
    assert "| 2 (2) | 0.440 +- 0.030 |" in bench.report(args)


def test_occluded_levels_figure_takes_each_levels_design_and_marks_grid_only_levels(tmp_path):
    sys.path.insert(0, os.path.join(REPO, "bench"))
    import occluded_levels
    bench = occluded_levels.od

    def row(level, phase, lr, seed, steps, val, test=""):
        return {**dict.fromkeys(bench.FIELDS, ""), "level": level, "model": "bl",
                "width": "0.5", "phase": phase, "seed": str(seed), "lr": str(lr),
                "steps": str(steps), "val_top1": str(val), "test_top1": str(test)}
    rows = [row("light", "grid", lr, 0, 1500, v) for lr, v in
            ((0.1, 0.6), (0.2, 0.7), (0.4, 0.75), (0.8, 0.5))]            # picks 0.4
    rows += [row("light", "full", 0.4, s, 6000, 0.8, t) for s, t in ((0, 0.84), (1, 0.86))]
    rows += [row("light", "full", 0.2, 0, 6000, 0.8, 0.99)]              # not the pick
    rows += [row("light", "full", 0.4, 0, 24000, 0.8, 0.99)]             # another budget
    rows += [row("heavy", "grid", lr, s, 6000, v) for lr, s, v in
             ((0.1, 0, 0.10), (0.2, 0, 0.11), (0.4, 0, 0.09), (0.8, 0, 0.10))]
    got = occluded_levels.points(rows)["bl"]
    assert abs(got["light"][0] - 0.85) < 1e-9 and got["light"][2] is True  # the pick's mean
    assert got["heavy"] == (0.11, got["heavy"][1], False)         # grid only: hollow
    path = tmp_path / "levels.csv"
    for r in rows:
        bench.append_row(str(path), r)
    occluded_levels.main([f"--csv={path}", f"--output={tmp_path / 'levels.png'}"])
    assert os.path.getsize(tmp_path / "levels.png") > 0


def test_occluded_digit_comparison_extends_its_table_instead_of_starting_over(tmp_path):
    def run(seeds, margin=-1.0, code=0, extra=()):
        args = [sys.executable, "bench/occluded_digits.py", f"--output={tmp_path / 'runs'}",
                f"--csv={tmp_path / 'runs.csv'}", f"--output_figures={tmp_path}",
                "--levels=light", "--models=b,bl", "--lrs=0.1,0.4", f"--seeds={seeds}",
                "--steps=20", "--grid_steps=4", "--grid_extend=0", "--num_train=64",
                "--num_eval=32",
                f"--data_dir={tmp_path / 'data'}", "--workers=2", f"--grid_margin={margin}",
                *extra]
        proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=1500)
        assert proc.returncode == code, proc.stdout[-2000:] + proc.stderr[-2000:]
        with open(tmp_path / "runs.csv") as f:
            return proc.stdout + proc.stderr, list(csv.DictReader(f))
    # A grid that no top-1 can clear (chance + 1): no rate is picked, no full run starts, and
    # the command says which grids and what to change.
    out, rows = run(1, margin=1.0, code=1)
    assert {r["phase"] for r in rows} == {"grid"} and len(rows) == 4
    for model in ("b", "bl"):
        assert f"light/{model}: the learning-rate grid (4 steps, 1 seed(s)) stayed within" in out
    assert "raise --grid_steps" in out
    out, rows = run(1)  # any grid accepted: the grid's rows are reused, the full runs train
    assert sorted((r["model"], r["phase"], r["lr"]) for r in rows if r["phase"] == "grid") == [
        ("b", "grid", "0.1"), ("b", "grid", "0.4"), ("bl", "grid", "0.1"), ("bl", "grid", "0.4")]
    full = [r for r in rows if r["phase"] == "full"]
    assert sorted(r["model"] for r in full) == ["b", "bl"]
    for r in full:  # scored on the test split at every one of the 6 steps
        assert 0 <= float(r["test_top1"]) <= 1 and len(r["test_top1_per_step"].split()) == 6
    assert "| bl - b | 1 |" in out
    out, more = run(2)  # a second seed: only the new runs train
    assert more[:len(rows)] == rows and len(more) == len(rows) + 2
    assert {r["seed"] for r in more[len(rows):]} == {"1"}
    assert "| bl - b | 2 |" in out
    for name in ("table.md", "accuracy_by_step.png", "accuracy_by_level.png"):
        assert os.path.getsize(tmp_path / name) > 0
    out, proxy = run(2, extra=["--proxy_steps=10"])  # after the full runs: 2 seeds a model
    assert proxy[:len(more)] == more and sorted(
        (r["model"], r["phase"], r["steps"], r["seed"]) for r in proxy[len(more):]) == [
        (m, "proxy", "10", s) for m in ("b", "bl") for s in ("0", "1")]
    assert "fewer than 3 models ranked" in out and os.path.getsize(tmp_path / "calibration.png")
    # a model a gin file defines (a search's best.gin): its file's rate, no grid, the same seeds
    found = tmp_path / "best.gin"
    found.write_text("include 'gin/models/spoerer_bl.gin'\ninclude 'gin/debris.gin'\n"
                     "model.width = 1.0\ntrain.base_lr = 0.2\n")
    out, searched = run(2, extra=[f"--gin_models=found={found}", "--models=b,bl,found"])
    assert searched[:len(proxy)] == proxy and sorted(
        (r["model"], r["phase"], r["lr"], r["seed"]) for r in searched[len(proxy):]) == [
        ("found", "full", "0.2", "0"), ("found", "full", "0.2", "1")]
    assert "| found | " in out and "| 0.2 (searched) |" in out and "| found - bl | 2 |" in out


def test_occluded_digit_gin_models_are_checked_before_anything_trains(tmp_path):
    def error(spec, width="1.0"):
        proc = subprocess.run([sys.executable, "bench/occluded_digits.py", f"--gin_models={spec}",
                               f"--output={tmp_path}", f"--csv={tmp_path / 'runs.csv'}",
                               f"--width={width}"], cwd=REPO, capture_output=True, text=True)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert not os.path.exists(tmp_path / "runs.csv")
        return proc.stderr.strip().splitlines()[-1]
    good = tmp_path / "best.gin"
    good.write_text("include 'gin/models/spoerer_bl.gin'\nmodel.width = 0.5\n"
                    "train.base_lr = 0.3\n")
    assert f"--gin_models found={good}: model.width = 0.5, not --width=1" in error(
        f"found={good}")
    assert f"--gin_models bl={good}: give each file a name of its own" in error(f"bl={good}")
    assert f"--gin_models found={tmp_path}/none.gin: no such file" in error(
        f"found={tmp_path}/none.gin")
    bad = tmp_path / "bad.gin"
    bad.write_text("model.widht = 0.5\n")
    assert f"--gin_models found={bad}: " in error(f"found={bad}") and "widht" in error(
        f"found={bad}")


def test_occluded_digit_calibration_ranks_against_the_seed_to_seed_ceiling(tmp_path):
    bench = _occluded_digits()
    args = argparse.Namespace(
        csv=str(tmp_path / "runs.csv"), output_figures=str(tmp_path), levels=["light"],
        models=["b", "b_k", "b_f", "bl", "bt"], width=0.5, lrs=[0.2], grid_steps=6,
        grid_seeds=1, grid_margin=0.02, grid_extend=0, steps=60, seeds=2, floor=0.1,
        proxy_steps=[20], proxy_seeds=2)

    def row(model, phase, seed, steps, val):
        return {**dict.fromkeys(bench.FIELDS, ""), "level": "light", "model": model,
                "width": "0.5", "phase": phase, "seed": str(seed), "lr": "0.2",
                "steps": str(steps), "val_top1": str(val)}
    # full runs: the same order a > b > c > d on both seeds (ceiling +1); bt at chance
    full = {"b": (0.9, 0.85), "b_k": (0.8, 0.8), "b_f": (0.7, 0.75), "bl": (0.6, 0.5),
            "bt": (0.12, 0.13)}
    # 20 steps: seed 0 swaps the first two (rank distance 1 each: rho = 1 - 6 * 2 / 60 = 0.8),
    # seed 1 swaps the last two (0.8 too)
    short = {"b": (0.5, 0.6), "b_k": (0.6, 0.5), "b_f": (0.4, 0.2), "bl": (0.2, 0.4),
             "bt": (0.1, 0.1)}
    for m in full:
        bench.append_row(args.csv, row(m, "grid", 0, 6, 0.5))
        for s in (0, 1):
            bench.append_row(args.csv, row(m, "full", s, 60, full[m][s]))
            bench.append_row(args.csv, row(m, "proxy", s, 20, short[m][s]))
    text = bench.calibration(args, reps=50)
    assert "4 models ranked; at chance, apart: bt" in text
    assert "| 60 (full: the ceiling) | 1.00 | +1.00 [" in text
    # means: b 0.55, b_k 0.55, b_f 0.30, bl 0.30 (ties) against b > b_k > b_f > bl:
    # ranks (1.5, 1.5, 3.5, 3.5) against (1, 2, 3, 4): Pearson of the ranks = 0.894
    assert "| 20 | 0.33 | +0.80 [" in text and "| +0.89 [" in text
    assert (tmp_path / "calibration.md").read_text().strip() == text.strip()
