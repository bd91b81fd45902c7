"""The search space, its checks, parameters -> gin bindings, references, hashes, the median."""
import csv
import glob
import os
import re

import optuna
import pytest

from tpu_convrnn.model import builders

from tpu_convrnn.model import zoo
from tpu_convrnn.gin_bindings import REPO_ROOT
from tpu_convrnn.search import trial_gin, config, record, references, report, sample, study
from tpu_convrnn.search.__main__ import main
from tpu_convrnn.training.train import TrainConfig

SMALL = os.path.join(REPO_ROOT, "gin", "search", "small.gin")
MEDIAN = os.path.join(REPO_ROOT, "gin", "search", "median_cell.gin")
OCCLUDED = os.path.join(REPO_ROOT, "gin", "search", "occluded.gin")


def _space(path, *extra):
    return config.configured([path], extra)


def _gin(tmp_path, *lines):
    path = tmp_path / "space.gin"
    path.write_text("\n".join([f"include '{SMALL}'"] + list(lines)) + "\n")
    return str(path)


@pytest.mark.parametrize("binding, words", [
    ("space.cell = {'tua_filter_size': ('int', 1, 3)}", "unknown knob 'tua_filter_size'"),
    ("space.cell_layers = ['conv3', 'conv9']", "unknown cell layer 'conv9'"),
    ("space.cell_layers = ['conv1', 'conv3']",
     "'conv1' is the input or readout layer of rgc_shallow and takes no cell"),
    ("space.feedback_edges = [['conv3', 'conv5']]", "conv3 -> conv5 is not later -> earlier"),
    ("space.cell = {'tau_filter_size': ('int', 3, 3)}", "empty range [3, 3]"),
    ("space.feedback = {'feedback_size': ('int', 1, 3)}", "unknown feedback knob"),
    ("space.train = {'lr': ('float', 0.1, 1.0)}", "unknown training knob 'lr'"),
    ("study.max_steps = 100", "is not study.min_steps (40) x study.reduction_factor (3) ** k"),
    ("study.sampler = 'grid'", "study.sampler = 'grid': expected one of 'tpe', 'random'"),
])
def test_bad_spaces_are_one_line_errors_naming_file_and_line(tmp_path, capsys, binding, words):
    path = _gin(tmp_path, "# a comment", binding)
    rc = main(["run", f"--space={path}", f"--study_dir={tmp_path}/study", "--n_trials=1"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1, err
    assert f"{path}, line 3" in err and words in err, err
    assert not os.path.exists(tmp_path / "study" / "study.db")  # nothing was started


def test_unreachable_storage_is_one_line_and_never_shows_the_password(tmp_path, capsys,
                                                                      monkeypatch):
    import socket
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(study.PASSWORD_ENV, "hunter2-secret")
    rc = main(["run", f"--space={SMALL}", f"--study_dir={tmp_path}/study", "--n_trials=1",
               f"--storage=postgresql://search@127.0.0.1:{port}/search"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert "cannot reach the study storage postgresql://search:***@127.0.0.1" in err, err
    assert "hunter2-secret" not in err
    assert not os.path.exists(tmp_path / "study")  # no empty study folder left behind


def test_a_password_inside_storage_and_a_file_as_study_dir_are_refused(tmp_path, capsys):
    rc = main(["run", f"--space={SMALL}", f"--study_dir={tmp_path}/study", "--n_trials=1",
               "--storage=postgresql://search:hunter2-secret@127.0.0.1:5432/search"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert "a password inside the URL; give it through $TPU_CONVRNN_STORAGE_PASSWORD" in err
    assert "hunter2-secret" not in err and not os.path.exists(tmp_path / "study")
    (tmp_path / "a_file").write_text("x")
    rc = main(["run", f"--space={SMALL}", f"--study_dir={tmp_path}/a_file", "--n_trials=1"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err == f"error: --study_dir {str(tmp_path / 'a_file')!r} is a file, " \
        "not a folder", err


def test_the_password_comes_from_a_file_and_is_masked(tmp_path):
    (tmp_path / "pw").write_text("s3cret\n")
    url = study.storage_url("postgresql://u@h:5432/db", str(tmp_path), str(tmp_path / "pw"))
    assert url == "postgresql://u:s3cret@h:5432/db"
    assert study.mask_url(url) == "postgresql://u:***@h:5432/db"
    assert study.storage_url(None, str(tmp_path)).startswith("sqlite:///")


def test_a_study_refuses_a_worker_with_another_space(tmp_path):
    space, cfg = _space(SMALL)
    storage = study.open_storage(study.storage_url(None, str(tmp_path)), cfg)
    first, created = study.open_study(space, cfg, storage, "s")
    _, again = study.open_study(space, cfg, storage, "s")
    assert created and not again
    assert first.metric_names == ["minival top1"]  # (Optuna's dashboard: not "Objective 0")
    other, cfg = _space(SMALL, "space.train = {'base_lr': ('float', 0.1, 2.0, 'log')}")
    with pytest.raises(ValueError, match=r"created with another space .*space\.train\.base_lr"):
        study.open_study(other, cfg, storage, "s", space_file="mine.gin")


def test_a_random_search_is_its_own_study_with_the_same_pruner(tmp_path):
    """study.sampler = 'random' (the control a search is judged against): Optuna's
    RandomSampler with the same ASHA pruner; a TPE worker cannot join a random study."""
    space, cfg = _space(SMALL, "study.sampler = 'random'")
    storage = study.open_storage(study.storage_url(None, str(tmp_path)), cfg)
    rand, _ = study.open_study(space, cfg, storage, "r")
    assert isinstance(rand.sampler, optuna.samplers.RandomSampler)
    assert isinstance(rand.pruner, optuna.pruners.SuccessiveHalvingPruner)
    tpe_space, tpe_cfg = _space(SMALL)
    tpe, _ = study.open_study(tpe_space, tpe_cfg, storage, "t")
    assert isinstance(tpe.sampler, optuna.samplers.TPESampler)
    with pytest.raises(ValueError, match=r"created with another space .*study\.sampler"):
        study.open_study(tpe_space, tpe_cfg, storage, "r")
    # its samples are uniform draws from the same space: every parameter inside its range
    trial = rand.ask()
    params = sample.suggest(trial, space)
    assert params == trial.params and 0.1 <= params["train.base_lr"] <= 0.8


def test_parameters_become_edges_cells_and_tied_multipliers():
    space, _ = _space(MEDIAN)

    class Ask:  # answers every suggestion with the lowest value / first choice, edges chosen
        def suggest_int(self, name, low, high, log=False):
            return low

        def suggest_float(self, name, low, high, log=False):
            return low

        def suggest_categorical(self, name, choices):
            if name.startswith("edge."):
                return name in ("edge.conv10->conv4", "edge.conv7->conv6")
            return choices[0]
    params = sample.suggest(Ask(), space)
    b = sample.bindings(space, params)
    # rgc_intermediate has 5 feedback edges: conv7->conv6 stays, the other 4 go, one is added
    assert b["model.add_edges"] == [["conv10", "conv4"]]
    assert sorted(map(tuple, b["model.remove_edges"])) == sorted(
        tuple(e) for e in zoo.RGC_FEEDBACK if e != ["conv7", "conv6"])
    cell = b["model.cells"]["conv4"]
    assert cell["tau_multiplier"] == -cell["tau_offset"] == -0.1
    assert cell["kernel_initializer"]["config"]["scale"] == 0.1
    assert "feedback_entry" in cell and "feedback_entry" in b["model.cells"]["conv6"]
    assert "feedback_entry" not in b["model.cells"]["conv5"]  # receives nothing
    assert {p for p in params if p.startswith("fb.")} == {
        f"fb.{layer}.{k}" for layer in ("conv4", "conv6") for k in config.FEEDBACK_KNOBS}


def _built(base, bindings, size):
    return builders.build_model(base, cells=bindings["model.cells"],
                              add_edges=bindings["model.add_edges"],
                              remove_edges=bindings["model.remove_edges"], image_size=size)


def test_the_median_reference_is_the_released_rgc_intermediate():
    space, _ = _space(MEDIAN)
    recipe = TrainConfig(base_lr=0.03, clip_value=0.32)  # gin/recipes/imagenet.gin's values
    params = references.reference_params(space, recipe)["median_rgc"]
    model = _built("rgc_intermediate", sample.bindings(space, params), 64)
    released = builders.build_model("rgc_intermediate", image_size=64)
    assert model.count_params() == zoo.PARAM_COUNTS["rgc_intermediate"]
    assert trial_gin.architecture_hash(model) == trial_gin.architecture_hash(released)


def test_the_shallow_reference_is_the_released_rgc_shallow_cell():
    space, _ = _space(SMALL, "space.trial_bindings = []")
    params = references.reference_params(space, TrainConfig())["shallow_rgc_cell"]
    model = _built("rgc_shallow", sample.bindings(space, params), 72)
    released = builders.build_model("rgc_shallow", image_size=72)
    assert model.count_params() == zoo.PARAM_COUNTS["rgc_shallow"]
    assert trial_gin.architecture_hash(model) == trial_gin.architecture_hash(released)
    # and the hash sees a change of one argument
    params["cell.gate_filter_size"] = 2
    changed = _built("rgc_shallow", sample.bindings(space, params), 72)
    assert trial_gin.architecture_hash(changed) != trial_gin.architecture_hash(released)


def test_the_occluded_spaces_reference_is_the_comparisons_rgc_model(tmp_path):
    """gin/search/occluded.gin's reference trial is BL with the released rgc_shallow cell in
    its two conv layers at width 0.5: the occluded-digit comparison's bl_rgc, built here from
    the released graph, not from the space, at the rate the comparison's grid chose for it."""
    space, _ = _space(OCCLUDED)
    base = str(tmp_path / "base.gin")  # the trials' common setup, as `search run` writes it
    trial_gin.write_trial_gin(base, space, {"model.base": space.base}, None)
    _, recipe, _ = trial_gin.parse_trial_gin(base)
    params = references.reference_params(space, recipe)["shallow_rgc_cell"]
    with open(os.path.join(REPO_ROOT, "bench", "occluded_digits", "runs.csv")) as f:
        grid = {}
        for r in csv.DictReader(f):
            # the light comparison's grid: 1,500 steps on seed 0 (--grid_seeds=1)
            if (r["level"], r["model"], r["width"], r["phase"], r["steps"], r["seed"]) == \
                    ("light", "bl_rgc", "0.5", "grid", "1500", "0"):
                grid.setdefault(float(r["lr"]), []).append(float(r["val_top1"]))
    assert params["train.base_lr"] == max(grid, key=lambda lr: sum(grid[lr]) / len(grid[lr]))
    b = sample.bindings(space, params)
    searched = builders.build_model("spoerer_bl", cells=b["model.cells"], width=0.5,
                                    add_edges=b["model.add_edges"],
                                    remove_edges=b["model.remove_edges"], image_size=32)
    cell = next(n["memory"] for n in zoo.released_graph("rgc_shallow")["nodes"]
                if n["name"] == "conv3")
    comparison = builders.build_model("spoerer_bl", cells={"conv1": cell, "conv2": cell},
                                      width=0.5, image_size=32)
    assert searched.count_params() == comparison.count_params()
    assert trial_gin.architecture_hash(searched) == trial_gin.architecture_hash(comparison)


def test_a_reference_outside_the_space_is_an_error():
    space, _ = _space(SMALL, "space.references = ['median_rgc']")
    with pytest.raises(ValueError, match=r"reference 'median_rgc': cell.tau_filter_size = 7 is "
                                         r"not in the space \(int in \[1, 3\]\)"):
        references.reference_params(space, TrainConfig())


def test_a_filter_larger_than_its_map_is_rejected_before_training(tmp_path):
    space, _ = _space(SMALL, "space.cell = {'tau_filter_size': ('int', 1, 5)}")
    params = {"cell.tau_filter_size": 5, "train.base_lr": 0.4,
              **{sample.edge_param(s, d): False for s, d in space.candidate_edges()}}
    gin_path = str(tmp_path / "t.gin")
    trial_gin.write_trial_gin(gin_path, space, sample.bindings(space, params), None)
    # 72 px: conv3's cell sees 9x9, conv4's 5x5, conv5's 3x3 (the cell's tau convs of c and h)
    with pytest.raises(trial_gin.Rejected, match=r"^layer conv5: cell_tau_filter_size = 5 is "
                                                 r"larger than its 3x3 map"):
        trial_gin.inspect_gin(gin_path)
    info = trial_gin.inspect_gin(gin_path, filters_fit_maps=False)
    assert info["params"] > 0 and info["flops_train_step"] > 0


def test_median_of_the_top_trials():
    space, _ = _space(SMALL)
    dists = {}

    def trial(lr, tau, nonlin, edges, value):
        params = {"cell.tau_filter_size": tau, "cell.tau_nonlinearity": nonlin,
                  "train.base_lr": lr}
        d = {"cell.tau_filter_size": optuna.distributions.IntDistribution(1, 3),
             "cell.tau_nonlinearity": optuna.distributions.CategoricalDistribution(
                 ["sigmoid", "tanh"]),
             "train.base_lr": optuna.distributions.FloatDistribution(0.1, 1.0, log=True)}
        for s, t in space.candidate_edges():
            params[sample.edge_param(s, t)] = [s, t] in edges
            d[sample.edge_param(s, t)] = optuna.distributions.CategoricalDistribution(
                [False, True])
        dists.update(d)
        return optuna.trial.create_trial(params=params, distributions=d, value=value)

    top = [trial(0.2, 1, "tanh", [["conv5", "conv3"]], 0.9),
           trial(0.4, 3, "tanh", [["conv5", "conv3"], ["conv4", "conv3"]], 0.8),
           trial(0.8, 3, "sigmoid", [], 0.7)]
    m = report.median_params(space, top)
    assert m["train.base_lr"] == 0.4 and m["cell.tau_filter_size"] == 3
    assert m["cell.tau_nonlinearity"] == "tanh"
    assert m["edge.conv5->conv3"] is True and m["edge.conv4->conv3"] is False
    # the counts beside the report's feedback-edge bars
    counts = dict(zip(map(tuple, space.candidate_edges()),
                      report.edge_counts(top, space.candidate_edges())))
    assert counts[("conv5", "conv3")] == 2 and counts[("conv4", "conv3")] == 1
    assert sum(counts.values()) == 3


def test_a_trial_failed_by_another_worker_meanwhile_is_dropped_not_fatal(tmp_path, messages):
    """While a trial runs, another worker fails it (its heartbeat looked stale) and re-queues
    it: the worker's ask-and-tell loop leaves the stored FAIL as it is, says so, goes on."""
    space, cfg = _space(SMALL)
    storage = study.open_storage(study.storage_url(None, str(tmp_path)), cfg)
    s, _ = study.open_study(space, cfg, storage, "s")
    lines, seen = messages, []

    def attempt(trial):
        if trial.number == 0:  # what fail_stale_trials on another worker does
            storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        return optuna.trial.TrialState.COMPLETE, float(trial.number)
    why = study.run_trials(s, attempt, 2, lambda st, frozen: seen.append(frozen))
    assert why == "done"
    states = [t.state for t in s.get_trials()]
    assert states == [optuna.trial.TrialState.FAIL] + [optuna.trial.TrialState.COMPLETE] * 2
    assert [t.state for t in seen] == states  # after(): what the storage holds
    assert len(lines) == 1 and "failed by another worker" in lines[0]
    assert study.end_reason(s.get_trials()[0]) == "stale"


def test_a_waiting_retry_is_run_even_once_n_trials_are_finished(tmp_path):
    """n_trials were finished by other workers while a dead worker's trial was failed and
    re-queued: a worker runs the waiting retry before it says done (else it is left behind)."""
    space, cfg = _space(SMALL)
    storage = study.open_storage(study.storage_url(None, str(tmp_path)), cfg)
    s, _ = study.open_study(space, cfg, storage, "s")
    ran = []

    def attempt(trial):
        ran.append(study.origin_number(trial))
        return optuna.trial.TrialState.COMPLETE, 0.5
    assert study.run_trials(s, attempt, 2) == "done"
    dead = s.ask()  # a third trial whose worker died: failed, and a retry of it queued
    storage.set_trial_state_values(dead._trial_id, optuna.trial.TrialState.FAIL)
    s.enqueue_trial(dead.params, user_attrs={"resume_of": dead.number})
    assert study.run_trials(s, attempt, 2) == "done"
    assert ran == [0, 1, dead.number]
    assert [t.state.name for t in s.get_trials()] == ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE"]
    assert study.run_trials(s, attempt, 2) == "done" and len(ran) == 3


def test_exact_repeats_do_not_count_toward_n_trials(tmp_path, messages):
    """A repeat takes an earlier trial's result and trains nothing: the loop goes on until
    n_trials trials were trained, and stops (saying why) once n_trials repeats came."""
    space, cfg = _space(SMALL)
    storage = study.open_storage(study.storage_url(None, str(tmp_path)), cfg)
    s, _ = study.open_study(space, cfg, storage, "s")
    lines = messages

    def attempt(trial):  # trial 1 repeats trial 0 (as Worker._copy records it)
        if trial.number == 1:
            trial.set_user_attr("repeat_of", 0)
        return optuna.trial.TrialState.COMPLETE, 0.5
    assert study.run_trials(s, attempt, 2) == "done"
    assert [study.end_reason(t) for t in s.get_trials()] == ["complete", "repeat", "complete"]
    exhausted, _ = study.open_study(space, cfg, storage, "exhausted")

    def always_a_repeat(trial):
        trial.set_user_attr("repeat_of", 0)
        return optuna.trial.TrialState.COMPLETE, 0.5
    assert study.run_trials(exhausted, always_a_repeat, 2) == "repeats"
    assert len(exhausted.get_trials()) == 2 and lines == [
        "2 trials were exact repeats of earlier ones: the space is nearly exhausted; stopping"]


def test_an_attempt_that_raises_fails_its_trial_and_the_error_goes_on(tmp_path):
    space, cfg = _space(SMALL)
    storage = study.open_storage(study.storage_url(None, str(tmp_path)), cfg)
    s, _ = study.open_study(space, cfg, storage, "s")

    def attempt(trial):
        raise KeyError("a bug of the worker")
    with pytest.raises(KeyError, match="a bug of the worker"):
        study.run_trials(s, attempt, 2)
    assert [t.state for t in s.get_trials()] == [optuna.trial.TrialState.FAIL]


@pytest.mark.parametrize("argv, error", [
    ([], "expected a command, one of run, report (got none)"),
    (["rnu", "--space=x"], "expected a command, one of run, report (got 'rnu')"),
    (["run", f"--space={SMALL}"], "run needs --study_dir, --n_trials"),
    (["report", "--space=x", "--study_dir=y", "--workers=3"],
     "report: --workers is a flag of another command"),
    (["run", "--spac=x"], "Unknown command line flag 'spac'"),
    (["run", "--space=x", "--study_dir=y", "--n_trials=abc"], "flag --n_trials=abc"),
    (["run", "--space=x", "--study_dir=y", "--n_trials=1", "extra"],
     "run: unexpected arguments ['extra']"),
])
def test_command_line_mistakes_are_one_line_errors(tmp_path, capsys, argv, error):
    """The search's flags (absl, as tpu_convrnn.main's) are checked before anything runs:
    exit 2 and one line naming the mistake, nothing written."""
    os.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and error in err, err
    assert os.listdir(tmp_path) == []


def test_flags_of_an_earlier_call_do_not_leak_into_the_next(tmp_path, capsys):
    """main() parses its flags afresh: a flag given to one call is not set in the next."""
    os.chdir(tmp_path)
    assert main(["run", "--space=x", "--study_dir=y", "--n_trials=1", "--workers=3"]) == 2
    assert main(["report", "--space=x", "--study_dir=y"]) == 2  # (x does not exist)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("x" in line for line in err), err
    assert not any("another command" in line for line in err), err


def test_a_bug_in_a_workers_attempt_fails_its_trial_with_the_error_recorded(tmp_path):
    """An exception that is no fault of the rung (a bug of the worker) fails the trial with
    the error line as its reason ('crashed') and goes on up."""
    from tpu_convrnn.search.record import TrialRecord
    from tpu_convrnn.search.worker import Worker
    space, cfg = _space(SMALL)
    storage = study.open_storage(study.storage_url(None, str(tmp_path)), cfg)
    s, _ = study.open_study(space, cfg, storage, "s")
    worker = Worker(s, space, cfg, str(tmp_path), str(tmp_path / "trials"), None, 0.0)
    worker.objective = lambda trial: {}["missing"]
    with pytest.raises(KeyError, match="missing"):
        worker.run(2)
    [trial] = s.get_trials()
    assert trial.state == optuna.trial.TrialState.FAIL
    assert TrialRecord.of(trial).error == "worker error: KeyError: 'missing'"
    assert study.end_reason(trial) == "crashed"


def test_end_reasons_are_told_apart():
    """Every way a trial ends has its own name (the worker's summary and trials.csv count
    them apart; an interrupted trial is not 'failed')."""
    states = optuna.trial.TrialState

    def t(state, **attrs):
        return optuna.trial.create_trial(state=state, user_attrs=attrs, **(
            {"value": 0.5} if state == states.COMPLETE else {}))
    cases = [(t(states.COMPLETE), "complete"), (t(states.COMPLETE, diverged="NaN"), "diverged"),
             (t(states.COMPLETE, repeat_of=3), "repeat"), (t(states.PRUNED), "pruned"),
             (t(states.FAIL, error="ValueError: x"), "crashed"),
             (t(states.FAIL, rejected="too small"), "rejected"),
             (t(states.FAIL, interrupted="SIGTERM", error="x"), "interrupted"),
             (t(states.FAIL), "stale"), (t(states.WAITING), "waiting")]
    assert [study.end_reason(trial) for trial, _ in cases] == [why for _, why in cases]


def test_a_restarted_worker_does_not_replay_its_samples(tmp_path):
    """The sampler's seed comes from the study's seed, the worker's index and the trials the
    study holds: a worker that joins again with the same index draws new points, and one that
    starts a fresh study draws the same points as before (reproducible)."""
    space, cfg = _space(SMALL)

    def draws(url, n):
        s, _ = study.open_study(space, cfg, study.open_storage(url, cfg), "s", worker_index=0)
        out = []
        for _ in range(n):
            trial = s.ask()
            out.append(sample.suggest(trial, space))
            s.tell(trial, 0.5)
        return out
    first = draws(study.storage_url(None, str(tmp_path / "a")), 3)
    again = draws(study.storage_url(None, str(tmp_path / "a")), 3)  # restarted, same index
    assert not any(p == q for p in first for q in again)
    assert draws(study.storage_url(None, str(tmp_path / "b")), 3) == first


def test_diverged_trials_are_never_among_the_top():
    _, cfg = _space(SMALL)
    s = optuna.create_study(direction="maximize")
    for value, attrs in ((0.6, {}), (0.0, {"diverged": "loss became NaN at step 11"}),
                         (0.7, {}), (0.9, {"budget": cfg.min_steps})):
        s.add_trial(optuna.trial.create_trial(value=value, user_attrs={
            "budget": cfg.max_steps, **attrs}))
    assert [t.value for t in report.top_trials(s, cfg, 3)] == [0.7, 0.6]  # full budget only


def test_a_searched_clipping_mode_unsets_the_other_one_of_an_included_recipe(tmp_path):
    """median_cell.gin searches train.clip_value; gin/local.gin clips by norm: a trial of the
    two together used to stop at 'train.clip_value and train.clip_norm: set at most one'."""
    space, _ = _space(MEDIAN, "space.trial_gin_files = ['gin/experiments/rgc_intermediate.gin',"
                              " 'gin/local.gin']")
    params = references.reference_params(space, TrainConfig(base_lr=0.03,
                                                             clip_value=0.32))["median_rgc"]
    b = sample.bindings(space, params)
    assert b["train.clip_value"] == 0.32 and b["train.clip_norm"] is None
    gin_path = str(tmp_path / "t.gin")
    trial_gin.write_trial_gin(gin_path, space, b, None)
    _, recipe, _ = trial_gin.parse_trial_gin(gin_path)
    assert (recipe.clip_value, recipe.clip_norm) == (0.32, None)


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(REPO_ROOT, "gin", "search",
                                                               "*.gin"))),
                         ids=os.path.basename)
def test_every_shipped_space_parses_and_its_references_lie_in_it(path):
    space, _ = _space(path)
    assert space.cell_layers and space.knobs()["cell"]
    recipe = TrainConfig(base_lr=0.03 if "median" in path else 0.4, clip_value=0.32)
    # each reference's values are checked against the space (an error names the one outside)
    assert set(references.reference_params(space, recipe)) == set(space.references)


def test_trial_record_reads_what_optuna_stores_and_refuses_unknown_names():
    from tpu_convrnn.search import record
    from tpu_convrnn.search.record import TrialRecord
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    study.enqueue_trial({"x": 0.5}, user_attrs=record.attrs(resume_of=3, rungs_passed=1))
    trial = study.ask()
    record.put(trial, budget=120, error="ValueError: bad", top1_per_step=[0.1, 0.2])
    trial.set_user_attr("not_a_field", 1)  # (another tool's attribute: ignored when read)
    with pytest.raises(KeyError, match="budgte"):
        record.put(trial, budgte=120)
    with pytest.raises(KeyError, match="resumed_of"):
        record.attrs(resumed_of=3)
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    rec = TrialRecord.of(study.trials[0])
    assert (rec.resume_of, rec.rungs_passed, rec.budget, rec.error, rec.top1_per_step) == \
        (3, 1, 120, "ValueError: bad", [0.1, 0.2])
    assert rec.diverged is None and rec.repeat_of is None  # not stored: None
    assert study.trials[0].state.name == "FAIL"
    from tpu_convrnn.search import study as study_lib
    assert study_lib.end_reason(study.trials[0]) == "crashed"
    assert study_lib.origin_number(study.trials[0]) == 3


def test_best_so_far_counts_every_trials_compute_and_only_full_budget_results():
    _, cfg = _space(SMALL)  # budgets 40 and 120 steps
    rows = [{"trial": 3, "budget": 120, "top1": 0.7, "train_pflop": 3.0},
            {"trial": 0, "budget": 40, "top1": 0.9, "train_pflop": 1.0},  # pruned: pays only
            {"trial": 1, "budget": 120, "top1": 0.5, "train_pflop": 3.0},
            {"trial": 2, "budget": 120, "top1": 0.4, "train_pflop": 3.0},
            {"trial": 4, "budget": None, "top1": None, "train_pflop": None}]  # failed
    curve = report.best_so_far(rows, cfg.max_steps)
    assert curve == [(1, 4.0, 0.5), (2, 7.0, 0.5), (3, 10.0, 0.7), (4, 10.0, 0.7)]
    assert report.best_at(curve, 3.9) is None
    assert report.best_at(curve, 9.9) == 0.5 and report.best_at(curve, 10.0) == 0.7


def _stored_study(folder, space_path, values, *extra):
    """A study of ``space_path`` in ``folder``'s SQLite with finished trials (no training):
    ``values`` are (top-1, budget) in trial order, each trial 1 TFLOP per image and step, at
    the reference point with base_lr = its top-1."""
    space, cfg = _space(space_path, *extra)
    storage = study.open_storage(study.storage_url(None, str(folder)), cfg, False)
    s, _ = study.open_study(space, cfg, storage, "small")
    s.set_user_attr("global_batch", 1)
    point = references.reference_params(space)["shallow_rgc_cell"]
    for value, budget in values:  # (each at its own rate: base_lr = its top-1)
        s.enqueue_trial({**point, "train.base_lr": value})
        t = s.ask()
        sample.suggest(t, space)
        record.put(t, budget=budget, flops_train_step=1e12, params=1000)
        t.report(value, budget)
        full = budget == cfg.max_steps
        s.tell(t, value if full else None, state=optuna.trial.TrialState.COMPLETE if full
               else optuna.trial.TrialState.PRUNED)


def test_report_compares_a_random_search_control_at_equal_compute(tmp_path, capsys):
    """``report --compare_with`` draws the studies' best so far against compute and prints
    each one's best once the cheapest study's compute was spent; a study of another space or
    settings, or a folder without a study, is a one-line error."""
    # a full trial trains 40 + 120 steps: 0.16 PFLOP at batch 1; a pruned one 40: 0.04
    _stored_study(tmp_path / "tpe", SMALL, [(0.3, 120), (0.6, 40), (0.5, 120), (0.8, 120)])
    _stored_study(tmp_path / "random", SMALL, [(0.4, 120), (0.2, 40)],
                  "study.sampler = 'random'")
    _stored_study(tmp_path / "other", SMALL, [(0.4, 120)], "study.minival_examples = 600")
    args = ["report", f"--space={SMALL}", f"--study_dir={tmp_path / 'tpe'}", "--top=1"]
    assert main(args + [f"--compare_with={tmp_path / 'random'}"]) == 0
    out = capsys.readouterr().out
    # equal compute: random spent 0.16 + 0.04; by then TPE had its trials 0 and 1 (0.16 + 0.04)
    assert re.search(r"at equal compute \(0\.2 PFLOP", out), out
    assert re.search(r"tpe \(tpe\)\s+0\.52\s+0\.8000\s+0\.3000", out), out
    assert re.search(r"random \(random\)\s+0\.2\s+0\.4000\s+0\.4000", out), out
    with open(tmp_path / "tpe" / "report" / "compare.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["study"], r["trial"], r["best_top1"]) for r in rows] == [
        ("tpe (tpe)", "0", "0.3"), ("tpe (tpe)", "1", "0.3"), ("tpe (tpe)", "2", "0.5"),
        ("tpe (tpe)", "3", "0.8"), ("random (random)", "0", "0.4"),
        ("random (random)", "1", "0.4")]
    assert os.path.getsize(tmp_path / "tpe" / "report" / "compare.png") > 0
    best = (tmp_path / "tpe" / "report" / "best.gin").read_text()
    assert "The best trial (3, minival top-1 0.8000)" in best
    assert "train.base_lr = 0.8\n" in best and "train.base_lr = 0.6" not in best
    for folder, words in (("other", "has another space or settings (differs in: "
                                    "study.minival_examples)"),
                          ("none", "no study.db there")):
        assert main(args + [f"--compare_with={tmp_path / folder}"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"--compare_with={tmp_path / folder}" in err \
            and words in err, err


def test_a_resumed_study_finds_its_data_split_or_names_the_missing_file(tmp_path):
    """A study folder carried to another machine, or whose generated images' cache was
    removed: the split's images are written again (the same files); a file that cannot be
    written again is named, with the split file, before any trial reads it."""
    import shutil
    from tpu_convrnn.data.sources import DataConfig
    data = DataConfig(source="embedded", cache_dir=str(tmp_path / "cache"))
    study_dir = str(tmp_path / "study")
    os.makedirs(study_dir)
    path = study.prepare_split(study_dir, data, 500)
    text = open(path).read()
    named = re.findall(r"^data\.(?:train|eval)_pattern = '(.+)'$", text, re.M)
    files = [f for pattern in named for f in pattern.split(",")]
    assert len(files) >= 2 and all(os.path.exists(f) for f in files)
    shutil.rmtree(tmp_path / "cache")
    assert study.prepare_split(study_dir, data, 500) == path
    assert open(path).read() == text and all(os.path.exists(f) for f in files)
    os.remove(files[0])  # the data set's record says it is complete: nothing rewrites it
    with pytest.raises(ValueError, match=rf"^{re.escape(path)}: data.train_pattern names "
                                         rf"{re.escape(files[0])}, which is missing"):
        study.prepare_split(study_dir, data, 500)
