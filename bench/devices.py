"""The device a benchmark runs on, its dense bf16 peak, and what a compiled step holds:
launches in its HLO and the peak memory (used by bench/train_step.py)."""
from __future__ import annotations

import re
import resource

import keras

# Dense bf16 peaks (FLOP/s): NVIDIA H100/H200 SXM datasheets; Cloud TPU system architecture.
PEAKS = {"H100": 989e12, "H200": 989e12, "TPU v4": 275e12, "TPU v5 lite": 197e12,
         "TPU v5e": 197e12, "TPU v5p": 459e12}


def device_info():
    backend = keras.backend.backend()
    if backend == "jax":
        import jax
        d = jax.devices()[0]
        return backend, d.device_kind, d
    import tensorflow as tf
    gpus = tf.config.list_logical_devices("GPU")
    return backend, ("GPU " + gpus[0].name) if gpus else "CPU", None


def peak_for(kind):
    for k, v in PEAKS.items():
        if k.lower() in kind.lower():
            return v
    return None


def hlo_op_counts(text):
    """Convolutions (XLA ``convolution`` or cuDNN custom calls) and fusions (kernels XLA
    generates) in an optimized HLO module: each is at least one launch per step."""
    convs = len(re.findall(r"= \S+ convolution\(", text)) + \
        len(re.findall(r'custom_call_target="__cudnn\$conv', text))
    return {"convolutions": convs, "fusions": len(re.findall(r"= \S+ fusion\(", text))}


def peak_memory():
    backend = keras.backend.backend()
    if backend == "jax":
        import jax
        stats = jax.devices()[0].memory_stats() or {}
        if "peak_bytes_in_use" in stats:
            return stats["peak_bytes_in_use"], "device peak"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "host max RSS"
