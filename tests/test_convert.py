"""Original checkpoints -> Keras: parity with the original code's outputs (../shared/reference)
and clear errors for checkpoints that do not fit."""
import os
import subprocess
import sys

import numpy as np
import pytest

import tpu_convrnn
from shared_reference import REFERENCE, make_ckpt_module, vars_table, write_checkpoint
from tpu_convrnn.model import tf1_checkpoint

PARITY_MODELS = ["rgc_shallow", "lstm_shallow"]


def assert_parity(got, want, what):
    """Issue contract: max |difference| <= 1e-4 x max |expected|, for every array."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    err, scale = np.max(np.abs(got - want)), np.max(np.abs(want))
    assert err <= 1e-4 * scale, f"{what}: max|diff| {err:.3g} > 1e-4 x {scale:.3g}"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return {m: write_checkpoint(m, tmp_path_factory.mktemp(m)) for m in PARITY_MODELS}


@pytest.mark.parametrize("name", PARITY_MODELS)
def test_reproduces_the_original_outputs(name, checkpoints):
    mk = make_ckpt_module()
    expected = np.load(REFERENCE / f"{name}.expected.npz")
    model = tpu_convrnn.load_model(name, checkpoint=checkpoints[name])
    images = mk.make_images(0, 2)
    feats = tpu_convrnn.extract_features(model, images)
    assert_parity(model(images), expected["logits"], "logits")
    assert_parity(feats["logits"], expected["logits_all_t"], "logits_all_t")
    for layer in range(1, 6):
        key = f"conv{layer}_spatial_mean"
        assert_parity(feats[f"conv{layer}"].astype(np.float64).mean(axis=(2, 3)), expected[key],
                      key)
    assert_parity(feats["conv5"][-1], expected["conv5_last_t"], "conv5_last_t")


def test_every_checkpoint_variable_maps_to_a_keras_weight():
    """For all 20 models, the Keras names cover the original variable tables exactly."""
    for name in tpu_convrnn.RELEASED_MODELS:
        model = tpu_convrnn.build_model(name)
        table = {r["name"]: r["shape"] for r in vars_table(name)}
        mapped = {tf1_checkpoint.tf1_name(model, v): list(v.shape) for v in model.weights}
        consts = tf1_checkpoint.expected_constants(model)
        assert set(mapped) | set(consts) == set(table), name
        assert all(table[k] == s for k, s in mapped.items()), name


def _edited(tmp_path, edit):
    return write_checkpoint("rgc_shallow", tmp_path, edit=edit)


def test_optimizer_slots_and_global_step_are_ignored(tmp_path):
    def edit(values):
        values["tnn_model/conv3/pre_0/bias/Momentum"] = np.zeros(256, np.float32)
        values["global_step"] = np.zeros((), np.float32)
    model = tpu_convrnn.build_model("rgc_shallow")
    tf1_checkpoint.load_tf1_checkpoint(model, _edited(tmp_path, edit))


@pytest.mark.parametrize("edit,match", [
    (lambda v: v.pop("tnn_model/conv4/ReciprocalGateCell/cell/tau/weights"),
     r"1 missing:\n\s+tnn_model/conv4/ReciprocalGateCell/cell/tau/weights"),
    (lambda v: v.__setitem__("tnn_model/conv4/extra/weights", np.zeros((3,), np.float32)),
     r"1 unexpected:\n\s+tnn_model/conv4/extra/weights"),
    (lambda v: v.__setitem__("tnn_model/conv1/pre_0/bias", np.zeros((65,), np.float32)),
     r"1 mis-shaped:\n\s+tnn_model/conv1/pre_0/bias: checkpoint \[65\], model \[64\]"),
    (lambda v: v.__setitem__("tnn_model/conv2/memory_decay", np.ones((1,), np.float32)),
     r"unsupported constant:\n\s+tnn_model/conv2/memory_decay = \[1.0\]"),
])
def test_bad_checkpoints_list_what_is_wrong(tmp_path, edit, match):
    model = tpu_convrnn.build_model("rgc_shallow")
    with pytest.raises(ValueError, match=match):
        tf1_checkpoint.load_tf1_checkpoint(model, _edited(tmp_path, edit))


def test_missing_checkpoint_names_the_path(tmp_path):
    with pytest.raises(ValueError, match="cannot read TF1 checkpoint .*nowhere"):
        tpu_convrnn.load_model("rgc_shallow", checkpoint=str(tmp_path / "nowhere"))


def test_cli_converts_and_the_keras_file_loads(tmp_path, checkpoints):
    out = tmp_path / "rgc_shallow.keras"
    proc = subprocess.run([sys.executable, "-m", "tpu_convrnn.convert", "--model=rgc_shallow",
                           f"--checkpoint={checkpoints['rgc_shallow']}", f"--output={out}"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "converted 30 variables and checked 3 constants (23,956,840 parameters)" in proc.stdout
    images = make_ckpt_module().make_images(0, 1)
    direct = tpu_convrnn.load_model("rgc_shallow", checkpoint=checkpoints["rgc_shallow"])
    loaded = tpu_convrnn.load_model("rgc_shallow", checkpoint=str(out))
    np.testing.assert_array_equal(np.asarray(loaded(images)), np.asarray(direct(images)))


def test_a_truncated_checkpoint_is_a_clear_error(tmp_path):
    prefix = _edited(tmp_path, lambda v: None)
    data = [f for f in os.listdir(os.path.dirname(prefix)) if ".data-" in f]
    path = os.path.join(os.path.dirname(prefix), data[0])
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    model = tpu_convrnn.build_model("rgc_shallow")
    with pytest.raises(ValueError, match=r"cannot read '.*' from TF1 checkpoint .*truncated"):
        tf1_checkpoint.load_tf1_checkpoint(model, prefix)


def test_cli_checks_the_output_and_model_before_reading(tmp_path):
    cases = [(["--model=rgc_shallow", f"--output={tmp_path / 'no' / 'x.h5'}"],
              "must end in .keras"),
             (["--model=nope", f"--output={tmp_path / 'no' / 'x.keras'}"], "does not exist")]
    for args, message in cases:
        proc = subprocess.run([sys.executable, "-m", "tpu_convrnn.convert",
                               f"--checkpoint={tmp_path / 'none'}", *args],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 1, proc.stderr[-2000:]
        assert message in proc.stderr.strip().splitlines()[-1], proc.stderr[-2000:]


def test_cli_refuses_a_read_only_output_before_reading_the_checkpoint(tmp_path, small_disk):
    read_only = small_disk("ro")
    proc = subprocess.run([sys.executable, "-m", "tpu_convrnn.convert", "--model=rgc_shallow",
                           f"--checkpoint={tmp_path / 'none'}",
                           f"--output={read_only / 'x.keras'}"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: --output's folder {str(read_only)!r} is not writable: Read-only file system")
