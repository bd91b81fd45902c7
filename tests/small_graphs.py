"""A small feedback graph for fast tests: 8x8 images, a median reciprocal gated cell with
feedback, a time-decay cell and an fc readout."""
import numpy as np

from tpu_convrnn.model.graph import ConvRNN

S = 8  # image size


def _conv(f, k=3, act=None, name="pre_0"):
    return {"op": "conv", "filters": f, "kernel_size": k, "activation": act, "name": name}


def small_graph(times=5, image_off=3, readout=None, feedback=True, extra_edges=()):
    nodes = [
        {"name": "conv1", "pre": [_conv(4, act="elu")], "post": ["maxpool"]},            # 4x4x4
        {"name": "conv2", "pre": [_conv(6)],
         "memory": {"kind": "median_reciprocal_gated", "name": "rgc"}},                   # 4x4x6
        {"name": "conv3", "pre": [_conv(5, act="elu")], "memory": {"kind": "time_decay"},
         "post": ["maxpool"]},                                                            # 2x2x5
        {"name": "readout", "pre": ["gap", {"op": "fc", "units": 7, "name": "fc"}]},
    ]
    edges = [["conv1", "conv2"], ["conv2", "conv3"], ["conv3", "readout"]]
    if feedback:
        edges += [["conv3", "conv2"], ["conv3", "conv1"]]
    edges += [list(e) for e in extra_edges]
    return ConvRNN(nodes, edges, times=times, image_off=image_off, readout=readout,
                   image_size=S, name="small")


def randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    w = {}
    for v in model.weights:
        val = rng.normal(0, 0.3, v.shape).astype("float32")
        v.assign(val)
        w[v.path] = val.astype(np.float64)
    return lambda suffix: w[[k for k in w if k.endswith(suffix)][0]]
