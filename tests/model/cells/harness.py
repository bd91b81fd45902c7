"""Helpers shared by the cell tests: random weights, weight lookup, unrolling, comparison."""
import numpy as np
from keras import ops


def randomize(layer, seed=0, scale=0.3):
    """Gives every weight of ``layer`` a random value (biases nonzero too); returns the dict
    path -> value."""
    rng = np.random.default_rng(seed)
    values = {}
    for v in layer.weights:
        val = rng.normal(0.0, scale, size=tuple(v.shape)).astype("float32")
        if v.path.endswith("gamma"):
            val = 1.0 + val
        v.assign(val)
        values[v.path] = val.astype(np.float64)
    return values


def weight(values, suffix):
    """The one weight whose path ends with ``suffix``."""
    hits = [k for k in values if k.endswith(suffix)]
    assert len(hits) == 1, (suffix, sorted(values))
    return values[hits[0]]


def unroll(cell, drives, inputs=None, feedback=None):
    """Runs ``cell`` over the list of drives (one per step); returns (outputs, states) as NumPy."""
    state = cell.get_initial_state(drives[0].shape[0])
    outs, states = [], []
    for t, u in enumerate(drives):
        y, state = cell(u, state, inputs=None if inputs is None else inputs[t],
                        feedback=None if feedback is None else feedback[t])
        outs.append(ops.convert_to_numpy(ops.cast(y, "float32")))
        states.append(tuple(ops.convert_to_numpy(ops.cast(s, "float32")) for s in state))
    return outs, states


def assert_close(got, want, rel=2e-5, what=""):
    """max |got - want| <= rel * max |want| (float32 round-off relative to the array scale)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    err = np.max(np.abs(got - want))
    scale = max(np.max(np.abs(want)), 1e-6)
    assert err <= rel * scale, f"{what}: max|diff| {err:.3g} > {rel} x {scale:.3g}"


def random_inputs(seed, steps, shape):
    rng = np.random.default_rng(seed)
    return [rng.normal(0.0, 1.0, size=shape).astype("float32") for _ in range(steps)]
