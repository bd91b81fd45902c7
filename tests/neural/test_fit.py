"""Fits on synthetic assemblies with planted structure."""
import numpy as np
import pytest
from neural_data import feedforward_features, planted_assembly, recurrent_features

from tpu_convrnn.neural import temporal
from tpu_convrnn.neural.assembly import from_trials
from tpu_convrnn.neural.benchmark import compare
from tpu_convrnn.neural.synthetic import expected_reliability


@pytest.fixture(scope="module")
def feats():
    return recurrent_features()


WINDOW = (90.0, 120.0)


@pytest.mark.parametrize("method", ["pls", "ridge"])
def test_planted_map_is_recovered_to_the_noise_ceiling(feats, method):
    a = planted_assembly(feats, {"V4": "conv1", "IT": "conv3"}, noise=1.0, repetitions=6,
                         objects=5)
    ds = compare(feats, from_trials(**a), layers={"V4": "conv1", "IT": "conv3"}, method=method,
                 window=WINDOW, num_splits=4)
    rel = expected_reliability(1.0, 6)  # 0.857: what split-half should measure
    np.testing.assert_allclose(ds["reliability"].values, rel, atol=0.06)
    corrected = ds["r_corrected"].mean("split").values  # [region, bin]
    assert np.all(corrected > 0.85) and np.all(corrected < 1.1), corrected
    np.testing.assert_allclose(ds["r"].mean("split").values, np.sqrt(rel), atol=0.1)
    assert list(ds["model_step"].values) == [2, 3, 4]


def test_shuffled_stimuli_score_near_zero(feats):
    a = planted_assembly(feats, {"V4": "conv1"}, noise=0.5)
    perm = np.random.default_rng(3).permutation(len(a["stimulus_id"]))
    a["trials"] = a["trials"][:, perm]  # responses no longer belong to their stimuli
    ds = compare(feats, from_trials(**a), layers={"V4": "conv1"}, window=WINDOW, num_splits=4)
    assert np.abs(ds["r"].mean("split").values).max() < 0.15


def test_wrong_layer_scores_lower_and_inner_cv_finds_the_right_one(feats):
    a = planted_assembly(feats, {"V4": "conv3"}, noise=0.5)
    assembly = from_trials(**a)
    right = compare(feats, assembly, layers={"V4": "conv3"}, window=WINDOW, num_splits=3)
    wrong = compare(feats, assembly, layers={"V4": "conv1"}, window=WINDOW, num_splits=3)
    assert float(right["r"].mean()) > float(wrong["r"].mean()) + 0.1
    chosen = compare(feats, assembly, window=WINDOW, num_splits=3)  # no layer given
    assert chosen.attrs["layer_V4"] == "conv3,conv3,conv3"


def test_feedforward_uniform_mapping_scores_every_bin_alike(feats):
    ff = feedforward_features()
    a = planted_assembly(ff, {"IT": "conv1"}, noise=1.0)
    a["trials"] = np.repeat(a["trials"][..., :1], 3, axis=-1)  # time-invariant responses
    assembly = from_trials(**a)
    uniform = compare(ff, assembly, layers={"IT": "conv1"}, mapping="uniform", window=WINDOW,
                      num_splits=3)
    assert np.ptp(uniform["r"].values, axis=-1).max() < 1e-9
    # the same responses against a recurrent model's per-step features differ by bin
    temporal_ = compare(feats, assembly, layers={"IT": "conv1"}, window=WINDOW, num_splits=3)
    assert np.ptp(temporal_["r"].values, axis=-1).max() > 1e-3


def test_time_mapping():
    np.testing.assert_array_equal(temporal.bins_to_steps([70, 80, 250], [80, 90, 260], 26),
                                  [0, 1, 18])
    with pytest.raises(ValueError, match="maps to model step 26, outside the model's 26 steps"):
        temporal.bins_to_steps([330], [340], 26)
    assert temporal.graded_layers(["a", "b", "c"], 7) == list("aaabbcc")
    with pytest.raises(ValueError, match="no time bin lies inside the window 0-50 ms"):
        temporal.select_bins([70], [80], (0, 50))


def test_unknown_layer_and_region_are_named(feats):
    a = from_trials(**planted_assembly(feats, {"V4": "conv1"}))
    with pytest.raises(ValueError, match="layer 'conv9' for region 'V4' has no features"):
        compare(feats, a, layers={"V4": "conv9"}, window=WINDOW)
    with pytest.raises(ValueError, match=r"regions \['MT'\] are not in the assembly"):
        compare(feats, a, layers={"MT": "conv1"}, window=WINDOW)


def test_pls_matches_sklearn():
    from sklearn.cross_decomposition import PLSRegression

    from tpu_convrnn.neural.fit import PLS
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 30)) * np.linspace(3, 0.5, 30)  # distinct singular values
    y = x[:, :6] @ rng.normal(size=(6, 9)) + 0.3 * rng.normal(size=(120, 9))
    x_test = rng.normal(size=(20, 30))
    for k in (1, 5, 12):
        ours = PLS(k).fit(x, y).predict(x_test)
        ref = PLSRegression(n_components=k, scale=False, max_iter=5000, tol=1e-12).fit(
            x, y).predict(x_test)
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6 * np.abs(ref).max())
