import numpy as np
import pytest

import numpy_reference as ref
from harness import assert_close, randomize, random_inputs, unroll, weight
from tpu_convrnn.model.cells import UGRNNCell


def test_matches_numpy():
    cell = UGRNNCell(depth=8, forget_bias=1.0)
    cell.build((2, 5, 5, 6))
    w = randomize(cell, seed=7)
    drives = random_inputs(8, 4, (2, 5, 5, 6))
    outs, _ = unroll(cell, drives)
    h = np.zeros((2, 5, 5, 8))
    for t, u in enumerate(drives):
        z = ref.conv2d(np.concatenate([u, h], -1), weight(w, "kernel"), weight(w, "bias"))
        g = ref.sigmoid(z[..., :8] + 1.0)
        c = np.tanh(z[..., 8:])
        h = g * h + (1 - g) * c  # spec §4.6
        assert_close(outs[t], h, what=f"t={t}")


@pytest.mark.parametrize("i,d,expected", [
    (256, 256, 2_359_808),    # ugrnn_shallow conv3 (spec §6.3)
    (512, 512, 9_438_208),    # ugrnn_shallow conv5
])
def test_param_count(i, d, expected):
    cell = UGRNNCell(depth=d)
    cell.build((1, 2, 2, i))
    assert cell.count_params() == 9 * (i + d) * 2 * d + 2 * d == expected
