"""The training objective, in ``keras.ops`` only: what ``tpu_convrnn.training.train`` minimises, and what
a benchmark under any Keras backend times.

Per replica: the softmax cross-entropy (optional label smoothing) of the logits at the loss
steps (default: the readout's last step, as the original trained), averaged over those steps,
summed over the replica's examples and divided by the *global* batch, plus the model's own L2
terms (the original's, with its TF1 1/2 factor) divided by the number of replicas. Gradients,
summed over replicas, are then clipped by value or by global norm (``clip``).
"""
from __future__ import annotations

from keras import ops


def cross_entropy(labels, logits, num_classes: int, smoothing: float = 0.0):
    """Per-example softmax cross-entropy in float32; ``labels`` int [N], ``logits`` [N, C]."""
    onehot = ops.one_hot(labels, num_classes, dtype="float32")
    if smoothing:
        onehot = onehot * (1.0 - smoothing) + smoothing / num_classes
    return ops.categorical_crossentropy(onehot, ops.cast(logits, "float32"), from_logits=True)


def loss_logits(model, images, loss_steps=None, training=True):
    """[N, S, C] float32 logits at the loss steps (None: the decision window's last step)."""
    if loss_steps is None:
        return model.unroll(images, training=training)["window_logits"][:, -1:]
    per_step = model.unroll(images, record=["logits"], training=training)["logits"]
    return ops.cast(ops.stack([per_step[s] for s in loss_steps], axis=1), "float32")


def replica_loss(model, images, labels, global_batch: int, num_replicas: int = 1,
                 loss_steps=None, label_smoothing: float = 0.0, training=True):
    """The loss one replica differentiates (see the module docstring)."""
    logits = loss_logits(model, images, loss_steps, training)
    ce = ops.mean(ops.stack([cross_entropy(labels, logits[:, i], model.num_classes,
                                           label_smoothing)
                             for i in range(logits.shape[1])]), axis=0)
    loss = ops.sum(ce) / global_batch
    if model.losses:
        loss = loss + sum(ops.cast(r, "float32") for r in model.losses) / num_replicas
    return loss


def clip(grads, clip_value=None, clip_norm=None):
    """Per-element clipping to [-clip_value, clip_value], or scaling by
    ``clip_norm / max(global norm, clip_norm)`` (``tf.clip_by_global_norm``'s rule)."""
    if clip_value is not None:
        return [ops.clip(g, -clip_value, clip_value) for g in grads]
    if clip_norm is not None:
        norm = ops.sqrt(sum(ops.sum(ops.square(ops.cast(g, "float32"))) for g in grads))
        scale = clip_norm / ops.maximum(norm, clip_norm)
        return [g * ops.cast(scale, g.dtype) for g in grads]
    return list(grads)
