"""gin: the only place where gin touches the library (configurables at the edges), and the
reading of gin files and bindings with errors that name the file, line and binding.

Configurable names:

* ``model``: ``tpu_convrnn.model.builders.build_model`` (``model.base``, ``model.cells``,
  ``model.depths``, ``model.add_edges``, ``model.remove_edges``, ``model.presentation``,
  ``model.times``, ``model.image_off``, ``model.readout``, ``model.image_size``,
  ``model.width``, ``model.num_classes``, ``model.dtype``);
* ``train``: ``tpu_convrnn.training.train.TrainConfig`` (batch, schedule, optimizer, loss,
  checkpoints);
* ``data``: ``tpu_convrnn.data.sources.DataConfig`` (source, file patterns, classes);
* ``execution``: ``execution.eliminate``, ``execution.remat``, ``execution.depthwise``,
  ``execution.fuse_convs`` (``tpu_convrnn.model.execution``: how the model is computed, not
  what; applied as the process default when the model is built);
* ``space``, ``study``: registered by the search itself (``tpu_convrnn.search.config.configured``:
  what an architecture search explores and how it runs; ``gin/search/``): the training command
  does not depend on the search package.

Light to import: gin and the library load on the first parse (``parse_gin``) or the first
``configurable(...)``, so command lines can define their flags and print --help quickly.
"""
from __future__ import annotations

import os
import re

from tpu_convrnn import lazy
from tpu_convrnn.model import execution as execution_lib  # (plain data: no Keras import)

# (TensorFlow and Keras: loaded when a configurable is first used, after the gin files parse)
sources = lazy("tpu_convrnn.data.sources")
builders = lazy("tpu_convrnn.model.builders")
train_lib = lazy("tpu_convrnn.training.train")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CONFIGURABLES = {}


def configurable(name: str):
    """The registered gin configurable ``name`` (model, train, data, execution, or one that a
    package above registered with ``register``); registers the core ones on first use."""
    if not _CONFIGURABLES:
        import gin

        _CONFIGURABLES.update(
            model=gin.external_configurable(builders.build_model, "model"),
            train=gin.external_configurable(train_lib.TrainConfig, "train"),
            data=gin.external_configurable(sources.DataConfig, "data"),
            execution=gin.configurable("execution")(execution))
    if name not in _CONFIGURABLES:
        raise KeyError(f"no gin configurable {name!r} registered (known: "
                       f"{', '.join(sorted(_CONFIGURABLES))})")
    return _CONFIGURABLES[name]


def register(name: str, fn):
    """Registers ``fn`` as the gin configurable ``name``, once, beside the core ones: for the
    packages built on this one (the search registers ``space`` and ``study``)."""
    configurable("model")
    if name not in _CONFIGURABLES:
        import gin
        _CONFIGURABLES[name] = gin.external_configurable(fn, name)
    return _CONFIGURABLES[name]


_EXECUTION = execution_lib.Settings()  # (the defaults, written once: execution.Settings)


def execution(eliminate: bool = _EXECUTION.eliminate, remat: bool = _EXECUTION.remat,
              depthwise: str = _EXECUTION.depthwise, fuse_convs: bool = _EXECUTION.fuse_convs):
    """Makes the gin execution settings the process default (returns them)."""
    return execution_lib.set_default(eliminate=eliminate, remat=remat, depthwise=depthwise,
                                     fuse_convs=fuse_convs)


def configured_model():
    """The model the parsed gin config describes; its execution settings are applied first."""
    configurable("execution")()
    return configurable("model")()


def configured_train():
    return configurable("train")()


def configured_data():
    return configurable("data")()


def parse_gin(files, params, search_paths=()):
    """Parses gin files and bindings; errors name the file (and line) or binding."""
    import importlib.util  # noqa: F401  (gin-config 0.5 needs it imported before parsing)

    import gin

    configurable("model")  # registers the configurables
    for p in list(search_paths) + [REPO_ROOT, os.getcwd()]:
        gin.add_config_file_search_path(p)
    for f in files:
        if not os.path.exists(f) and not any(os.path.exists(os.path.join(p, f))
                                             for p in list(search_paths) + [REPO_ROOT]):
            raise ValueError(f"gin file {f!r} not found (searched the current folder, "
                             f"{REPO_ROOT} and {list(search_paths)})")
        try:
            gin.parse_config_file(f)
        except Exception as e:  # gin raises ValueError/KeyError/SyntaxError with the location
            raise ValueError(f"in gin file {f}: {e}") from e
    for p in params:
        try:
            gin.parse_config(p)
        except Exception as e:
            raise ValueError(f"in --gin_param {p!r}: {e}") from e


_CALL = re.compile(r"\s*In call to configurable '([\w.]+)' \(<.*>\)\s*$")


def binding_error(e: Exception) -> str:
    """One line for an error raised inside a gin configurable: gin appends "In call to
    configurable 'model' (...)"; that becomes a prefix naming the binding when the message
    starts with an argument of the configurable ("model.times = 4: ..."), else the
    configurable ("model: node 'conv3' ...")."""
    lines = [line for line in str(e).splitlines() if line.strip()]
    calls = [m.group(1) for m in map(_CALL.match, lines) if m]
    text = " ".join(line.strip() for line in lines if not _CALL.match(line))
    if not calls:
        return text
    name = calls[-1]
    if text.startswith(f"{name}."):
        return text
    head = re.match(r"([A-Za-z_]\w*)\b", text)
    args = _arguments(name)
    if head and head.group(1) in args:
        return f"{name}.{text}"
    return f"{name}: {text}"


def _arguments(name: str) -> set:
    import inspect

    target = _CONFIGURABLES.get(name.rsplit(".", 1)[-1])
    target = getattr(target, "__wrapped__", target)
    try:
        return set(inspect.signature(target).parameters)
    except (TypeError, ValueError):
        return set()
