"""Reading gin files and bindings, with errors that name the file, line and binding.

Light to import (gin and the model code load on the first parse), so command lines can define
their flags and print --help quickly.
"""
from __future__ import annotations

import os
import re


REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_gin(files, params, search_paths=()):
    """Parses gin files and bindings; errors name the file (and line) or binding."""
    import importlib.util  # noqa: F401  (gin-config 0.5 needs it imported before parsing)

    import gin

    from tpu_convrnn import gin_config  # noqa: F401  (registers the configurables)
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


_CALL = re.compile(r"\s*In call to configurable '([\w.]+)' \(<[^>]*>\)\s*$")


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


def _arguments(configurable: str) -> set:
    import inspect

    from tpu_convrnn import gin_config
    target = getattr(gin_config, configurable.rsplit(".", 1)[-1], None)
    target = getattr(target, "__wrapped__", target)
    try:
        return set(inspect.signature(target).parameters)
    except (TypeError, ValueError):
        return set()
