"""python -m tpu_convrnn.neural on precomputed features (no model run), and its errors."""
import os
import subprocess
import sys

import numpy as np
import xarray as xr
from neural_data import STEP_BINS, planted_assembly, recurrent_features

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "tpu_convrnn.neural", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=600)


def test_cli_writes_netcdf_csv_and_plot_with_several_models(tmp_path):
    feats = recurrent_features(200)
    a = planted_assembly(feats, {"V4": "conv1", "IT": "conv3"}, noise=1.0)
    np.savez(tmp_path / "assembly.npz", **a)
    np.savez(tmp_path / "feats.npz", stimulus_id=a["stimulus_id"][::-1],  # any order
             **{k: v[:, ::-1] for k, v in feats.items()})
    common = [f"--assembly={tmp_path / 'assembly.npz'}", f"--features={tmp_path / 'feats.npz'}",
              "--window=90,120", "--num_splits=3"]
    first = _cli(*common, "--layers=V4=conv1,IT=conv3", f"--output={tmp_path / 'a'}")
    assert first.returncode == 0, first.stderr[-2000:]
    second = _cli(*common, "--layers=V4=conv3,IT=conv1", "--model_name=swapped",
                  f"--compare={tmp_path / 'a.nc'}", f"--output={tmp_path / 'b'}")
    assert second.returncode == 0, second.stderr[-2000:]
    ds = xr.open_dataset(tmp_path / "a.nc")
    assert dict(ds["r"].sizes) == {"region": 2, "split": 3, "time_bin": len(STEP_BINS)}
    assert float(ds["r_corrected"].mean()) > 0.8  # features reordered to the assembly's ids
    assert "fits [" in first.stderr and "V4 (conv1): median r" in first.stdout
    rows = (tmp_path / "b.csv").read_text().splitlines()
    assert rows[0] == "model,region,time_bin_start,time_bin_stop,metric,mean,sem"
    assert rows[1].startswith("swapped,IT,90.0,100.0,r,")
    assert (tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_names_missing_stimuli(tmp_path):
    feats = recurrent_features(20)
    a = planted_assembly(feats, {"V4": "conv1"})
    np.savez(tmp_path / "assembly.npz", **a)
    np.savez(tmp_path / "feats.npz", stimulus_id=a["stimulus_id"][:18],
             **{k: v[:, :18] for k, v in feats.items()})
    proc = _cli(f"--assembly={tmp_path / 'assembly.npz'}", f"--features={tmp_path / 'feats.npz'}",
                f"--output={tmp_path / 'x'}")
    assert proc.returncode == 2
    assert "2 stimulus ids of the assembly are not in" in proc.stderr and "s0018" in proc.stderr


def test_cli_checks_compare_files_regions_and_window_before_the_features(tmp_path):
    feats = recurrent_features(20)
    a = planted_assembly(feats, {"V4": "conv1"})
    np.savez(tmp_path / "assembly.npz", **a)
    # a features file that would fail if read: the checks must come first
    (tmp_path / "feats.npz").write_bytes(b"not read")
    common = [f"--assembly={tmp_path / 'assembly.npz'}", f"--features={tmp_path / 'feats.npz'}",
              f"--output={tmp_path / 'x'}"]
    for extra, message in [
            ([f"--compare={tmp_path / 'missing.nc'}"], f"--compare={tmp_path / 'missing.nc'}: "
                                                       "no such file")]:
        proc = _cli(*common, *extra)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert message in proc.stderr.strip().splitlines()[-1], proc.stderr[-2000:]
    assert not os.path.exists(tmp_path / "x.nc")
