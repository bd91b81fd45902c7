"""Benchmarks run end to end at a tiny size (figures are printed, never asserted)."""
import os
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
    args = [sys.executable, "bench/cell_comparison.py", f"--output={tmp_path}", "--data=debris",
            "--seeds=1", "--steps=2", "--models=feedforward", "--base_lr=0.1,0.4",
            "--width=0.0625", "--times=7"]
    proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| debris | feedforward |" in proc.stdout
    assert "debris feedforward: final training loss" in proc.stdout  # the lr was chosen
    for name in ("results.csv", "table.md", "comparison.png"):
        assert os.path.getsize(tmp_path / name) > 0
