"""Small models, features and planted assemblies for the neural tests."""
import numpy as np
from small_graphs import S, small_graph

from tpu_convrnn.model.graph import ConvRNN
from tpu_convrnn.neural.benchmark import model_features
from tpu_convrnn.neural.synthetic import planted_trials

STEP_BINS = np.array([90.0, 100.0, 110.0])  # latency 70 ms: model steps 2, 3, 4


def recurrent_features(num_stimuli=300, seed=0):
    """{conv1: [5, P, 64], conv3: [5, P, 20]} of the small feedback graph, random weights."""
    rng = np.random.default_rng(seed)
    model = small_graph(times=5, image_off=None)
    for v in model.weights:
        v.assign(rng.normal(0, 0.5, v.shape).astype("float32"))
    images = rng.uniform(0, 1, (num_stimuli, S, S, 3)).astype(np.float32)
    return model_features(model, images, ["conv1", "conv3"], batch_size=100)


def feedforward_features(num_stimuli=300, seed=0):
    rng = np.random.default_rng(seed)
    model = ConvRNN([{"name": "conv1", "pre": [{"op": "conv", "filters": 6, "kernel_size": 3,
                                                "activation": "elu", "name": "pre_0"}],
                      "post": ["maxpool"]},
                     {"name": "out", "pre": ["gap", {"op": "fc", "units": 3, "name": "fc"}]}],
                    [["conv1", "out"]], times=5, image_size=S, name="ff")
    images = rng.uniform(0, 1, (num_stimuli, S, S, 3)).astype(np.float32)
    return model_features(model, images, ["conv1"], batch_size=100)


def planted_assembly(features, regions, noise=1.0, repetitions=6, sites=12, seed=0,
                     objects=None):
    """Trials-form arrays (for from_trials / np.savez) planted from ``features``."""
    steps = ((STEP_BINS + 5 - 70) // 10).astype(int)
    trials, region = planted_trials(features, regions, steps, sites, repetitions, noise, seed)
    n = trials.shape[1]
    out = dict(trials=trials, stimulus_id=np.array([f"s{i:04d}" for i in range(n)]),
               region=region, time_bin_start=STEP_BINS, time_bin_stop=STEP_BINS + 10)
    if objects is not None:
        out["object_name"] = np.array([f"obj{i % objects}" for i in range(n)])
    return out
