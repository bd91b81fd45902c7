"""Readouts (decoders) over the readout node's per-step logits (spec §1.6).

``Readout(kind)`` maps logits ``z`` [N, W, classes] over the decision window to [N, classes]:

* ``last``: ``z[:, -1]`` (the original's default; its window is the last step only);
* ``max_conf``: ``p_t = softmax(beta z_t)``; the step ``t* = argmax_t max_k p_t[k]`` (first on
  ties) is read out raw, ``z_{t*}``. ``beta`` is one trainable scalar, initialised uniformly in
  [0, 1) as in the original; it gets no gradient through the argmax, so load it from a checkpoint;
* ``thresh``: ``m_t = max_k softmax(beta z_t)[k]`` with fixed ``beta`` (1.0) and ``threshold``
  (0.9); the first step with ``m_t >= threshold``, else ``argmax_t m_t``;
* averaging decoders of the original's ``decoders.py`` that fit the same [N, W, C] -> [N, C]
  mechanism: ``mean`` (uniform average over the window), ``w_time_avg`` (weights = softmax over
  time of the per-step max probability), ``time_max`` (per-class max over time).

The temporal decoders' default window is ``t in [num_nodes, T)``: one step after the first
image-driven readout step, as in the original (the graph chooses the window).
"""
from __future__ import annotations

import keras
from keras import ops

KINDS = ("last", "max_conf", "thresh", "mean", "w_time_avg", "time_max")


@keras.saving.register_keras_serializable(package="tpu_convrnn")
class Readout(keras.layers.Layer):
    """Decodes [N, W, classes] window logits to [N, classes] (see module docstring)."""

    def __init__(self, kind: str = "last", beta: float = 1.0, threshold: float = 0.9, **kwargs):
        super().__init__(**kwargs)
        if kind not in KINDS:
            raise ValueError(f"readout '{self.name}': unknown kind {kind!r}; expected one of "
                             f"{', '.join(KINDS)}")
        self.kind = kind
        self.beta_value = float(beta)
        self.threshold = float(threshold)

    @property
    def is_temporal(self) -> bool:
        """Whether the readout looks at more than the last step."""
        return self.kind != "last"

    def build(self, input_shape=None):
        self.beta = None
        if self.kind == "max_conf":
            self.beta = self.add_weight(name="softmax_beta", shape=(1,),
                                        initializer=keras.initializers.RandomUniform(0.0, 1.0))
        self.built = True

    def call(self, z):
        if len(z.shape) != 3:
            raise ValueError(f"readout '{self.name}': expected logits [N, W, classes], got shape "
                             f"{tuple(z.shape)}")
        z = ops.cast(z, "float32")
        if self.kind == "last":
            return z[:, -1]
        if self.kind == "mean":
            return ops.mean(z, axis=1)
        if self.kind == "time_max":
            return ops.max(z, axis=1)
        beta = ops.cast(self.beta, "float32") if self.beta is not None else self.beta_value
        conf = ops.max(ops.softmax(beta * z, axis=-1), axis=-1)  # [N, W]
        if self.kind == "w_time_avg":
            w = ops.softmax(conf, axis=1)
            return ops.sum(w[:, :, None] * z, axis=1)
        if self.kind == "max_conf":
            t_star = ops.argmax(conf, axis=1)
        else:  # thresh
            above = ops.cast(conf >= self.threshold, "int32")
            t_star = ops.where(ops.max(above, axis=1) > 0, ops.argmax(above, axis=1),
                               ops.argmax(conf, axis=1))
        idx = ops.cast(t_star, "int32")[:, None, None]
        return ops.take_along_axis(z, idx, axis=1)[:, 0]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "kind": self.kind, "beta": self.beta_value,
                "threshold": self.threshold}
