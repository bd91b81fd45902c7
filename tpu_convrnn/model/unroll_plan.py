"""The plan of an unroll: which node-steps are computed, in which order, at which batch.

Decided statically, in plain Python, before any tensor exists (at trace time). Every value of
the unroll gets a *key* that says how it was made:

* the frame (image-dependent), the blank (the constant 0.5), each node's zero stand-in and zero
  initial state;
* a node-step's output and new state: ``("out", node, t)`` and ``("state", node, t)``, named
  by the first step t that computes them from ``(key of x, keys of the other inputs, key of the
  incoming state)``: a node computes a fixed function of those (its weights do not change during
  an unroll).

Two node-steps of a node with equal input keys compute the same tensor, so the second is not
computed (a node without memory that sees the same inputs again: conv1 on the same frame for
t < image_off, then conv2, conv3). A value is *image-dependent* if its key leads back to the frame; any other value
is the same for every image of the batch and is computed once, at batch 1, and broadcast only
where an image-dependent node-step reads it (broadcasting's transpose sums the gradient over
the batch before the one batch-1 backward pass). Only node-steps that lead to a wanted output
(the readout window, recorded layers) are computed. Both rules are exact: outputs and gradients
are those of the dense unroll up to float round-off.

Without elimination every node-step is computed anew and every value is image-dependent
(full batch), which is the dense unroll (still without the node-steps no output needs). A node
with randomness in training (``stochastic``) is always computed anew, at full batch.
"""
from __future__ import annotations

import dataclasses

FRAME = ("frame",)
BLANK = ("blank",)


def zeros_key(node):
    """Key of a node's zero stand-in (its output before t = 0)."""
    return ("zeros", node)


def initial_state_key(node):
    return ("initial_state", node)


@dataclasses.dataclass(frozen=True)
class NodeStep:
    """One computed node-step: ``node`` at step ``t`` reads ``x``, ``others`` and ``state`` (keys;
    ``state`` is None for a node without memory) and makes ``out`` and ``new_state``."""
    node: str
    t: int
    x: tuple
    others: tuple
    state: tuple | None
    out: tuple
    new_state: tuple | None
    varies: bool

    @property
    def inputs(self):
        return (self.x,) + self.others + ((self.state,) if self.state is not None else ())


@dataclasses.dataclass
class Plan:
    """``steps[t]``: the node-steps computed at t, in node order; ``outputs[t]``: {node: key of
    its output at t} for the wanted outputs; ``varies``: {key: image-dependent};
    ``release[t]``: keys no step after t reads."""
    steps: list
    outputs: list
    varies: dict
    release: list

    def computed(self):
        return [s for per_t in self.steps for s in per_t]


def make_plan(names, ff_source, other_sources, stateful, times, image_off, wanted,
              eliminate=True, stochastic=()) -> Plan:
    """The plan for nodes ``names`` (feedforward order) with feedforward source ``ff_source[n]``
    (None: the frame), other sources ``other_sources[n]``, memory ``n in stateful``, ``times``
    steps and the image shown for ``t < image_off`` (None: always). ``wanted``: (node, t) pairs
    whose outputs the caller reads."""
    varies = {FRAME: True, BLANK: not eliminate}
    for n in names:
        varies[zeros_key(n)] = not eliminate
        varies[initial_state_key(n)] = not eliminate
    prev = {n: zeros_key(n) for n in names}
    state = {n: initial_state_key(n) if n in stateful else None for n in names}
    made = {}        # what a node-step computes -> the NodeStep that first computes it
    at = []          # at[t][n]: key of n's output at t
    for t in range(times):
        shown = FRAME if image_off is None or t < image_off else BLANK
        new = {}
        for n in names:
            x = shown if ff_source[n] is None else prev[ff_source[n]]
            others = tuple(prev[s] for s in other_sources[n])
            what = (n, x, others, state[n]) if eliminate and n not in stochastic else (n, t)
            if what not in made:
                # Keys stay short (node, first step): nested keys would grow with every step.
                out, new_state = ("out", n, t), ("state", n, t) if n in stateful else None
                # (without elimination every input varies, so every step does)
                v = (n in stochastic or any(varies[k] for k in (x,) + others) or
                     (state[n] is not None and varies[state[n]]))
                varies[out] = v
                if new_state is not None:
                    varies[new_state] = v
                made[what] = NodeStep(n, t, x, others, state[n], out, new_state, v)
            new[n] = made[what].out
            state[n] = made[what].new_state
        at.append(new)
        prev = new
    # Only what a wanted output needs is computed.
    outputs = [{} for _ in range(times)]
    needed, todo = set(), []
    for n, t in wanted:
        outputs[t][n] = at[t][n]
        todo.append(at[t][n])
    producer = {}
    for s in made.values():
        producer[s.out] = s
        if s.new_state is not None:
            producer[s.new_state] = s
    while todo:
        key = todo.pop()
        s = producer.get(key)
        if s is None or s.out in needed:
            continue
        needed.add(s.out)
        todo.extend(s.inputs)
    steps = [[] for _ in range(times)]
    for s in made.values():
        if s.out in needed:
            steps[s.t].append(s)
    last = {}
    for t in range(times):
        for s in steps[t]:
            for k in s.inputs:
                last[k] = t
        for k in outputs[t].values():
            last[k] = t
    release = [[] for _ in range(times)]
    for k, t in last.items():
        release[t].append(k)
    return Plan(steps, outputs, varies, release)
