"""Synthetic neural assemblies with planted structure, from a model's own features.

Responses of each region are a fixed random linear map of one layer's features at the model
step that covers each time bin, scaled to unit variance per site and bin, plus Gaussian trial
noise of a chosen size, so the reliability of the trial average is known in advance:
``signal / (signal + noise**2 / repetitions)``. A fit with the right layer should then reach a
noise-corrected r near 1.

    python -m tpu_convrnn.neural.synthetic --output=demo --num_stimuli=200

writes ``demo/stimuli/<stimulus_id>.png`` (digits of the embedded dataset, ``object_name`` =
the digit), ``demo/assembly.nc`` (Brain-Score layout, one presentation per repetition),
``demo/assembly.npz`` (``trials`` form) and ``demo/model.weights.h5``: the weights of the model
whose features were planted (rgc_shallow at a quarter width, 72 px, 10 outputs, randomly
initialised), for the README's example. V4 reads conv3, IT reads conv5.
"""
from __future__ import annotations

import sys

import numpy as np
from absl import flags

from tpu_convrnn import cli, lazy
from tpu_convrnn.neural.assembly import from_trials

# (TensorFlow and Keras: when the demo is written)
embedded = lazy("tpu_convrnn.data.embedded")
builders = lazy("tpu_convrnn.model.builders")
benchmark = lazy("tpu_convrnn.neural.benchmark")


def planted_trials(features: dict, regions: dict, steps, sites: int = 16, repetitions: int = 6,
                   noise: float = 1.0, seed: int = 0, rank: int | None = None):
    """[repetition, stimulus, neuroid, bin] trials and the region of each neuroid.
    ``regions``: {region: layer}; ``steps``: model step per bin; ``rank``: the map's rank
    (None: full), i.e. the sites read out ``rank`` random directions of the features."""
    rng = np.random.default_rng(seed)
    blocks, region_of = [], []
    for region, layer in regions.items():
        f = features[layer]
        w = rng.normal(size=(f.shape[2], sites)) if rank is None else \
            rng.normal(size=(f.shape[2], rank)) @ rng.normal(size=(rank, sites))
        signal = np.stack([f[s] @ w for s in steps], axis=-1)  # [P, sites, B]
        signal = (signal - signal.mean(0)) / (signal.std(0) + 1e-12)
        blocks.append(signal[None] + noise * rng.normal(size=(repetitions,) + signal.shape))
        region_of += [region] * sites
    return np.concatenate(blocks, axis=2), np.array(region_of)


def expected_reliability(noise: float, repetitions: int) -> float:
    """Reliability of the trial average when the signal has unit variance."""
    return 1.0 / (1.0 + noise ** 2 / repetitions)


def make_demo(output: str, num_stimuli: int = 200, sites: int = 16, noise: float = 1.5,
              repetitions: int = 6, seed: int = 0, latency_ms: float = 70.0,
              window=(70.0, 260.0)) -> dict:
    """Writes the demo stimuli and assembly (see the module docstring); returns paths."""
    import os

    import tensorflow as tf
    import xarray as xr

    digits, labels, _ = embedded._load_arrays()
    pick = np.random.default_rng(seed).choice(len(digits), num_stimuli, replace=False)
    ids = np.array([f"digit{int(i):05d}" for i in pick])
    folder = os.path.join(output, "stimuli")
    os.makedirs(folder, exist_ok=True)
    for sid, i in zip(ids, pick):
        rgb = np.repeat(digits[i][..., None], 3, axis=-1)
        tf.io.write_file(os.path.join(folder, f"{sid}.png"), tf.io.encode_png(rgb))
    model = builders.build_model("rgc_shallow", width=0.25, image_size=72, presentation="neural",
                        num_classes=10)
    images = tf.image.resize(np.repeat(digits[pick][..., None], 3, -1) / 255.0, (72, 72))
    model.save_weights(os.path.join(output, "model.weights.h5"))
    feats = benchmark.model_features(model, images.numpy(), ["conv3", "conv5"])
    starts = np.arange(window[0], window[1], 10.0)
    steps = ((starts + 5 - latency_ms) // 10).astype(int)
    trials, region = planted_trials(feats, {"V4": "conv3", "IT": "conv5"}, steps, sites,
                                    repetitions, noise, seed, rank=8)
    objects = np.array([str(labels[i]) for i in pick])
    np.savez(os.path.join(output, "assembly.npz"), trials=trials, stimulus_id=ids,
             region=region, time_bin_start=starts, time_bin_stop=starts + 10,
             object_name=objects)
    r, p, n, b = trials.shape
    da = xr.DataArray(trials.reshape(r * p, n, b), dims=("presentation", "neuroid", "time_bin"),
                      coords={"stimulus_id": ("presentation", np.tile(ids, r)),
                              "object_name": ("presentation", np.tile(objects, r)),
                              "repetition": ("presentation", np.repeat(np.arange(r), p)),
                              "region": ("neuroid", region),
                              "time_bin_start": ("time_bin", starts),
                              "time_bin_stop": ("time_bin", starts + 10)}, name="responses")
    da.to_netcdf(os.path.join(output, "assembly.nc"))
    from_trials(trials, ids, region, starts, starts + 10, objects)  # validates
    return {"stimuli": folder, "assembly": os.path.join(output, "assembly.nc"),
            "weights": os.path.join(output, "model.weights.h5"),
            "expected_reliability": expected_reliability(noise, repetitions)}


FLAGS = flags.FlagValues()
flags.DEFINE_string("output", None, "folder to write stimuli/ and assembly.*",
                    flag_values=FLAGS)
flags.DEFINE_integer("num_stimuli", 200, "digit images shown", flag_values=FLAGS)
flags.DEFINE_integer("sites", 16, "neuroids per region", flag_values=FLAGS)
flags.DEFINE_float("noise", 1.5, "trial noise s.d. (signal s.d. 1)", flag_values=FLAGS)
flags.DEFINE_integer("repetitions", 6, "trials per stimulus", flag_values=FLAGS)
flags.DEFINE_integer("seed", 0, "seed of the stimuli, weights and noise", flag_values=FLAGS)
flags.mark_flag_as_required("output", flag_values=FLAGS)


def main(argv=None) -> int:
    return cli.main(_write, FLAGS, __doc__, argv)


def _write(a) -> int:
    out = make_demo(a.output, a.num_stimuli, a.sites, a.noise, a.repetitions, a.seed)
    print(f"wrote {out['stimuli']}/ ({a.num_stimuli} images), {out['assembly']} (+ .npz) and "
          f"{out['weights']}; planted reliability of the trial average: "
          f"{out['expected_reliability']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
