"""The unrolled graph (tpu_convrnn/model/graph.py, node.py) against an independent NumPy unroll."""
import numpy as np
import pytest

import numpy_reference as ref
from small_graphs import S, _conv, randomize, small_graph
from tpu_convrnn.model.graph import IMAGENET_MEAN, IMAGENET_STD, ConvRNN


def numpy_unroll(w, images, times, image_off, feedback=True):
    """Spec §1.3: every node at every step, inputs = predecessors' outputs at t - 1."""
    x = (images - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    n = images.shape[0]
    out = {"conv1": np.zeros((n, 4, 4, 4)), "conv2": np.zeros((n, 4, 4, 6)),
           "conv3": np.zeros((n, 2, 2, 5)), "readout": np.zeros((n, 7))}
    c2, h2 = np.zeros((n, 4, 4, 64)), np.zeros((n, 4, 4, 6))
    s3 = np.zeros((n, 4, 4, 5))
    history = []
    for t in range(times):
        frame = x if t < image_off else np.full_like(x, 0.5)
        prev = out
        # conv1: the frame first, then feedback from conv3 (resized 2x2 -> 8x8), concatenated.
        h1_in = frame
        if feedback:
            h1_in = np.concatenate([frame, ref.resize_bilinear_aligned(prev["conv3"], (S, S))], -1)
        o1 = ref.max_pool_same(ref.elu(ref.conv2d(h1_in, w("conv1/pre_0/kernel"),
                                                  w("conv1/pre_0/bias"))))
        # conv2: median cell, feedforward x = conv1 output, feedback f = conv3 resized to 4x4.
        x2 = prev["conv1"]
        u2 = ref.conv2d(x2, w("conv2/pre_0/kernel"), w("conv2/pre_0/bias"))
        f2 = ref.resize_bilinear_aligned(prev["conv3"], (4, 4)) if feedback else None
        h2, c2 = ref.median_rgc_step(lambda s: w("conv2/rgc" + s), u2, x2, f2, c2, h2)
        # conv3: linear-leak cell after an ELU conv.
        u3 = ref.elu(ref.conv2d(prev["conv2"], w("conv3/pre_0/kernel"), w("conv3/pre_0/bias")))
        s3 = w("memory_decay") * s3 + u3
        o3 = ref.max_pool_same(s3)
        logits = prev["conv3"].mean(axis=(1, 2)) @ w("readout/fc/kernel") + w("readout/fc/bias")
        out = {"conv1": o1, "conv2": h2, "conv3": o3, "readout": logits}
        history.append(out)
    return history


@pytest.mark.parametrize("feedback", [True, False])
def test_unroll_matches_numpy(feedback):
    model = small_graph(feedback=feedback)
    w = randomize(model)
    images = np.random.default_rng(1).uniform(0, 1, (2, S, S, 3)).astype("float32")
    want = numpy_unroll(w, images, 5, 3, feedback)
    got = model.unroll(images, record=["conv1", "conv2", "conv3", "logits"])
    for t in range(5):
        for name, key in (("conv1", "conv1"), ("conv2", "conv2"), ("conv3", "conv3"),
                          ("readout", "logits")):
            g, e = np.asarray(got[key][t]), want[t][name]
            assert np.max(np.abs(g - e)) <= 2e-5 * max(np.max(np.abs(e)), 1e-6), (name, t)
    np.testing.assert_allclose(np.asarray(model(images)), want[-1]["readout"], rtol=1e-4,
                               atol=1e-5)


def test_image_reaches_layer_k_at_step_k_minus_1_and_early_outputs_are_not_zero():
    model = small_graph(times=6, image_off=6, feedback=False)
    randomize(model, seed=2)
    rng = np.random.default_rng(3)
    a, b = rng.uniform(0, 1, (2, 1, S, S, 3)).astype("float32")
    fa = model.unroll(a, record=["conv1", "conv2", "conv3", "logits"])
    fb = model.unroll(b, record=["conv1", "conv2", "conv3", "logits"])
    for k, name in enumerate(["conv1", "conv2", "conv3", "logits"], start=1):
        for t in range(6):
            same = np.allclose(np.asarray(fa[name][t]), np.asarray(fb[name][t]))
            assert same == (t < k - 1), (name, t)
        # before the image arrives the layer still runs on bias-driven inputs
        assert k == 1 or np.any(np.asarray(fa[name][0]) != 0)


def test_blank_is_half_in_normalised_space():
    model = small_graph(times=4, image_off=1, feedback=False)
    frame, blank = model.present(np.zeros((1, S, S, 3), "float32"))
    assert np.all(np.asarray(blank) == 0.5)
    np.testing.assert_allclose(np.asarray(frame)[0, 0, 0], -np.array(IMAGENET_MEAN) /
                               np.array(IMAGENET_STD), rtol=1e-6)
    u8, _ = model.present(np.full((1, S, S, 3), 255, "uint8"))
    np.testing.assert_allclose(np.asarray(u8)[0, 0, 0], (1 - np.array(IMAGENET_MEAN)) /
                               np.array(IMAGENET_STD), rtol=1e-6)


def test_temporal_readout_window_and_decode():
    model = small_graph(times=7, readout={"kind": "max_conf"})
    assert model.window == [4, 7]  # t in [number of nodes, T)
    images = np.random.default_rng(4).uniform(0, 1, (3, S, S, 3)).astype("float32")
    out = model.unroll(images, record=["logits"])
    window = np.stack([np.asarray(t) for t in out["logits"][4:7]], axis=1)
    np.testing.assert_allclose(np.asarray(out["window_logits"]), window, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(model(images)), np.asarray(model.decode(window)),
                               rtol=1e-5)


def test_batch_of_one():
    model = small_graph()
    assert tuple(model(np.zeros((1, S, S, 3), "float32")).shape) == (1, 7)


def test_building_constructs_each_node_once(monkeypatch):
    """Building must not deep-copy the model: Keras wraps configs assigned to a layer in tracked
    containers that reference the layer, and deep-copying one re-creates every layer built so
    far (through a .keras round trip each), which made building rgc_intermediate seconds slower."""
    from tpu_convrnn.model import node as node_lib
    made = []
    init = node_lib.Node.__init__

    def counting_init(self, *args, **kwargs):
        made.append(kwargs.get("name"))
        init(self, *args, **kwargs)

    monkeypatch.setattr(node_lib.Node, "__init__", counting_init)
    model = small_graph()
    assert made == ["conv1", "conv2", "conv3", "readout"]


def test_config_round_trip_and_keras_file(tmp_path):
    model = small_graph()
    randomize(model, seed=5)
    images = np.random.default_rng(6).uniform(0, 1, (2, S, S, 3)).astype("float32")
    path = str(tmp_path / "small.keras")
    model.save(path)
    import keras
    again = keras.models.load_model(path)
    np.testing.assert_array_equal(np.asarray(again(images)), np.asarray(model(images)))


@pytest.mark.parametrize("nodes,edges,match", [
    ([{"name": "a"}, {"name": "a"}], [], "duplicate node name 'a'"),
    ([{"name": "a", "pre": [_conv(2)]}, {"name": "b", "pre": ["gap"]}], [["a", "c"]],
     r"edge a -> c: unknown node 'c'"),
    ([], [], "no nodes"),
    ([{"name": "a", "pre": [_conv(2)]}, {"name": "b", "pre": ["gap"]}], [],
     "node 'b' has no feedforward input"),
    ([{"name": "a", "pre": [_conv(2)]}], [], r"readout node 'a' gives shape .*\[N, classes\]"),
    ([{"name": "a", "pre": [_conv(2)]}, {"name": "b", "pre": ["gap"]}], [["a", "b"], ["b", "a"]],
     r"node 'a': cannot combine an input of shape \(None, 2\).*edge|node 'a': cannot combine"),
    ([{"name": "a", "pre": ["blur"]}, {"name": "b", "pre": ["gap"]}], [["a", "b"]],
     "node 'a' pre: unknown op 'blur'"),
    ([{"name": "a", "pre": [_conv(2)], "memory": {"kind": "lstmx"}}, {"name": "b", "pre": ["gap"]}],
     [["a", "b"]], "node 'a' memory: unknown cell kind 'lstmx'"),
])
def test_build_time_validation(nodes, edges, match):
    with pytest.raises(ValueError, match=match):
        ConvRNN(nodes, edges, times=3, image_size=S)


def test_readout_node_must_exist():
    with pytest.raises(ValueError, match="readout node 'logits' is not a node"):
        ConvRNN([{"name": "a", "pre": ["gap"]}], [], times=2, readout_node="logits", image_size=S)


def test_remat_gives_the_same_gradients():
    import tensorflow as tf
    from tpu_convrnn.model import execution
    model = small_graph()
    randomize(model, seed=9)
    images = np.random.default_rng(10).uniform(0, 1, (2, S, S, 3)).astype("float32")

    def grads(remat):
        with tf.GradientTape() as tape, execution.settings(remat=remat):
            loss = tf.reduce_sum(model(images) ** 2)
        return [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]
    for a, b in zip(grads(False), grads(True)):  # equal up to float32 round-off
        assert np.max(np.abs(a - b)) <= 1e-5 * np.max(np.abs(b))
