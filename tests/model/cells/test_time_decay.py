import numpy as np

from harness import assert_close, randomize, random_inputs, unroll, weight
from tpu_convrnn.model.cells import TimeDecayCell


def test_matches_numpy_leak():
    cell = TimeDecayCell()
    cell.build((2, 5, 5, 6))
    w = randomize(cell, seed=1)
    m = weight(w, "memory_decay")
    drives = random_inputs(2, 4, (2, 5, 5, 6))
    outs, states = unroll(cell, drives)
    s = np.zeros((2, 5, 5, 6))
    for t, u in enumerate(drives):
        s = m * s + u  # spec §4.1
        assert_close(outs[t], s, what=f"t={t}")
        assert_close(states[t][0], s)


def test_one_parameter_and_starts_at_zero():
    cell = TimeDecayCell()
    cell.build((1, 3, 3, 4))
    assert cell.count_params() == 1  # spec §6.3
    assert float(np.asarray(cell.memory_decay.numpy())[0]) == 0.0
    frozen = TimeDecayCell(trainable_decay=False)
    frozen.build((1, 3, 3, 4))
    assert frozen.trainable_weights == []
