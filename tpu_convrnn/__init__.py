"""tpu_convrnn: task-driven convolutional recurrent networks (Nayebi et al. 2018, 2022).

Model code uses Keras layers and ``keras.ops`` only, so it runs under Keras' TensorFlow backend
(TPUStrategy, the main path) and its JAX backend.

    import tpu_convrnn
    model = tpu_convrnn.load_model("rgc_intermediate", checkpoint="model.keras")
    logits = model(images)                                   # [N, 1000]
    feats = tpu_convrnn.extract_features(model, images, ["conv5", "logits"])  # [T, N, ...]
"""
__version__ = "0.1.0"

# Loaded on first use (PEP 562): ``import tpu_convrnn.search`` or ``tpu_convrnn.main --help``
# must not wait for Keras and TensorFlow (``lazy`` below does the same for a whole module).
_LAZY = {"extract_features": "tpu_convrnn.features", "ConvRNN": "tpu_convrnn.model.graph",
         "build_model": "tpu_convrnn.model.builders", "load_model": "tpu_convrnn.model.builders",
         "RELEASED_MODELS": "tpu_convrnn.model.zoo"}
__all__ = sorted(_LAZY)


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'tpu_convrnn' has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


def lazy(name: str):
    """The package's module ``name`` (``"tpu_convrnn.training.experiment"``), executed when
    one of its attributes is first read. A light module (an entry point, whose ``--help`` and
    argument errors come before TensorFlow loads) holds it at its top for a module that loads
    TensorFlow or Keras, instead of importing it inside a function: the one place where the
    package defers importing its own modules."""
    import importlib.util
    import sys
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)  # (imports the parent packages: small)
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    parent, _, child = name.rpartition(".")
    setattr(sys.modules[parent], child, module)
    return module
