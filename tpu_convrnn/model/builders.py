"""Building ConvRNNs: released models by name, with or without their original weights.

    model = tpu_convrnn.load_model("rgc_intermediate", checkpoint="ckpts/model.ckpt-100")
    logits = model(images)            # [N, 224, 224, 3] floats in [0, 1] -> [N, 1000]
"""
from __future__ import annotations

import os

from tpu_convrnn.model import zoo
from tpu_convrnn.model.graph import ConvRNN
from tpu_convrnn.model.tf1_checkpoint import load_tf1_checkpoint


def build_model(base: str = "rgc_intermediate", cells=None, depths=None, add_edges=(),
                remove_edges=(), presentation: str = "default", times=None, image_off=None,
                readout=None, image_size: int = 224, dtype=None,
                width: float = 1.0, num_classes: int | None = None,
                grow_image_size: bool = False, name: str | None = None) -> ConvRNN:
    """A ConvRNN from a released graph (``base``) plus overrides.

    ``cells``, ``depths``, ``add_edges``, ``remove_edges``, ``presentation``, ``times``,
    ``image_off``, ``readout``, ``width`` and ``num_classes`` are described in
    ``zoo.graph_config``. ``image_size`` is the input resolution (224 for the released models),
    ``dtype`` a Keras dtype policy such as ``"mixed_bfloat16"``. ``grow_image_size``: take the
    smallest larger multiple of 8 if the graph cannot take ``image_size`` (``ConvRNN``). How the model is computed (remat, depthwise kernels, fused convolutions, work
    elimination) is not an argument: see ``tpu_convrnn.model.execution``.
    """
    cfg = zoo.graph_config(base, cells=cells, depths=depths, add_edges=add_edges,
                           remove_edges=remove_edges, presentation=presentation, times=times,
                           image_off=image_off, readout=readout, width=width,
                           num_classes=num_classes)
    return ConvRNN(**cfg, image_size=image_size, grow_image_size=grow_image_size, dtype=dtype,
                   name=name or base)


def load_model(name: str, checkpoint: str | None = None, **overrides) -> ConvRNN:
    """The released model ``name`` with its default presentation and readout.

    ``checkpoint``: an original TF1 checkpoint prefix, or a ``.keras``/``.weights.h5`` file
    written by ``tpu_convrnn.convert`` (or by ``model.save``); None keeps the initial weights.
    ``overrides`` go to ``build_model`` (e.g. ``presentation="neural"``); they may change the
    unrolling but not the weights' shapes.
    """
    model = build_model(name, **overrides)
    if checkpoint is not None:
        load_into(model, checkpoint)
    return model


def load_into(model: ConvRNN, checkpoint: str) -> ConvRNN:
    """Loads ``checkpoint`` (TF1 prefix, or .keras / .weights.h5 file) into ``model``."""
    if checkpoint.endswith((".keras", ".weights.h5")):
        if not os.path.exists(checkpoint):
            raise ValueError(f"checkpoint file {checkpoint!r} does not exist")
        model.load_weights(checkpoint)
    else:
        load_tf1_checkpoint(model, checkpoint)
    return model
