"""The biologically unrolled ConvRNN graph (spec §1.3-§1.7) as a Keras model.

``ConvRNN(nodes, edges, times, ...)``:

* ``nodes``: list of ``{"name", "pre", "memory", "post"}`` (see ``tpu_convrnn.model.node``), in
  feedforward order; the first node receives the presentation frame, the last (or
  ``readout_node``) is the readout, whose output must be [N, classes].
* ``edges``: ``[source, target]`` pairs. A node's *feedforward input* is its latest source that
  comes before it in ``nodes`` (the frame for the input node); all its other sources (skips and
  feedback) are combined in the harbor, in lexicographic name order as in the original.
* Every edge, feedforward or feedback, delays by one step. Every node runs at every step from
  t = 0 on zero stand-ins and zero states; its output at t feeds its targets at t + 1.

Presentation (spec §1.4): the model takes RGB images in [0, 1] (or uint8 in [0, 255]), applies
the ImageNet mean/std itself, shows the image for ``t < image_off`` and then the blank (the
constant 0.5 *in normalised space*); ``image_off=None`` shows the image at every step.

``model(images)`` returns the readout's decoded logits [N, classes]; ``model.decode`` applies the
readout rule to [N, W, classes] logits over the decision window; ``model.unroll`` returns the
per-step outputs of any layers.
"""
from __future__ import annotations

import copy

import keras
from keras import ops

from tpu_convrnn.model import execution

from tpu_convrnn.model import unroll_plan
from tpu_convrnn.model.graph_structure import (chain_shapes, edge_pairs, image_arrival,
                                               parse_graph)
from tpu_convrnn.model.node import Node
from tpu_convrnn.model.readouts import Readout

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BLANK_VALUE = 0.5


def _broadcast(value, batch):
    """A batch-1 tensor (or tuple of them) repeated to ``batch`` rows."""
    if isinstance(value, (tuple, list)):
        return type(value)(_broadcast(v, batch) for v in value)
    return ops.broadcast_to(value, (batch,) + tuple(value.shape[1:]))


def _whole(value, name):
    if isinstance(value, bool) or not float(value).is_integer():
        raise ValueError(f"{name} = {value!r}: expected a whole number of time steps")
    return int(value)



@keras.saving.register_keras_serializable(package="tpu_convrnn")
class ConvRNN(keras.Model):
    """A ConvRNN unrolled for a fixed number of steps ``times`` (static Python loop).

    ``image_size``: the images' side. ``grow_image_size``: if the graph cannot take it (e.g.
    the shallow readout's 2x2 valid conv needs a 2x2 map), take the smallest larger multiple of
    8 that it can (for small-image CPU runs of any model); the size found is the model's
    ``image_size`` and its config's, so the flag itself is not saved.
    """

    def __init__(self, nodes, edges, times, image_off=None, readout=None, readout_node=None,
                 image_size=224, window=None, normalize=True, grow_image_size=False, **kwargs):
        super().__init__(**kwargs)
        # Plain copies are kept for building: once assigned to the model, Keras wraps them in
        # tracked containers that reference the model, and deep-copying those (as Node does
        # with its memory config) would copy every layer built so far.
        nodes = copy.deepcopy(list(nodes))
        readout = dict(readout or {"kind": "last"})
        self.nodes_config = nodes
        pairs = edge_pairs(edges)
        self.edges_config = [list(e) for e in pairs]
        self.times = _whole(times, "times")
        self.image_off = None if image_off is None else _whole(image_off, "image_off")
        self.readout_config = readout
        self.normalize = bool(normalize)
        if self.times < 1:
            raise ValueError(f"times = {times}: expected a positive number of steps")
        if self.image_off is not None and not 1 <= self.image_off <= self.times:
            raise ValueError(
                f"image_off = {image_off}: the image is shown for t < image_off, so it must lie "
                f"in [1, times = {self.times}] (" + ("the image would never be shown"
                                                     if self.image_off < 1 else
                                                     "None shows it at every step") + ")")
        names, self.ff_source, self.other_sources = parse_graph(nodes, pairs)
        self.node_names = names
        self.readout_name = readout_node or names[-1]
        if self.readout_name not in names:
            raise ValueError(f"readout node {self.readout_name!r} is not a node of the graph "
                             f"(nodes: {', '.join(names)})")
        arrival = image_arrival(names, pairs)[self.readout_name]
        if self.times <= arrival:
            raise ValueError(f"times = {self.times}: the image reaches the readout node "
                             f"{self.readout_name!r} at t = {arrival} (one step per edge), so "
                             f"times must be at least {arrival + 1}")
        self.graph_nodes = {}
        for spec in nodes:
            kw = {k: v for k, v in spec.items() if k != "name"}
            try:
                self.graph_nodes[spec["name"]] = Node(name=spec["name"], dtype=self.dtype_policy,
                                                      **kw)
            except TypeError as e:
                raise ValueError(f"node {spec['name']!r}: {e}") from e
        self.readout = Readout(name="readout", dtype=self.dtype_policy, **readout)
        self.image_size = (self._smallest_image_size(int(image_size)) if grow_image_size
                           else int(image_size))
        n_nodes = len(names)
        if window is None:
            window = [self.times - 1, self.times] if not self.readout.is_temporal else \
                [n_nodes, self.times]
        self.window = [int(window[0]), int(window[1])]
        if not 0 <= self.window[0] < self.window[1] <= self.times:
            raise ValueError(f"decision window {self.window}: expected 0 <= start < stop <= "
                             f"times ({self.times})")
        self.build((None, self.image_size, self.image_size, 3))

    # ------------------------------------------------------------------ building
    def shapes_at(self, frame):
        """{node: output shape} for images of shape ``frame`` ([N, H, W, 3]), from the nodes'
        shape rules (no build; ValueError naming the node and op if the graph cannot take
        it). Output shapes depend only on the feedforward chain: feedback never changes them."""
        return chain_shapes(self.node_names, self.ff_source, tuple(frame),
                            lambda n, x: self.graph_nodes[n].compute_output_shape(x))

    def _smallest_image_size(self, start, step=8, limit=1024):
        """The smallest size >= ``start`` (then multiples of ``step``) the graph can take."""
        for size in [start] + list(range((start // step + 1) * step, limit + 1, step)):
            try:
                self.shapes_at((None, size, size, 3))
                return size
            except ValueError:
                continue
        self.shapes_at((None, start, start, 3))  # raises the error at ``start``
        return start

    def build(self, input_shape):
        """Builds every node for [N, image_size, image_size, 3] images (done when the model is
        made; the spatial size is the model's ``image_size``, a config value)."""
        frame = tuple(input_shape)
        if len(frame) != 4 or tuple(frame[1:]) != (self.image_size, self.image_size, 3):
            raise ValueError(f"ConvRNN '{self.name}' takes images of shape [N, {self.image_size}"
                             f", {self.image_size}, 3] (its image_size), not {list(frame)}: "
                             "build another model for another size")
        if self.built:
            return
        # Output shapes are inferred first; then every node is built knowing its feedback's.
        self.output_shapes = self.shapes_at(frame)
        for n in self.node_names:
            node = self.graph_nodes[n]
            ff = frame if self.ff_source[n] is None else self.output_shapes[self.ff_source[n]]
            others = [self.output_shapes[s] for s in self.other_sources[n]]
            try:
                node.build(ff, others)
            except ValueError as e:
                srcs = ", ".join(self.other_sources[n]) or "none"
                raise ValueError(f"{e} [node {n!r}: feedforward input "
                                 f"{self.ff_source[n] or 'frame'}, other inputs {srcs}]") from e
        out = self.output_shapes[self.readout_name]
        if len(out) != 2:
            raise ValueError(f"readout node {self.readout_name!r} gives shape {out}; a readout "
                             "must give [N, classes] (end it with 'gap' or an 'fc')")
        self.num_classes = int(out[1])
        self.readout.build((None, self.window[1] - self.window[0], self.num_classes))
        self.built = True

    # ------------------------------------------------------------------ running
    def present(self, images):
        """Normalised frame [N,H,W,3] and blank [1,H,W,3] (the same for every image) in the
        compute dtype."""
        x = ops.convert_to_tensor(images)
        if "int" in keras.backend.standardize_dtype(x.dtype):
            x = ops.cast(x, "float32") / 255.0
        x = ops.cast(x, "float32")
        if self.normalize:
            x = (x - ops.convert_to_tensor(IMAGENET_MEAN, "float32")) / \
                ops.convert_to_tensor(IMAGENET_STD, "float32")
        x = ops.cast(x, self.compute_dtype)
        return x, ops.full((1,) + tuple(x.shape[1:]), BLANK_VALUE, self.compute_dtype)

    def unroll(self, images, record=(), training=False):
        """Runs all ``times`` steps. Returns a dict: ``"window_logits"`` [N, W, classes] over the
        decision window, and for every name in ``record`` (node names, or ``"logits"`` for the
        readout node) the list of its T per-step outputs.

        Which node-steps run, and at which batch, is planned first (``tpu_convrnn.model.unroll_plan``;
        with the execution setting ``eliminate``, on by default, work that is the same for every
        image or repeats an earlier step is done once; the values are the same either way)."""
        record = list(record)
        for r in record:
            if r != "logits" and r not in self.graph_nodes:
                raise ValueError(f"record: {r!r} is not a node of the graph (nodes: "
                                 f"{', '.join(self.node_names)}, or 'logits')")
        plan = self.plan(record, training)
        frame, blank_row = self.present(images)
        batch = ops.shape(frame)[0]
        values, full_batch = {}, {}

        def value(key, full):
            if key not in values:
                values[key] = self._initial_value(key, frame, blank_row, batch,
                                                  plan.varies[key])
            v = values[key]
            if not full or plan.varies[key]:
                return v
            if key not in full_batch:
                full_batch[key] = _broadcast(v, batch)
            return full_batch[key]

        recorded = {r: [] for r in record}
        window_logits = []
        for t in range(self.times):
            for s in plan.steps[t]:
                x = value(s.x, s.varies)
                others = [value(k, s.varies) for k in s.others]
                state = value(s.state, s.varies) if s.state is not None else ()
                values[s.out], new_state = self._step(s.node, x, others, state, training)
                if s.new_state is not None:
                    values[s.new_state] = new_state
            for r in record:
                name = self.readout_name if r == "logits" else r
                recorded[r].append(value(plan.outputs[t][name], True))
            if self.window[0] <= t < self.window[1]:
                window_logits.append(value(plan.outputs[t][self.readout_name], True))
            for k in plan.release[t]:
                values.pop(k, None)
                full_batch.pop(k, None)
        out = {"window_logits": ops.cast(ops.stack(window_logits, axis=1), "float32")}
        out.update(recorded)
        return out

    def plan(self, record=(), training=False, eliminate=None):
        """The unroll's plan (``tpu_convrnn.model.unroll_plan.Plan``) for recorded layers ``record``;
        ``eliminate`` defaults to the execution setting."""
        if eliminate is None:
            eliminate = execution.current().eliminate
        wanted = [(self.readout_name, t) for t in range(*self.window)]
        for r in record:
            name = self.readout_name if r == "logits" else r
            wanted += [(name, t) for t in range(self.times)]
        stateful = {n for n in self.node_names if self.graph_nodes[n].cell is not None}
        stochastic = {n for n in self.node_names
                      if training and self.graph_nodes[n].stochastic}
        return unroll_plan.make_plan(self.node_names, self.ff_source, self.other_sources,
                                     stateful, self.times, self.image_off, wanted,
                                     eliminate=eliminate, stochastic=stochastic)

    def _initial_value(self, key, frame, blank_row, batch, full):
        """The frame, the blank, a zero stand-in or a zero initial state, at the full batch
        (``full``) or as one row."""
        if key == unroll_plan.FRAME:
            return frame
        if key == unroll_plan.BLANK:
            return _broadcast(blank_row, batch) if full else blank_row
        n = key[1]
        rows = batch if full else 1
        if key == unroll_plan.zeros_key(n):
            return ops.zeros((rows,) + tuple(self.output_shapes[n][1:]), self.compute_dtype)
        return self.graph_nodes[n].get_initial_state(rows)

    def _step(self, name, x, others, state, training):
        node = self.graph_nodes[name]
        if execution.current().remat and keras.backend.backend() in ("jax", "tensorflow"):
            return keras.remat(lambda a, b, c: node(a, b, c, training=training))(x, others, state)
        return node(x, others, state, training=training)

    def decode(self, step_logits):
        """Readout rule on [N, W, classes] logits over the decision window -> [N, classes]."""
        return self.readout(step_logits)

    def call(self, images, training=False):
        return self.decode(self.unroll(images, training=training)["window_logits"])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    def compute_output_spec(self, images, training=False):
        # The logits are float32 under any dtype policy (``unroll`` casts them).
        return keras.KerasTensor(self.compute_output_shape(images.shape), dtype="float32")

    def get_config(self):
        return {**super().get_config(), "nodes": self.nodes_config, "edges": self.edges_config,
                "times": self.times, "image_off": self.image_off, "readout": self.readout_config,
                "readout_node": self.readout_name, "image_size": self.image_size,
                "window": self.window, "normalize": self.normalize}

