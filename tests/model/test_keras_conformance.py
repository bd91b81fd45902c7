"""Keras' own layer-test harness (``keras.src.testing.TestCase.run_layer_test``: config round
trip, build, symbolic and eager calls with their output specs, mixed_float16 output dtypes and
float32 weights) on Node (the cells: tests/model/cells/test_contract.py), and the model-level
conventions of ConvRNN."""
import keras
import numpy as np
import pytest
from keras.src import testing
from small_graphs import S, small_graph

from tpu_convrnn.model.graph import ConvRNN
from tpu_convrnn.model.node import Node

N = 2


def harness():
    return testing.TestCase("run_layer_test")


NODE = dict(pre=[{"op": "conv", "filters": 4, "kernel_size": 3, "name": "pre_0"}, "elu"],
            memory={"kind": "gru", "depth": 4}, post=["maxpool", {"op": "residual_add"}])


@pytest.mark.parametrize("kwargs, out, states", [
    (NODE, (N, 4, 4, 4), ((N, 8, 8, 4),)),
    (dict(pre=["gap", {"op": "fc", "units": 7}]), (N, 7), ()),
])
def test_node_passes_the_keras_layer_harness(kwargs, out, states):
    model_weights = Node(**kwargs)
    model_weights.build((N, 8, 8, 3))
    harness().run_layer_test(
        Node, init_kwargs=kwargs, input_shape=(N, 8, 8, 3), expected_output_shape=(out, states),
        expected_num_trainable_weights=len(model_weights.trainable_weights),
        run_training_check=False)


def test_node_symbolic_and_eager_calls_agree_in_structure():
    node = Node(**NODE)
    node.build((N, 8, 8, 3))
    symbolic = node(keras.KerasTensor((N, 8, 8, 3)))
    eager = node(np.zeros((N, 8, 8, 3), "float32"))
    assert [tuple(t.shape) for t in keras.tree.flatten(symbolic)] == \
        [tuple(t.shape) for t in keras.tree.flatten(eager)]


def test_convrnn_keeps_trainable_false_through_its_config():
    model = small_graph()
    model.trainable = False
    again = ConvRNN.from_config(model.get_config())
    assert not again.trainable and again.trainable_weights == []


def test_convrnn_declares_float32_logits_under_a_mixed_policy():
    model = ConvRNN.from_config({**small_graph().get_config(), "dtype": "mixed_bfloat16"})
    symbolic = model(keras.KerasTensor((N, S, S, 3)))
    eager = model(np.zeros((N, S, S, 3), "float32"))
    assert symbolic.dtype == "float32" and keras.backend.standardize_dtype(eager.dtype) == \
        "float32"


def test_convrnn_build_for_another_size_is_an_error():
    model = small_graph()
    model.build((None, S, S, 3))  # its own size: fine
    with pytest.raises(ValueError, match=rf"takes images of shape \[N, {S}, {S}, 3\]"):
        model.build((None, 2 * S, 2 * S, 3))
