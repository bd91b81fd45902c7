"""Exact work elimination in the unroll (tpu_convrnn/model/unroll_plan.py): the same numbers as the
dense unroll, and batch-1 / shared node-steps exactly where the spec's data flow allows them."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import tpu_convrnn
from small_graphs import S, randomize, small_graph
from tpu_convrnn.model import execution


def _cases():
    small = dict(width=0.125, image_size=16, grow_image_size=True)
    return {
        "rgc_shallow": lambda: tpu_convrnn.build_model("rgc_shallow", **small),
        "rgc_intermediate": lambda: tpu_convrnn.build_model("rgc_intermediate", width=0.0625,
                                                            image_size=32, times=12),
        # feedback into the input node (conv3 -> conv1, conv3 -> conv2) and a skip conv1 -> conv3
        "feedback_and_skip": lambda: small_graph(times=6, image_off=3,
                                                 extra_edges=[["conv1", "conv3"]]),
        "temporal_readout": lambda: small_graph(times=7, readout={"kind": "max_conf"}),
        "neural_presentation": lambda: tpu_convrnn.build_model(
            "ugrnn_shallow", presentation="neural", readout={"kind": "w_time_avg"},
            **small),
        "remat": lambda: tpu_convrnn.build_model("lstm_shallow", **small),  # with remat on
    }


def _run(model, images, labels, eliminate, **settings):
    """Logits, every node's output at every step, the loss and its gradients."""
    record = list(model.node_names)
    with execution.settings(eliminate=eliminate, **settings):
        with tf.GradientTape() as tape:
            out = model.unroll(images, record=record, training=True)
            logits = model.decode(out["window_logits"])
            ce = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
            loss = tf.reduce_mean(ce) + tf.add_n(model.losses or [tf.constant(0.0)])
        grads = tape.gradient(loss, model.trainable_variables)
    return logits, out, loss, grads


def _close(a, b, what, tol=1e-5):
    a, b = np.asarray(a, "float32"), np.asarray(b, "float32")
    assert a.shape == b.shape, what
    scale = max(float(np.max(np.abs(b))), 1e-6)
    assert float(np.max(np.abs(a - b))) <= tol * scale, (what, np.max(np.abs(a - b)), scale)


@pytest.mark.parametrize("case", list(_cases()))
def test_same_logits_features_loss_and_gradients(case):
    model = _cases()[case]()
    if case in ("feedback_and_skip", "temporal_readout"):
        randomize(model, seed=1)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (3, model.image_size, model.image_size, 3)).astype("float32")
    labels = rng.integers(0, model.num_classes, 3)
    settings = {"remat": True} if case == "remat" else {}
    got = _run(model, images, labels, True, **settings)
    want = _run(model, images, labels, False, **settings)
    tol = 5e-5  # float32 round-off: batch-1 and batch-3 convolutions sum in other orders
    _close(got[0], want[0], "logits", tol)
    for n in model.node_names:
        for t in range(model.times):
            _close(got[1][n][t], want[1][n][t], f"{n} at t={t}", tol)
    _close(got[2], want[2], "loss", tol)
    for v, g, w in zip(model.trainable_variables, got[3], want[3]):
        assert (g is None) == (w is None), v.path
        if w is not None:
            _close(g, w, f"gradient of {v.path}", tol)
    # and the elimination really removed work: fewer node-steps at full batch
    full = [sum(s.varies for s in model.plan(eliminate=e).computed()) for e in (True, False)]
    assert full[0] < full[1], full


def test_mixed_precision_adds_no_error_beyond_bfloat16s_own():
    """Under mixed_bfloat16 both unrolls round (batch-1 and batch-3 convolutions, gradients
    summed over shared steps in bfloat16), so each is compared with the float32 model on the
    same weights: elimination's error stays that of the dense bfloat16 unroll."""
    small = dict(width=0.125, image_size=16, grow_image_size=True)
    keras.utils.set_random_seed(0)
    m16 = tpu_convrnn.build_model("rgc_shallow", dtype="mixed_bfloat16", **small)
    m32 = tpu_convrnn.build_model("rgc_shallow", **small)
    for a, b in zip(m32.weights, m16.weights):
        a.assign(b)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (3, m16.image_size, m16.image_size, 3)).astype("float32")
    labels = rng.integers(0, 1000, 3)
    ref = _run(m32, images, labels, False)
    got, dense = _run(m16, images, labels, True), _run(m16, images, labels, False)

    def err(a, b):
        a, b = np.asarray(a, "float32"), np.asarray(b, "float32")
        return float(np.max(np.abs(a - b))) / max(float(np.max(np.abs(b))), 1e-6)
    pairs = [("logits", got[0], dense[0], ref[0]), ("loss", got[2], dense[2], ref[2])]
    pairs += [(v.path, g, d, r) for v, g, d, r in zip(m16.trainable_variables, got[3], dense[3],
                                                      ref[3])]
    # bfloat16's error differs from variable to variable (1e-3 to 0.3 of the largest entry
    # here); a wrongly shared or broadcast step would be wrong by the whole value
    for what, g, d, r in pairs:
        assert err(g, r) <= 2 * err(d, r) + 0.01, (what, err(g, r), err(d, r))
    mean_eliminated = np.mean([err(g, r) for _, g, _, r in pairs])
    mean_dense = np.mean([err(d, r) for _, _, d, r in pairs])
    assert mean_eliminated <= 1.25 * mean_dense, (mean_eliminated, mean_dense)


@pytest.mark.parametrize("extra_edges", [[], [["conv1", "conv3"]]])
def test_batch_one_exactly_where_rows_are_equal(extra_edges):
    """Brute force against the dense unroll of two different images: a node-step is planned at
    batch 1 if and only if its two rows are equal. The skip edge conv1 -> conv3 brings the image
    to conv3 a step early (t = 1, not 2): a plan that went by the feedforward depth fails."""
    model = small_graph(times=6, image_off=3, extra_edges=extra_edges)
    randomize(model, seed=2)
    images = np.random.default_rng(3).uniform(0, 1, (2, S, S, 3)).astype("float32")
    with execution.settings(eliminate=False):
        dense = model.unroll(images, record=model.node_names)
    plan = model.plan(record=model.node_names)
    for t in range(model.times):
        for n in model.node_names:
            rows = np.asarray(dense[n][t])
            # rows of one batched op can differ by round-off; an image's effect is far larger
            tol = 1e-5 * max(float(np.max(np.abs(rows))), 1e-6)
            differ = float(np.max(np.abs(rows[0] - rows[1]))) > tol
            assert plan.varies[plan.outputs[t][n]] == differ, (n, t)
    conv3_arrival = min(t for t in range(6) if plan.varies[plan.outputs[t]["conv3"]])
    assert conv3_arrival == (1 if extra_edges else 2)


def test_stateless_layers_are_computed_once_per_distinct_input():
    """rgc_intermediate (spec: conv1-conv3 have no memory and no feedback, T = 17, the image for
    t < 12, then the blank, the readout at t = 16, ten edges after conv1): with every layer
    recorded, conv1 sees two distinct inputs (frame, blank), conv2 three (its zero stand-in at
    t = 0 and conv1's two outputs), conv3 four. For the logits alone the blank's path is dead
    (conv1 at t >= 12 reaches the readout at t >= 22), so one fewer each."""
    model = tpu_convrnn.build_model("rgc_intermediate", width=0.0625, image_size=32)
    assert (model.times, model.image_off, model.window) == (17, 12, [16, 17])

    def counts(plan):
        count, batch_one = {}, {}
        for s in plan.computed():
            count[s.node] = count.get(s.node, 0) + 1
            batch_one[s.node] = batch_one.get(s.node, 0) + (not s.varies)
        return ([count[n] for n in ("conv1", "conv2", "conv3")],
                [batch_one[n] for n in ("conv1", "conv2", "conv3")])
    # at batch 1: conv1 on the blank; conv2 on zeros and on conv1(blank); conv3 likewise
    assert counts(model.plan(record=model.node_names)) == ([2, 3, 4], [1, 2, 3])
    assert counts(model.plan()) == ([1, 2, 3], [0, 1, 2])
    # conv4 (the first cell) is image-independent for t < 3 (three edges from the input)
    steps4 = sorted((s.t, s.varies) for s in model.plan().computed() if s.node == "conv4")
    assert [v for t, v in steps4 if t < 3] == [False] * 3 and all(v for t, v in steps4 if t >= 3)


def _keys(config):
    if isinstance(config, dict):
        return set(config) | {k for v in config.values() for k in _keys(v)}
    if isinstance(config, (list, tuple)):
        return {k for v in config for k in _keys(v)}
    return set()


def test_settings_are_not_part_of_the_model(tmp_path):
    model = tpu_convrnn.build_model("rgc_shallow", width=0.125, image_size=16,
                                    grow_image_size=True)
    path = str(tmp_path / "m.keras")
    model.save(path)
    import json
    import zipfile
    with zipfile.ZipFile(path) as z:
        saved = json.loads(z.read("config.json"))
    names = {"eliminate", "remat", "depthwise", "depthwise_method", "fuse_convs"}
    assert not names & _keys(saved), names & _keys(saved)
    # a config that holds one as a model argument is refused, naming it
    with pytest.raises(ValueError, match="Unrecognized keyword arguments .*'remat'"):
        type(model).from_config({**model.get_config(), "remat": True})
    with pytest.raises(ValueError, match="execution setting 'eliminat': unknown"):
        with execution.settings(eliminat=False):
            pass
    with pytest.raises(ValueError, match="^eliminate = 'no': expected True or False"):
        execution.set_default(eliminate="no")
    assert execution.current().eliminate is True
    with execution.settings(eliminate=False):
        assert execution.current().eliminate is False
    assert execution.current().eliminate is True


def test_gin_sets_the_default_when_the_model_is_built():
    import gin
    from tpu_convrnn import gin_bindings, main
    gin.clear_config()
    try:
        main.parse_gin(["gin/models/rgc_shallow.gin", "gin/local.gin"],
                       ["execution.eliminate = False"])
        gin_bindings.configured_model()
        assert execution.current().eliminate is False
        gin.clear_config()
        main.parse_gin(["gin/models/rgc_shallow.gin"], ["execution.eliminate = 'no'"])
        with pytest.raises(ValueError) as e:
            gin_bindings.configured_model()
        assert main.binding_error(e.value) == \
            "execution.eliminate = 'no': expected True or False (an execution setting)"
    finally:
        gin.clear_config()
        execution.set_default(eliminate=True)


def test_unknown_recorded_layer_is_named():
    with pytest.raises(ValueError, match="record: 'conv9' is not a node of the graph"):
        small_graph().unroll(np.zeros((1, S, S, 3), "float32"), record=["conv9"])
