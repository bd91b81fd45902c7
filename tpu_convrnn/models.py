"""Building ConvRNNs: released models by name, with or without their original weights.

    model = tpu_convrnn.load_model("rgc_intermediate", checkpoint="ckpts/model.ckpt-100")
    logits = model(images)            # [N, 224, 224, 3] floats in [0, 1] -> [N, 1000]
"""
from __future__ import annotations

import os

from tpu_convrnn import zoo
from tpu_convrnn.graph import ConvRNN


def build_model(base: str = "rgc_intermediate", image_size: int = 224, dtype=None,
                remat: bool = False, name: str | None = None, **overrides) -> ConvRNN:
    """A ConvRNN from a released graph plus overrides (see ``zoo.graph_config``)."""
    cfg = zoo.graph_config(base, **overrides)
    return ConvRNN(**cfg, image_size=image_size, dtype=dtype, remat=remat, name=name or base)


def load_model(name: str, checkpoint: str | None = None, **overrides) -> ConvRNN:
    """The released model ``name`` with its default presentation and readout.

    ``checkpoint``: an original TF1 checkpoint prefix, or a ``.keras``/``.weights.h5`` file
    written by ``tpu_convrnn.convert`` (or by ``model.save``); None keeps the initial weights.
    ``overrides`` go to ``build_model`` (e.g. ``presentation="neural"``); they may change the
    unrolling but not the weights' shapes.
    """
    model = build_model(name, **overrides)
    if checkpoint is None:
        return model
    if checkpoint.endswith((".keras", ".weights.h5")):
        if not os.path.exists(checkpoint):
            raise ValueError(f"checkpoint file {checkpoint!r} does not exist")
        model.load_weights(checkpoint)
    else:
        from tpu_convrnn.convert import load_tf1_checkpoint
        load_tf1_checkpoint(model, checkpoint)
    return model
