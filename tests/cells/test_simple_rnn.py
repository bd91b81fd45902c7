import numpy as np
import pytest

import numpy_reference as ref
from harness import assert_close, randomize, random_inputs, unroll, weight
from tpu_convrnn.cells import SimpleRNNCell


@pytest.mark.parametrize("layer_norm", [False, True])
def test_matches_numpy(layer_norm):
    cell = SimpleRNNCell(depth=8, layer_norm=layer_norm)
    cell.build((2, 5, 5, 6))
    w = randomize(cell, seed=3)
    drives = random_inputs(4, 4, (2, 5, 5, 6))
    outs, _ = unroll(cell, drives)
    h = np.zeros((2, 5, 5, 8))
    for t, u in enumerate(drives):
        a = ref.conv2d(u, weight(w, "/i/kernel"), weight(w, "/i/bias")) + \
            ref.conv2d(h, weight(w, "/s/kernel"), weight(w, "/s/bias"))
        if layer_norm:
            a = ref.layer_norm_hwc(a, weight(w, "gamma"), weight(w, "beta"))
        h = ref.elu(a)  # spec §4.2
        assert_close(outs[t], h, what=f"t={t}")


@pytest.mark.parametrize("k,i,d,ln,expected", [
    (3, 256, 128, True, 442_880),      # simplernn_shallow conv3 (spec §6.3 table)
    (3, 512, 256, True, 1_770_496),    # simplernn_shallow conv5
    (3, 128, 128, False, 295_168),     # simplernn_intermediate conv4
])
def test_param_count(k, i, d, ln, expected):
    cell = SimpleRNNCell(depth=d, kernel_size=k, layer_norm=ln)
    cell.build((1, 4, 4, i))
    closed_form = k * k * i * d + d + k * k * d * d + d + (2 * d if ln else 0)
    assert cell.count_params() == closed_form == expected
