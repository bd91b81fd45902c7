r"""tpu_convrnn's command line.

    python -m tpu_convrnn.main --gin_file=gin/reciprocal.gin --gin_file=gin/local.gin \
        --mode=train_and_eval --model_dir=runs/local          # CPU, embedded dataset
    python -m tpu_convrnn.main --gin_file=gin/reciprocal.gin --tpu=local \
        --gin_param="data.train_pattern='gs://b/imagenet/train-*'" ... --model_dir=gs://b/run
    python -m tpu_convrnn.main --gin_file=gin/models/rgc_intermediate.gin --mode=summary
    python -m tpu_convrnn.main --gin_file=gin/models/rgc_shallow.gin --mode=features \
        --checkpoint=rgc_shallow.keras --stimuli=stimuli/ --layers=conv3,conv4,conv5 \
        --output=features.npz

gin configures the model (``model.*``: see ``tpu_convrnn.model.builders.build_model`` and
``zoo.graph_config``), the recipe (``train.*``: ``tpu_convrnn.training.train.TrainConfig``) and the data
(``data.*``: ``tpu_convrnn.data.sources.DataConfig``); flags choose what to do with them.
A restart with the same --model_dir resumes from its newest checkpoint.
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from absl import app, flags  # noqa: E402

MODES = ("train", "eval", "train_and_eval", "summary", "features")

flags.DEFINE_multi_string("gin_file", [], "gin config file(s), applied in order.")
flags.DEFINE_multi_string("gin_param", [], "gin binding(s), e.g. \"model.times = 20\", "
                          "applied after the files.")
flags.DEFINE_multi_string("gin_search_paths", [], "Extra folders for gin include/file lookup "
                          "(the repository root is always searched).")
flags.DEFINE_enum("mode", "summary", MODES, "train: train to train.train_steps, resuming from "
                  "--model_dir; eval: evaluate the newest checkpoint; train_and_eval: evaluate "
                  "at every checkpoint; summary: print the model and its parameter count; "
                  "features: write per-layer, per-step features of --stimuli to --output.")
flags.DEFINE_string("model_dir", None, "Output folder, local or gs:// (checkpoints, "
                    "TensorBoard summaries, eval/metrics.json, the gin configs).")
flags.DEFINE_string("eval_name", "eval", "eval and train_and_eval: the model dir's folder "
                    "for the evaluation's metrics.json and summaries (e.g. eval_test, with "
                    "another data.eval_pattern, to score a second held-out set).")
flags.DEFINE_string("tpu", None, "TPU to train on: 'local' (this TPU VM) or a TPU name (pod "
                    "slice; run the same command on every worker). Default: GPUs if visible, "
                    "else MultiWorkerMirroredStrategy if TF_CONFIG is set, else the CPU.")
flags.DEFINE_string("checkpoint", None, "Weights: an original TF1 checkpoint prefix or a "
                    ".keras / .weights.h5 file (features mode).")
flags.DEFINE_string("stimuli", None, "features mode: a folder of images, a CSV with a 'path' "
                    "column, or a .npy/.npz of images [N, H, W, 3] in [0, 1] or [0, 255].")
flags.DEFINE_list("layers", None, "features mode: layers to record (default: all conv layers "
                  "and logits).")
flags.DEFINE_string("output", "features.npz", "features mode: output .npz (and .nc with "
                    "xarray).")
flags.DEFINE_integer("batch_size", 16, "features mode: stimuli per forward pass (bounds "
                     "memory).")
flags.DEFINE_boolean("original_window", False, "features mode: return conv_l from t=l on, as "
                     "the original model_func did (default: every step from t=0).")
FLAGS = flags.FLAGS

from tpu_convrnn import cli, console, gin_bindings, lazy  # noqa: E402  (none loads TensorFlow)
from tpu_convrnn.gin_bindings import REPO_ROOT, binding_error, parse_gin  # noqa: E402,F401
from tpu_convrnn.progress import Progress  # noqa: E402
from tpu_convrnn.stimuli import load_stimuli  # noqa: E402

# (TensorFlow and Keras: loaded when first used, after the flags and gin files are read)
experiment = lazy("tpu_convrnn.training.experiment")
features = lazy("tpu_convrnn.features")
builders = lazy("tpu_convrnn.model.builders")


def write_configs(model_dir, chief=True):
    """Writes the full and the operative gin config to the model dir and to TensorBoard."""
    import gin
    import tensorflow as tf
    if not chief:
        return
    tf.io.gfile.makedirs(model_dir)
    texts = {"config.gin": gin.config_str(), "operative_config.gin": gin.operative_config_str()}
    for name, text in texts.items():
        with tf.io.gfile.GFile(f"{model_dir}/{name}", "w") as f:
            f.write(text)
    with tf.summary.create_file_writer(f"{model_dir}/train").as_default(step=0):
        for name, text in texts.items():
            md = "\n".join("    " + line for line in text.splitlines())  # markdown code block
            tf.summary.text(f"gin/{name.split('.')[0]}", md)


def run_training(mode):
    trainers = []

    def on_start(trainer):
        trainers.append(trainer)
        write_configs(FLAGS.model_dir, trainer.chief)
    result = experiment.train_and_evaluate(
        mode, FLAGS.model_dir, gin_bindings.configured_model, gin_bindings.configured_data(),
        gin_bindings.configured_train(), tpu=FLAGS.tpu, eval_name=FLAGS.eval_name,
        on_start=on_start)
    if result["status"] != "preempted":
        print(f"{mode}: {result['status']} at step {result['step']}")
        return 0
    # Everything is saved and flushed by now. TensorFlow's own teardown (input pipeline
    # threads, thread pools) took 7-16 s, and minutes on a busy VM: a spot VM gets ~30 s.
    print(f"{mode}: preempted at step {result['step']}; exiting "
          f"{trainers[0].sigterm_delay()} after the signal", flush=True)
    sys.stderr.flush()
    os._exit(0)


def run_mode(mode):
    import gin

    if mode in ("train", "eval", "train_and_eval"):
        return run_training(mode)
    model = gin_bindings.configured_model()
    if FLAGS.model_dir:
        os.makedirs(FLAGS.model_dir, exist_ok=True)
        with open(os.path.join(FLAGS.model_dir, "operative_config.gin"), "w") as f:
            f.write(gin.operative_config_str())
    if mode == "summary":
        os.environ.setdefault("COLUMNS", "110")  # rich would cut the table at 80 columns
        model.summary(line_length=100)
        print(f"Unrolled for T={model.times} steps, image off at "
              f"{'never' if model.image_off is None else model.image_off}, readout "
              f"'{model.readout.kind}' over steps [{model.window[0]}, {model.window[1]}).")
        return 0
    if not FLAGS.stimuli:
        raise ValueError("--mode=features needs --stimuli")
    if FLAGS.checkpoint:
        builders.load_into(model, FLAGS.checkpoint)
    images, ids = load_stimuli(FLAGS.stimuli, size=model.image_size)
    with Progress(len(images), "features") as bar:
        feats = features.extract_features(model, images, FLAGS.layers, FLAGS.original_window,
                                 FLAGS.batch_size, bar)
    for path in features.write_features(FLAGS.output, feats, ids):
        print(f"wrote {path}: " + ", ".join(f"{k} {list(v.shape)}" for k, v in feats.items()))
    return 0


def _main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from absl import logging
    logging.set_verbosity(logging.WARNING)  # keep TF's INFO lines out of the progress output
    console.to_console()  # the package's own lines, plain on stdout
    try:
        parse_gin(FLAGS.gin_file, FLAGS.gin_param, FLAGS.gin_search_paths)
        return run_mode(FLAGS.mode)
    except ValueError as e:
        print(f"error: {binding_error(e)}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # TrainingDiverged, StrategyError, unreadable checkpoints
        print(f"error: {type(e).__name__}: {binding_error(e)}", file=sys.stderr)
        return 1


def run():
    cli.run(_main, __doc__)


if __name__ == "__main__":
    run()
