import numpy as np
import pytest

import numpy_reference as ref
from harness import assert_close, randomize, random_inputs, unroll, weight
from tpu_convrnn.model.cells import LSTMCell


@pytest.mark.parametrize("layer_norm,peepholes,k", [
    (False, False, 3), (True, False, 2), (True, True, 3), (False, True, 4)])
def test_matches_numpy(layer_norm, peepholes, k):
    fb = 1.356
    cell = LSTMCell(depth=8, kernel_size=k, forget_bias=fb, layer_norm=layer_norm,
                    peepholes=peepholes)
    cell.build((2, 5, 5, 6))
    w = randomize(cell, seed=11)
    drives = random_inputs(12, 4, (2, 5, 5, 6))
    outs, states = unroll(cell, drives)

    def ln(x, scope):
        if not layer_norm:
            return x
        return ref.layer_norm_hwc(x, weight(w, f"/{scope}/gamma"), weight(w, f"/{scope}/beta"))

    def peep(g):
        return weight(w, f"w_{g}_diag") if peepholes else 0.0

    c = np.zeros((2, 5, 5, 8))
    h = np.zeros((2, 5, 5, 8))
    for t, u in enumerate(drives):
        z = ref.conv2d(np.concatenate([u, h], -1), weight(w, "kernel"), weight(w, "bias"))
        i, j, f, o = [ln(g, s) for g, s in zip(np.split(z, 4, -1),
                                               ("input", "transform", "forget", "output"))]
        c_new = c * ref.sigmoid(f + fb + peep("f") * c) + ref.sigmoid(i + peep("i") * c) * np.tanh(j)
        c_new = ln(c_new, "state")
        h = np.tanh(c_new) * ref.sigmoid(o + peep("o") * c)  # output peephole reads the old c
        c = c_new
        assert_close(outs[t], h, what=f"h t={t}")
        assert_close(states[t][0], c, what=f"c t={t}")
        assert_close(states[t][1], h, what=f"state h t={t}")


@pytest.mark.parametrize("k,i,d,hw,ln,peep,expected", [
    (2, 256, 128, 28, True, False, 788_224),     # lstm_shallow conv3 (spec §6.3)
    (3, 256, 256, 14, True, True, 4_872_704),    # lstm_shallow conv4, peepholes 14x14x256
    (4, 512, 256, 7, True, False, 12_586_496),   # lstm_shallow conv5
    (3, 128, 128, 56, False, False, 1_180_160),  # lstm_intermediate conv4
])
def test_param_count(k, i, d, hw, ln, peep, expected):
    cell = LSTMCell(depth=d, kernel_size=k, layer_norm=ln, peepholes=peep)
    cell.build((1, hw, hw, i))
    closed_form = k * k * (i + d) * 4 * d + 4 * d + (10 * d if ln else 0) + \
        (3 * hw * hw * d if peep else 0)
    assert cell.count_params() == closed_form == expected
