"""Time-decay cell (spec §4.1): a learned scalar leak ``s_t = m * s_{t-1} + u_t``."""
from __future__ import annotations

import keras
from keras import ops

from tpu_convrnn.model.cells.base import ConvCell


@keras.saving.register_keras_serializable(package="tpu_convrnn")
class TimeDecayCell(ConvCell):
    """``s_t = m * s_{t-1} + u_t``; the output is ``s_t``.

    ``m`` (variable ``memory_decay``, shape [1]) is one unconstrained scalar, initialised to 0 and
    trainable, as in the released timedecay models (no sigmoid, no clipping). With
    ``trainable_decay=False`` it stays at 0 and the cell passes ``u`` through, which is what the
    original does in every non-cell layer.
    """

    def __init__(self, trainable_decay: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.trainable_decay = bool(trainable_decay)

    def build_cell(self):
        self.memory_decay = self.add_weight(name="memory_decay", shape=(1,), initializer="zeros",
                                            trainable=self.trainable_decay)

    def state_depths(self, drive_depth):
        return {"h": drive_depth}

    def step(self, drive, state, inputs, feedback):
        s = ops.cast(self.memory_decay, self.compute_dtype) * state[0] + drive
        return s, (s,)

    def get_config(self):
        return {**super().get_config(), "trainable_decay": self.trainable_decay}
