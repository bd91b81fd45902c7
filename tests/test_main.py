"""The command line and the shipped gin files."""
import glob
import os
import re
import subprocess
import sys

import gin
import numpy as np
import pytest

from tpu_convrnn import main

from tpu_convrnn.model import zoo
from tpu_convrnn.gin_bindings import configured_model

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GIN_MODELS = sorted(glob.glob(os.path.join(REPO, "gin", "models", "*.gin")))


def run_cli(*args, timeout=600):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "tpu_convrnn.main", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(autouse=True)
def clean_gin():
    gin.clear_config()
    yield
    gin.clear_config()


def test_a_gin_file_for_every_released_model_and_baseline():
    names = {os.path.basename(p)[:-4] for p in GIN_MODELS}
    assert names == set(zoo.RELEASED_MODELS) | set(zoo.BASELINES) | set(zoo.DIGIT_MODELS)


@pytest.mark.parametrize("path", GIN_MODELS, ids=os.path.basename)
def test_gin_file_builds_the_model_with_its_param_count(path):
    main.parse_gin([path], [])
    model = configured_model()
    name = os.path.basename(path)[:-4]
    if name in zoo.PARAM_COUNTS:  # the spec's; the digit models' are in tests/model/test_digit_models.py
        assert model.count_params() == zoo.PARAM_COUNTS[name]
    said = re.search(r"Total params: ([\d,]+)", open(path).read())
    if said:  # the header's example output is the model's
        assert model.count_params() == int(said.group(1).replace(",", ""))


def test_other_gin_files_parse_and_build():
    for path in ["gin/reciprocal.gin", "gin/examples/custom_graph.gin"]:
        gin.clear_config()
        main.parse_gin([os.path.join(REPO, path)], ["model.image_size = 96"])
        assert configured_model().count_params() > 0


def test_summary_command_prints_total_params():
    proc = run_cli("--gin_file=gin/models/rgc_intermediate_tmaxconf.gin", "--mode=summary")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Total params: 15,445,801" in proc.stdout
    assert "readout 'max_conf' over steps [11, 17)" in proc.stdout


def test_unknown_gin_binding_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.gin"
    bad.write_text("model.base = 'rgc_shallow'\nmodel.tims = 3\n")
    with pytest.raises(ValueError, match=r"(?s)bad.gin.*doesn't have a parameter named 'tims'"
                                         r".*line 2"):
        main.parse_gin([str(bad)], [])
    with pytest.raises(ValueError, match="--gin_param 'model.tmes=3'"):
        main.parse_gin([], ["model.tmes=3"])
    with pytest.raises(ValueError, match="gin file 'nowhere.gin' not found"):
        main.parse_gin(["nowhere.gin"], [])


def test_features_mode_end_to_end(tmp_path):
    rng = np.random.default_rng(0)
    stimuli = tmp_path / "stimuli.npz"
    np.savez(stimuli, images=rng.integers(0, 256, (3, 40, 40, 3)).astype("uint8"),
             stimulus_id=np.array(["a", "b", "c"]))
    out = tmp_path / "feats.npz"
    proc = run_cli("--gin_file=gin/models/rgc_intermediate.gin",
                   "--gin_param=model.image_size = 32", "--gin_param=model.presentation = "
                   "'neural'", "--mode=features", f"--stimuli={stimuli}",
                   "--layers=conv5,logits", f"--output={out}", "--batch_size=2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "features [" in proc.stderr and "3/3 images" in proc.stderr  # progress bar
    data = np.load(out)
    assert data["conv5"].shape == (26, 3, 4, 4, 128)
    assert data["logits"].shape == (26, 3, 1000)
    assert list(data["stimulus_id"]) == ["a", "b", "c"]
    np.testing.assert_array_equal(data["time_ms"], np.arange(26) * 10.0)


def test_features_needs_stimuli():
    proc = run_cli("--gin_file=gin/models/shallow_base.gin", "--mode=features")
    assert proc.returncode == 2 and "--mode=features needs --stimuli" in proc.stderr


# Search spaces (gin/search/) are read by the search, not by tpu_convrnn.main: their tests are in
# tests/search/test_space.py (this one passed for them only after a search test had registered
# the search's configurables in the same process).
SHIPPED = sorted(set(glob.glob(os.path.join(REPO, "gin", "**", "*.gin"), recursive=True))
                 - set(GIN_MODELS) - {os.path.join(REPO, "gin", "local.gin")}
                 - set(glob.glob(os.path.join(REPO, "gin", "search", "*.gin"))))


def test_every_released_model_has_an_experiment():
    names = {os.path.basename(p)[:-4] for p in glob.glob(os.path.join(REPO, "gin", "experiments",
                                                                      "*.gin"))}
    assert names == set(zoo.RELEASED_MODELS)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: os.path.relpath(p, REPO))
def test_shipped_gin_file_parses_strictly_and_builds_under_the_local_layer(path):
    from tpu_convrnn.gin_bindings import configured_data, configured_train
    main.parse_gin([path, os.path.join(REPO, "gin", "local.gin")], [])
    model = configured_model()
    # shallow graphs halve the map 6 times before a 2x2 valid conv: ceil(s / 64) >= 2 -> 72 px
    assert model.image_size == (72 if "shallow" in path or "custom" in path else 32)
    assert model.num_classes == 10 and model.count_params() > 0
    assert configured_train().global_batch == 32
    assert configured_data().source == "embedded"


def test_gin_errors_name_file_line_and_binding(tmp_path):
    bad = tmp_path / "recipe.gin"
    bad.write_text("include 'gin/recipes/imagenet.gin'\n\ntrain.global_bach = 3\n")
    with pytest.raises(ValueError, match=r"(?s)recipe.gin.*global_bach.*line 3"):
        main.parse_gin([str(bad)], [])
    bad.write_text("trian.global_batch = 3\n")
    with pytest.raises(ValueError, match=r"(?s)recipe.gin.*trian"):
        main.parse_gin([str(bad)], [])


def test_training_needs_a_model_dir():
    proc = run_cli("--gin_file=gin/reciprocal.gin", "--gin_file=gin/local.gin", "--mode=train")
    assert proc.returncode == 2 and "--mode=train needs --model_dir" in proc.stderr


@pytest.mark.parametrize("binding,message", [
    ("model.image_off = 0", r"^model\.image_off = 0: .*never be shown"),
    ("model.image_off = 13", r"^model\.image_off = 13: .*lie in \[1, times = 12\]"),
    # rgc_shallow: conv1..conv5 then the readout, one step per edge: t = 5
    ("model.times = 5", r"^model\.times = 5: the image reaches the readout node 'imnetds' at "
                        r"t = 5 .* at least 6"),
    ("model.times = 10.5", r"^model\.times = 10\.5: expected a whole number"),
    ("model.cells = {'conv3': {'kind': 'simple_rnn', 'dept': 8}}",
     r"^model: node 'conv3' memory: simple_rnn cell: unknown argument 'dept' \(did you mean "
     r"'depth'\?\)$"),
])
def test_settings_that_make_a_useless_model_are_one_line_errors_naming_the_binding(binding,
                                                                                   message):
    main.parse_gin(["gin/models/rgc_shallow.gin", "gin/local.gin"], [binding])
    with pytest.raises(ValueError) as e:
        configured_model()
    line = main.binding_error(e.value)
    assert "\n" not in line and re.search(message, line), line


def test_loss_steps_out_of_range_fail_before_any_step(tmp_path):
    proc = run_cli("--gin_file=gin/models/rgc_shallow.gin", "--gin_file=gin/local.gin",
                   "--gin_param=train.loss_steps = (3, 40)", "--mode=train",
                   f"--model_dir={tmp_path}")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: train.loss_steps = (3, 40): step 40 outside [-12, 12) (model.times = 12; "
        "negative counts from the end)")
    assert not os.path.exists(tmp_path / "checkpoints")


@pytest.mark.parametrize("module, flag", [("tpu_convrnn.main", "--gin_file"),
                                          ("tpu_convrnn.convert", "--checkpoint"),
                                          ("tpu_convrnn.neural", "--assembly"),
                                          ("tpu_convrnn.search", "--n_trials")])
def test_help_exits_zero_and_loads_no_tensorflow(module, flag):
    """Every entry point's --help answers before TensorFlow is imported (and exits 0)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", module, "--help"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and flag in proc.stdout, proc.stdout + proc.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")}
    assert not imported & {"tensorflow", "keras"}, module


@pytest.mark.parametrize("module", ["tpu_convrnn.search.__main__", "tpu_convrnn.search.rung",
                                    "tpu_convrnn.search.local_postgres", "tpu_convrnn.data.debris",
                                    "tpu_convrnn.data.folder", "tpu_convrnn.neural.synthetic"])
def test_a_command_line_with_its_own_flags_helps_on_every_flag_and_names_mistakes(module, capsys):
    """The command lines with a flag set of their own (absl, through tpu_convrnn.cli): --help
    exits 0 listing every flag with its help text; an unknown flag is one line, exit 2."""
    import importlib
    mod = importlib.import_module(module)
    assert mod.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in mod.FLAGS:
        assert mod.FLAGS[name].help.strip(), f"{module}: --{name} has no help text"
        assert f"--{name}: " in out, (name, out)
    assert mod.main(["--no_such_flag=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no_such_flag" in err, err


@pytest.mark.parametrize("module, argv, words", [
    ("tpu_convrnn.search.rung", ["--serve"], "--serve needs --control_fd"),
    ("tpu_convrnn.search.rung", ["--steps=10"],
     "one rung needs --gin_file, --model_dir, --checkpoint_every"),
    ("tpu_convrnn.data.debris", ["--image_size=4"],
     "--image_size = 4: the canvas must be a whole number of at least 16 px"),
])
def test_a_mistake_found_after_the_flags_parse_is_one_line_too(module, argv, words, capsys,
                                                               tmp_path):
    """A mistake the command finds in its flags' values (cli.UsageError) is one line and exit
    2, like a malformed flag, and nothing is written."""
    import importlib
    os.chdir(tmp_path)
    assert importlib.import_module(module).main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {words}", err
    assert os.listdir(tmp_path) == []


def test_a_bug_in_a_command_is_not_reported_as_a_usage_mistake():
    """Only cli.UsageError (or what a command names) is turned into an exit 2: another
    ValueError is a bug and goes on up with its traceback."""
    from absl import flags

    from tpu_convrnn import cli

    def broken(args):
        raise ValueError("a bug")
    with pytest.raises(ValueError, match="a bug"):
        cli.main(broken, flags.FlagValues(), "doc", [])


@pytest.mark.parametrize("module", ["tpu_convrnn.search.worker", "tpu_convrnn.search.report",
                                    "tpu_convrnn.search.references", "tpu_convrnn.model.zoo"])
def test_the_search_and_the_released_graphs_import_without_keras(module):
    """A search worker or report, and the released graphs as plain data, start without
    loading Keras or TensorFlow (the trials load them in their own processes)."""
    code = (f"import sys, {module}; from tpu_convrnn.model import cells; cells.KINDS; "
            "print(sorted(m for m in ('keras', 'tensorflow') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr
