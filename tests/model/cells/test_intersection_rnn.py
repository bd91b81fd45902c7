import numpy as np
import pytest

import numpy_reference as ref
from harness import assert_close, randomize, random_inputs, unroll, weight
from tpu_convrnn.model.cells import IntersectionRNNCell


def test_matches_numpy_output_is_not_state():
    cell = IntersectionRNNCell(depth=6, forget_bias=1.0)
    cell.build((2, 5, 5, 6))
    w = randomize(cell, seed=9)
    drives = random_inputs(10, 4, (2, 5, 5, 6))
    outs, states = unroll(cell, drives)
    h = np.zeros((2, 5, 5, 6))
    for t, u in enumerate(drives):
        z = ref.conv2d(np.concatenate([u, h], -1), weight(w, "kernel"), weight(w, "bias"))
        gh, hc, gy, yc = np.split(z, 4, axis=-1)
        gh, gy = ref.sigmoid(gh + 1.0), ref.sigmoid(gy + 1.0)
        h = gh * h + (1 - gh) * np.tanh(hc)          # spec §4.5
        y = gy * u + (1 - gy) * ref.relu(yc)
        assert_close(outs[t], y, what=f"output t={t}")
        assert_close(states[t][0], h, what=f"state t={t}")
    assert not np.allclose(outs[-1], states[-1][0])


def test_drive_depth_must_equal_state_depth():
    cell = IntersectionRNNCell(depth=8, name="conv4_cell")
    with pytest.raises(ValueError, match=r"conv4_cell.*drive channels.*expected 8.*got 6"):
        cell.build((1, 5, 5, 6))


@pytest.mark.parametrize("d,expected", [(256, 4_719_616), (128, 1_180_160)])
def test_param_count(d, expected):
    cell = IntersectionRNNCell(depth=d)
    cell.build((1, 2, 2, d))
    assert cell.count_params() == 9 * (d + d) * 4 * d + 4 * d == expected  # spec §6.3
