"""The models' weight initializers as Keras initializer configs (serializable dicts), in one place.

Plain data, so graph configs (``model.zoo``) and the search's sampler can name initializers
without loading Keras; ``keras.initializers.get`` turns a config into an initializer when the
layers are built.

* ``variance_scaling(scale)``: the original's ``tf.contrib.layers.variance_scaling_initializer``
  as its cells and convolutions call it (``fan_in``, truncated normal); ``seed`` fixes the draw.
* ``constant(value)`` and ``random_normal(stddev)``.
"""
from __future__ import annotations


def variance_scaling(scale: float = 1.0, seed: int | None = None) -> dict:
    """Fan-in variance scaling with a truncated normal, scaled by ``scale``."""
    config = {"scale": float(scale), "mode": "fan_in", "distribution": "truncated_normal"}
    if seed is not None:
        config["seed"] = seed
    return {"class_name": "VarianceScaling", "config": config}


def constant(value: float) -> dict:
    """Every weight ``value``."""
    return {"class_name": "Constant", "config": {"value": value}}


def random_normal(stddev: float, mean: float = 0.0) -> dict:
    """A normal draw of mean ``mean`` and standard deviation ``stddev``."""
    return {"class_name": "RandomNormal", "config": {"mean": mean, "stddev": stddev}}


VARIANCE_SCALING = variance_scaling()  # the default kernel initializer of convs and dense ops
