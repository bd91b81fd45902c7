import numpy as np
import pytest

from tpu_convrnn.model.readouts import KINDS, Readout


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def numpy_decode(kind, z, beta=1.0, threshold=0.9):
    """Spec §1.6, one example at a time."""
    out = []
    for zi in z:
        conf = softmax(beta * zi).max(-1)
        if kind == "last":
            out.append(zi[-1])
        elif kind == "max_conf":
            out.append(zi[int(np.argmax(conf))])
        elif kind == "thresh":
            above = np.nonzero(conf >= threshold)[0]
            out.append(zi[above[0] if len(above) else int(np.argmax(conf))])
        elif kind == "mean":
            out.append(zi.mean(0))
        elif kind == "w_time_avg":
            w = softmax(conf)
            out.append((w[:, None] * zi).sum(0))
        elif kind == "time_max":
            out.append(zi.max(0))
    return np.stack(out)


@pytest.mark.parametrize("kind", KINDS)
def test_matches_numpy(kind):
    rng = np.random.default_rng(0)
    z = (rng.normal(0, 2, (5, 6, 10)) * np.arange(1, 7)[None, :, None]).astype("float32")
    layer = Readout(kind)
    layer.build((None, 6, 10))
    beta = 1.0
    if kind == "max_conf":
        beta = 0.37
        layer.beta.assign([beta])
    np.testing.assert_allclose(np.asarray(layer(z)), numpy_decode(kind, z, beta), rtol=1e-5,
                               atol=1e-6)


def test_thresh_takes_first_confident_step_else_most_confident():
    z = np.zeros((2, 3, 4), "float32")
    z[0, 1, 0] = 10.0  # confident at t=1 and t=2: first one wins
    z[0, 2, 1] = 12.0
    z[1, 0, 2] = 1.0   # never above 0.9: the most confident step (t=0)
    layer = Readout("thresh")
    layer.build((None, 3, 4))
    out = np.asarray(layer(z))
    np.testing.assert_array_equal(out[0], z[0, 1])
    np.testing.assert_array_equal(out[1], z[1, 0])


def test_max_conf_beta_is_trainable_and_uniform_init():
    layer = Readout("max_conf")
    layer.build((None, 3, 4))
    assert [v.name for v in layer.trainable_weights] == ["softmax_beta"]
    assert 0.0 <= float(np.asarray(layer.beta)[0]) < 1.0
    thresh = Readout("thresh")
    thresh.build((None, 3, 4))
    assert thresh.count_params() == 0  # beta and threshold are fixed constants


def test_unknown_kind():
    with pytest.raises(ValueError, match="unknown kind 'avg'"):
        Readout("avg")
