import numpy as np
import pytest

import numpy_reference as ref
from harness import assert_close, randomize, random_inputs, unroll, weight
from tpu_convrnn.model.cells import GRUCell


def test_matches_numpy():
    cell = GRUCell(depth=8, forget_bias=1.0)
    cell.build((2, 5, 5, 6))
    w = randomize(cell, seed=5)
    drives = random_inputs(6, 4, (2, 5, 5, 6))
    outs, _ = unroll(cell, drives)
    h = np.zeros((2, 5, 5, 8))
    for t, u in enumerate(drives):
        g = ref.conv2d(np.concatenate([u, h], -1), weight(w, "gates/kernel"),
                       weight(w, "gates/bias"))
        r = ref.sigmoid(g[..., :8] + 1.0)  # forget bias on the reset gate (spec §4.3)
        z = ref.sigmoid(g[..., 8:])
        cand = np.tanh(ref.conv2d(np.concatenate([u, r * h], -1), weight(w, "candidates/kernel"),
                                  weight(w, "candidates/bias")))
        h = z * h + (1 - z) * cand
        assert_close(outs[t], h, what=f"t={t}")


def test_gate_bias_initialised_to_one():
    cell = GRUCell(depth=4)
    cell.build((1, 3, 3, 2))
    np.testing.assert_array_equal(cell.fused.bias.numpy(), np.ones(8, np.float32))
    np.testing.assert_array_equal(cell.candidates.bias.numpy(), np.zeros(4, np.float32))


@pytest.mark.parametrize("i,d,expected", [
    (256, 256, 3_539_712),   # gru_shallow conv3 / conv4 (spec §6.3)
    (128, 128, 885_120),     # gru_intermediate conv4
])
def test_param_count(i, d, expected):
    cell = GRUCell(depth=d)
    cell.build((1, 4, 4, i))
    k = 3
    closed_form = k * k * (i + d) * 2 * d + 2 * d + k * k * (i + d) * d + d
    assert cell.count_params() == closed_form == expected
