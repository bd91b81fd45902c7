"""Original TF1 ConvRNN checkpoints -> Keras files, from the command line.

    python -m tpu_convrnn.convert --model=rgc_shallow --checkpoint=PREFIX --output=rgc_shallow.keras

The mapping and its checks are ``tpu_convrnn.model.tf1_checkpoint``; ``load_model(name,
checkpoint=PREFIX)`` reads a TF1 checkpoint from Python.
"""
from __future__ import annotations

import os
import sys

from tpu_convrnn import cli, files, lazy

builders = lazy("tpu_convrnn.model.builders")  # (Keras: after the flags are read)
tf1_checkpoint = lazy("tpu_convrnn.model.tf1_checkpoint")


def main(argv=None):
    from absl import app, flags

    flags.DEFINE_string("model", None, "Released model name, e.g. rgc_intermediate.")
    flags.DEFINE_string("checkpoint", None, "TF1 checkpoint prefix (e.g. ckpts/model.ckpt-NNN).")
    flags.DEFINE_string("output", None, "Keras file to write (.keras).")
    flags.mark_flags_as_required(["model", "checkpoint", "output"])
    FLAGS = flags.FLAGS

    def _run(_):
        folder = os.path.dirname(os.path.abspath(FLAGS.output))
        try:  # the cheap checks first, then the model and the checkpoint
            if not FLAGS.output.endswith(".keras"):
                raise ValueError(f"--output {FLAGS.output!r} must end in .keras")
            if not os.path.isdir(folder):
                raise ValueError(f"--output {FLAGS.output!r}: folder {folder!r} does not exist")
            files.writable_folder(folder, "--output's folder")
            model = builders.load_model(FLAGS.model)
            mapping = tf1_checkpoint.load_tf1_checkpoint(model, FLAGS.checkpoint)
            tmp = files.temp_name(FLAGS.output) + ".keras"  # (Keras needs the suffix)
            try:
                model.save(tmp)
                files.replace(tmp, FLAGS.output)
            except OSError as e:
                files.remove(tmp)
                raise ValueError(f"--output {FLAGS.output!r}: could not be written "
                                 f"({files.error_reason(e)}); nothing was written") from None
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        n_const = len(tf1_checkpoint.expected_constants(model))
        print(f"converted {len(mapping)} variables and checked {n_const} constants "
              f"({model.count_params():,} parameters) of {FLAGS.model} from {FLAGS.checkpoint} "
              f"-> {FLAGS.output}")
        return 0
    cli.run(_run, __doc__, argv)


if __name__ == "__main__":
    main()
