import numpy as np

from tpu_convrnn.neural.reliability import pearson, spearman_brown, split_half_reliability


def test_split_half_reliability_matches_a_direct_computation():
    rng = np.random.default_rng(0)
    signal = rng.normal(size=(50, 4, 3))
    h1 = signal + rng.normal(size=signal.shape)
    h2 = signal + rng.normal(size=signal.shape)
    got = split_half_reliability(h1, h2)
    for n in range(4):
        for b in range(3):
            r = np.corrcoef(h1[:, n, b], h2[:, n, b])[0, 1]
            assert np.isclose(got[n, b], 2 * r / (1 + r))


def test_spearman_brown_and_constant_inputs():
    assert np.isclose(spearman_brown(0.5), 2 / 3)
    assert np.isclose(spearman_brown(0.5, factor=3), 0.75)
    assert np.isnan(pearson(np.ones(5), np.arange(5.0)))
