"""Compare a model's dynamics with neural responses over time.

    python -m tpu_convrnn.neural --assembly=demo/assembly.nc --stimuli=demo/stimuli \
        --gin_file=gin/models/rgc_shallow.gin --checkpoint=rgc_shallow.keras \
        --layers=V4=conv3,IT=conv5 --output=results/rgc_shallow

The model sees each stimulus as the experiment showed it (default ``model.presentation =
'neural'``: 26 steps of 10 ms, image off at step 10); each neural time bin in --window is mapped
to the model step that covers it (--latency_ms: the neural time of step 0). Writes
<output>.nc (xarray: region x split x time_bin), <output>.csv and <output>.png.
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

# (none of these loads TensorFlow: --help and flag errors come before it)
from tpu_convrnn import cli, gin_bindings, lazy  # noqa: E402
from tpu_convrnn.gin_bindings import parse_gin  # noqa: E402
from tpu_convrnn.neural.assembly import load_assembly  # noqa: E402
from tpu_convrnn.neural.benchmark import compare, model_features, write_results  # noqa: E402
from tpu_convrnn.progress import Progress  # noqa: E402
from tpu_convrnn.stimuli import load_stimuli  # noqa: E402

builders = lazy("tpu_convrnn.model.builders")  # (Keras: when a model is built)

flags.DEFINE_string("assembly", None, "Neural assembly: .nc (Brain-Score layout) or .npz.")
flags.DEFINE_string("stimuli", None, "Stimuli: a folder of images named <stimulus_id>.<ext>, or "
                    "a CSV with 'stimulus_id' and 'path' columns, or .npz with images + "
                    "stimulus_id.")
flags.DEFINE_string("features", None, "Instead of --stimuli + a model: an .npz written by "
                    "`python -m tpu_convrnn.main --mode=features` ({layer: [T, N, ...]} and "
                    "stimulus_id).")
flags.DEFINE_multi_string("gin_file", [], "gin file(s) of the model.")
flags.DEFINE_multi_string("gin_param", [], "gin binding(s), after the files.")
flags.DEFINE_string("presentation", "neural", "model.presentation: neural (T=26, image off at "
                    "10), default (the model's own) or constant.")
flags.DEFINE_string("checkpoint", None, "Model weights (TF1 checkpoint prefix or .keras).")
flags.DEFINE_list("layers", None, "REGION=LAYER pairs (e.g. V4=conv3,IT=conv5); for "
                  "--mapping=graded, REGION=L1+L2+L3. Regions left out choose among "
                  "--candidate_layers by inner cross-validation.")
flags.DEFINE_list("candidate_layers", None, "Layers to choose from (default: all recorded).")
flags.DEFINE_enum("mapping", "temporal", ["temporal", "uniform", "graded"], "temporal: model "
                  "step per bin; uniform/graded: for feedforward models.")
flags.DEFINE_enum("method", "pls", ["pls", "ridge"], "PLS (25 components, no scaling) or "
                  "ridge with inner-CV alpha.")
flags.DEFINE_integer("num_splits", 10, "Cross-validation splits of the stimuli (90/10, "
                     "stratified by object_name when present).")
flags.DEFINE_list("window", ["70", "260"], "Analysis window in ms: START,STOP.")
flags.DEFINE_float("latency_ms", 70.0, "Neural time of model step 0.")
flags.DEFINE_integer("project", 1000, "Reduce each layer to this many dims with a fixed sparse "
                     "random projection while computing features (0: keep all).")
flags.DEFINE_integer("pca", 0, "Then PCA to this many dims, fitted on each split's training "
                     "stimuli only (0: none).")
flags.DEFINE_integer("batch_size", 16, "Stimuli per forward pass.")
flags.DEFINE_integer("seed", 0, "Seed of the splits and the projection.")
flags.DEFINE_string("model_name", None, "Name in the results (default: the gin model base).")
flags.DEFINE_multi_string("compare", [], "Results (.nc) of other models to draw on the figure.")
flags.DEFINE_string("output", "neural_results", "Output prefix.")
FLAGS = flags.FLAGS


def _layers_arg(pairs, mapping):
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ValueError(f"--layers: {pair!r} is not REGION=LAYER")
        region, layer = pair.split("=", 1)
        out[region] = layer.split("+") if mapping == "graded" else layer
    return out


def _features_from_model(assembly, layers, candidates):
    import numpy as np

    parse_gin(FLAGS.gin_file, FLAGS.gin_param + [f"model.presentation = '{FLAGS.presentation}'"])
    model = gin_bindings.configured_model()
    if FLAGS.checkpoint:
        builders.load_into(model, FLAGS.checkpoint)
    images, ids = load_stimuli(FLAGS.stimuli, size=model.image_size)
    index = {s: i for i, s in enumerate(ids)}
    missing = [s for s in assembly.stimulus_id if s not in index]
    if missing:
        raise ValueError(f"{len(missing)} stimulus ids of the assembly have no image in "
                         f"{FLAGS.stimuli}: {missing[:10]}")
    images = np.asarray(images)[[index[s] for s in assembly.stimulus_id]]
    wanted = sorted({x for v in layers.values() for x in ([v] if isinstance(v, str) else v)}
                    | set(candidates or []))
    if not wanted:
        wanted = [n for n in model.node_names if n != model.readout_name]
    with Progress(len(images), "features") as bar:
        feats = model_features(model, images, wanted, FLAGS.batch_size, FLAGS.project or None,
                               FLAGS.seed, bar)
    return feats, FLAGS.model_name or model.name


def _features_from_file(assembly):
    import numpy as np
    with np.load(FLAGS.features) as d:
        ids = [str(s) for s in d["stimulus_id"]]
        index = {s: i for i, s in enumerate(ids)}
        missing = [s for s in assembly.stimulus_id if s not in index]
        if missing:
            raise ValueError(f"{len(missing)} stimulus ids of the assembly are not in "
                             f"{FLAGS.features}: {missing[:10]}")
        order = [index[s] for s in assembly.stimulus_id]
        feats = {k: d[k][:, order].reshape(d[k].shape[0], len(order), -1)
                 for k in d.files if k not in ("stimulus_id", "time_ms")}
    return feats, FLAGS.model_name or os.path.splitext(os.path.basename(FLAGS.features))[0]


def _check_before_features(assembly, layers):
    """What can be checked before the (long) features and fits: the window, the regions of
    --layers, the --compare files. Returns (window, opened --compare results)."""
    import xarray as xr
    try:
        window = tuple(float(x) for x in FLAGS.window)
    except ValueError:
        window = ()
    if len(window) != 2 or not window[0] < window[1]:
        raise ValueError(f"--window={','.join(FLAGS.window)}: expected START,STOP in ms with "
                         "START < STOP")
    bins = ((assembly.time_bin_start >= window[0]) & (assembly.time_bin_stop <= window[1]))
    if not bins.any():
        raise ValueError(f"--window={','.join(FLAGS.window)}: no time bin of {FLAGS.assembly} "
                         f"lies inside (bins from {float(assembly.time_bin_start.min()):g} to "
                         f"{float(assembly.time_bin_stop.max()):g} ms)")
    unknown = [r for r in layers if r not in list(assembly.regions)]
    if unknown:
        raise ValueError(f"--layers: region(s) {unknown} not in {FLAGS.assembly} (regions: "
                         f"{', '.join(map(str, assembly.regions))})")
    others = []
    for path in FLAGS.compare:
        if not os.path.exists(path):
            raise ValueError(f"--compare={path}: no such file")
        try:
            others.append(xr.open_dataset(path))
        except Exception as e:  # noqa: BLE001  (any reason it cannot be read)
            raise ValueError(f"--compare={path}: cannot be read as results ({e})") from e
    return window, others


def run():
    if not FLAGS.assembly:
        raise ValueError("--assembly is required")
    if bool(FLAGS.features) == bool(FLAGS.stimuli):
        raise ValueError("give either --stimuli (with a model's --gin_file) or --features")
    assembly = load_assembly(FLAGS.assembly)
    layers = _layers_arg(FLAGS.layers, FLAGS.mapping)
    window, others = _check_before_features(assembly, layers)
    if FLAGS.features:
        feats, name = _features_from_file(assembly)
    else:
        feats, name = _features_from_model(assembly, layers, FLAGS.candidate_layers)
    n_bins = int(((assembly.time_bin_start >= window[0]) &
                  (assembly.time_bin_stop <= window[1])).sum())
    with Progress(len(assembly.regions) * n_bins * FLAGS.num_splits, "fits", unit="fits") as bar:
        ds = compare(feats, assembly, layers, FLAGS.candidate_layers, FLAGS.mapping,
                     FLAGS.method, FLAGS.num_splits, window, FLAGS.latency_ms,
                     pca=FLAGS.pca or None, seed=FLAGS.seed, model_name=name, progress=bar)
    for path in write_results(ds, FLAGS.output, others):
        print(f"wrote {path}")
    for region in ds["region"].values:
        d = ds.sel(region=region)
        print(f"{region} ({ds.attrs[f'layer_{region}']}): median r over bins "
              f"{float(d['r'].mean('split').median()):.3f}, noise-corrected "
              f"{float(d['r_corrected'].mean('split').median()):.3f}, ceiling "
              f"{float(d['ceiling'].median()):.3f}")
    return 0


def _main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from absl import logging
    logging.set_verbosity(logging.WARNING)
    try:
        return run()
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    cli.run(_main, __doc__)
