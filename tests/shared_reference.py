"""Access to ../shared/reference (outputs of the original code), for parity tests."""
import importlib.util
import json
import os
from pathlib import Path

import pytest

SHARED = Path(os.environ.get("TPU_CONVRNN_SHARED",
                             Path(__file__).resolve().parents[2] / "shared"))
REFERENCE = SHARED / "reference"


def require_reference():
    if not (REFERENCE / "make_ckpt.py").exists():
        pytest.skip(f"shared reference data not found at {REFERENCE} (set TPU_CONVRNN_SHARED)")


def make_ckpt_module():
    require_reference()
    spec = importlib.util.spec_from_file_location("make_ckpt", REFERENCE / "make_ckpt.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def vars_table(model):
    require_reference()
    with open(REFERENCE / "vars" / f"{model}.vars.json") as f:
        return json.load(f)


def write_checkpoint(model, directory, seed=1234, edit=None):
    """Writes the seed's TF1 checkpoint for ``model``; ``edit(values)`` may change the dict."""
    mk = make_ckpt_module()
    values = mk.make_values(mk.load_vars(REFERENCE / "vars" / f"{model}.vars.json"), seed, model)
    if edit is not None:
        edit(values)
    return mk.write_tf1_checkpoint(values, str(Path(directory) / "model.ckpt"))
