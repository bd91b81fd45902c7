"""Learning-rate schedules: linear warmup, then cosine or step decay, scaled by batch size.

    lr = scaled_learning_rate(0.1, global_batch=1024)            # 0.1 x 1024 / 256 = 0.4
    schedule = WarmupDecay(lr, warmup_steps=6250, total_steps=112_600, decay="cosine")

The schedule is a function of the optimizer's step counter only, so a resumed run continues at
the same point of the schedule.
"""
from __future__ import annotations

import math

import keras
from keras import ops

DECAYS = ("cosine", "step", "constant")


def scaled_learning_rate(base_lr: float, global_batch: int, base_batch: int = 256) -> float:
    """The linear scaling rule: ``base_lr`` is the rate for ``base_batch`` examples."""
    if global_batch < 1 or base_batch < 1:
        raise ValueError(f"batch sizes must be positive (global_batch={global_batch}, "
                         f"base_batch={base_batch})")
    return base_lr * global_batch / base_batch


@keras.saving.register_keras_serializable(package="tpu_convrnn")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """``peak * step / warmup_steps`` for the first ``warmup_steps``, then

    * ``cosine``: ``peak * 0.5 * (1 + cos(pi * p))``, p the fraction of the decay phase done;
    * ``step``: ``peak * factor ** (number of boundaries passed)``, boundaries as fractions of
      ``total_steps`` (default 30%, 60%, 80%, factor 0.1, as ResNet recipes);
    * ``constant``: ``peak``.
    """

    def __init__(self, peak: float, warmup_steps: int, total_steps: int, decay: str = "cosine",
                 boundaries=(0.3, 0.6, 0.8), factor: float = 0.1):
        if decay not in DECAYS:
            raise ValueError(f"decay {decay!r}: expected one of {', '.join(DECAYS)}")
        if not 0 <= warmup_steps <= total_steps:
            raise ValueError(f"warmup_steps ({warmup_steps}) must lie in [0, total_steps "
                             f"({total_steps})]")
        self.peak = float(peak)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.decay = decay
        self.boundaries = tuple(float(b) for b in boundaries)
        self.factor = float(factor)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warm = self.peak * step / max(self.warmup_steps, 1)
        if self.decay == "constant":
            after = ops.full_like(step, self.peak)
        elif self.decay == "cosine":
            span = max(self.total_steps - self.warmup_steps, 1)
            done = ops.clip((step - self.warmup_steps) / span, 0.0, 1.0)
            after = self.peak * 0.5 * (1.0 + ops.cos(math.pi * done))
        else:
            passed = sum(ops.cast(step >= b * self.total_steps, "float32")
                         for b in self.boundaries)
            after = self.peak * ops.power(self.factor, passed)
        return ops.where(step < self.warmup_steps, warm, after)

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps,
                "total_steps": self.total_steps, "decay": self.decay,
                "boundaries": list(self.boundaries), "factor": self.factor}
