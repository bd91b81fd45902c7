import math

import numpy as np
import pytest

from tpu_convrnn.training.schedules import WarmupDecay, scaled_learning_rate


def reference(step, peak, warmup, total, decay, boundaries=(0.3, 0.6, 0.8), factor=0.1):
    if step < warmup:
        return peak * step / warmup
    if decay == "cosine":
        return peak * 0.5 * (1 + math.cos(math.pi * min((step - warmup) / (total - warmup), 1)))
    if decay == "step":
        return peak * factor ** sum(step >= b * total for b in boundaries)
    return peak


@pytest.mark.parametrize("decay", ["cosine", "step", "constant"])
def test_schedule_matches_the_formula(decay):
    s = WarmupDecay(0.4, warmup_steps=10, total_steps=100, decay=decay)
    for step in [0, 1, 5, 9, 10, 11, 29, 30, 31, 59, 60, 79, 80, 99, 100, 150]:
        np.testing.assert_allclose(float(s(step)), reference(step, 0.4, 10, 100, decay),
                                   rtol=1e-5, atol=1e-7, err_msg=f"step {step}")


def test_linear_scaling_and_errors():
    assert scaled_learning_rate(0.1, 1024) == pytest.approx(0.4)
    with pytest.raises(ValueError, match="decay 'linear'"):
        WarmupDecay(0.1, 1, 10, decay="linear")
    with pytest.raises(ValueError, match="warmup_steps"):
        WarmupDecay(0.1, 20, 10)
    with pytest.raises(ValueError, match="batch sizes must be positive"):
        scaled_learning_rate(0.1, 0)
