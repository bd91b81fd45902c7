"""What a search explores and how it runs, as plain data (gin: ``space.*`` and ``study.*``).

A *knob* is one searched quantity, written in a space file as a tuple::

    ('int', low, high)            ('int', low, high, 'log')
    ('float', low, high)          ('float', low, high, 'log')
    ('choice', [a, b, ...])       ('bool',)

Any other value fixes the argument without searching it. Cell knobs are arguments of the cell
class (``tpu_convrnn.model.cells``) plus ``init_scale`` (the VarianceScaling scale of its kernels);
with ``tie_multipliers`` a ``tau_offset`` / ``gate_offset`` knob also sets the multiplier to
minus the offset, as in the released median cell. Feedback knobs (``feedback_entry``,
``feedback_filter_size``, ``feedback_depth_separable``, ``feedback_activation``) are searched
per receiving layer, only where an edge arrives. Training knobs are ``train.*`` fields.

``SearchSpace.check(where)`` finds every mistake that needs no model (unknown knob or layer,
an edge that is not later -> earlier, an empty range) and names the space file and line.
"""
from __future__ import annotations

import dataclasses
import math
import re

from tpu_convrnn import gin_bindings, lazy
from tpu_convrnn.model import cells, zoo
from tpu_convrnn.search.knobs import parse_knob

train_lib = lazy("tpu_convrnn.training.train")  # (TensorFlow: only to check train.* knobs)

FEEDBACK_KNOBS = ("feedback_entry", "feedback_filter_size", "feedback_depth_separable",
                  "feedback_activation")
SPECIAL_CELL_KNOBS = ("init_scale",)
OBJECTIVES = ("top1", "params", "flops")
SAMPLERS = ("tpe", "random")


@dataclasses.dataclass
class SearchSpace:
    """The searched architecture and training knobs (gin: ``space.*``; see module docstring).

    * ``base``: the released graph the trials modify (``model.base``);
    * ``cell_layers``: the layers that get a searched cell; ``tied``: one cell for all of them
      (as the released median) or one per layer;
    * ``cell_kind`` / ``cell``: the cell class and its knobs or fixed arguments;
    * ``feedback_edges``: candidate long-range edges, ``'all'`` (every later -> earlier pair
      among ``cell_layers``) or a list of ``[source, target]``; each is searched on/off. Base
      edges among them are removed when off, others added when on;
    * ``feedback``: per-receiving-layer feedback knobs; ``train``: training knobs;
    * ``filters_fit_maps``: reject a sample whose cell filter is larger than its map;
    * ``trial_gin_files`` / ``trial_bindings``: what every trial's gin file includes and binds
      besides the sample (model, recipe, data, image size);
    * ``references``: hand-designed points enqueued first: names of ``references.BUILT_IN``
      or ``{name: {param: value}}``.
    """
    base: str = "rgc_intermediate"
    cell_layers: tuple = ("conv4", "conv5", "conv6", "conv7", "conv8", "conv9", "conv10")
    tied: bool = True
    cell_kind: str = "reciprocal_gated"
    cell: dict = dataclasses.field(default_factory=dict)
    tie_multipliers: bool = True
    feedback_edges: object = "all"
    feedback: dict = dataclasses.field(default_factory=dict)
    train: dict = dataclasses.field(default_factory=dict)
    filters_fit_maps: bool = True
    trial_gin_files: tuple = ()
    trial_bindings: tuple = ()
    references: object = ()

    # ------------------------------------------------------------------ derived
    def candidate_edges(self) -> list:
        if self.feedback_edges == "all":
            layers = list(self.cell_layers)
            return [[layers[j], layers[i]] for i in range(len(layers))
                    for j in range(len(layers) - 1, i, -1)]
        return [list(e) for e in self.feedback_edges]

    def knobs(self) -> dict:
        """{section: {knob name: Knob}} of the searched knobs (fixed values left out)."""
        out = {}
        for section in ("cell", "feedback", "train"):
            out[section] = {}
            for name, spec in getattr(self, section).items():
                knob = parse_knob(spec, f"space.{section}['{name}']")
                if knob is not None:
                    out[section][name] = knob
        return out

    def fixed(self, section: str) -> dict:
        return {k: v for k, v in getattr(self, section).items()
                if parse_knob(v, f"space.{section}['{k}']") is None}

    def as_data(self) -> dict:
        """The space as canonical plain data (stored with the study, compared on join)."""
        d = dataclasses.asdict(self)
        d["cell_layers"] = list(self.cell_layers)
        d["feedback_edges"] = self.candidate_edges()
        d["trial_gin_files"] = list(self.trial_gin_files)
        d["trial_bindings"] = list(self.trial_bindings)
        d["references"] = self.references if isinstance(self.references, dict) else \
            list(self.references)
        return plain(d)

    # ------------------------------------------------------------------ checks
    def check(self, where=None):
        """Errors that need no model, naming the space file and line (``where(field, token)``
        gives "file:line" of a binding, see ``locate``)."""
        at = where or (lambda field, token=None: "the space")

        def fail(field, token, msg):
            raise ValueError(f"{at(field, token)}: space.{field}: {msg}")

        try:
            graph = zoo.released_graph(self.base)
        except ValueError as e:
            fail("base", self.base, str(e))
        layers = [n["name"] for n in graph["nodes"]]
        if not self.cell_layers:
            fail("cell_layers", None, "no layers given")
        for layer in self.cell_layers:
            if layer not in layers:
                fail("cell_layers", layer, f"unknown cell layer {layer!r} of {self.base} "
                     f"(layers: {', '.join(layers[:-1])})")
            # (the first layer takes a cell where the base graph gives it one, as Spoerer's
            # BL does; the released ConvRNNs' conv1 has none)
            if layer == layers[-1] or (layer == layers[0] and not graph["nodes"][0].get("memory")):
                fail("cell_layers", layer, f"{layer!r} is the input or readout layer of "
                     f"{self.base} and takes no cell")
        if self.cell_kind not in cells.KINDS:
            fail("cell_kind", self.cell_kind, f"unknown cell kind {self.cell_kind!r} "
                 f"(kinds: {', '.join(sorted(cells.KINDS))})")
        allowed = _cell_arguments(cells.CELLS[self.cell_kind]) | set(SPECIAL_CELL_KNOBS)
        for name in self.cell:
            if name in FEEDBACK_KNOBS:
                fail("cell", name, f"{name!r} is a feedback knob: put it in space.feedback "
                     "(searched per receiving layer)")
            if name not in allowed:
                fail("cell", name, f"unknown knob {name!r} for cell kind {self.cell_kind!r} "
                     f"(arguments: {', '.join(sorted(allowed - set(FEEDBACK_KNOBS)))})")
        for name in self.feedback:
            if name not in FEEDBACK_KNOBS:
                fail("feedback", name, f"unknown feedback knob {name!r} (knobs: "
                     f"{', '.join(FEEDBACK_KNOBS)})")
        train_fields = {f.name for f in dataclasses.fields(train_lib.TrainConfig)}
        for name in self.train:
            if name not in train_fields:
                fail("train", name, f"unknown training knob {name!r} (train.* fields: "
                     f"{', '.join(sorted(train_fields))})")
        for section in ("cell", "feedback", "train"):
            for name, spec in getattr(self, section).items():
                try:
                    parse_knob(spec, f"knob {name!r}")
                except ValueError as e:
                    fail(section, name, str(e))
        index = {n: i for i, n in enumerate(layers)}
        seen = set()
        for edge in self.candidate_edges():
            if len(edge) != 2:
                fail("feedback_edges", None, f"edge {edge!r}: expected [source, target]")
            src, dst = edge
            for end in (src, dst):
                if end not in self.cell_layers:
                    fail("feedback_edges", end, f"edge {src} -> {dst}: {end!r} is not one of "
                         f"the cell layers ({', '.join(self.cell_layers)})")
            if index[src] <= index[dst]:
                fail("feedback_edges", src, f"edge {src} -> {dst} is not later -> earlier "
                     "(feedforward edges are the base graph's)")
            if (src, dst) in seen:
                fail("feedback_edges", src, f"edge {src} -> {dst} is listed twice")
            seen.add((src, dst))
        if self.tie_multipliers:
            for name in ("tau_multiplier", "gate_multiplier"):
                if name in self.cell:
                    fail("cell", name, f"{name!r} is tied to minus its offset "
                         "(space.tie_multipliers = True); search the offset instead")


def _cell_arguments(cls) -> set:
    return cells.cell_arguments(cls) - {"name", "dtype", "trainable"}


@dataclasses.dataclass
class StudyConfig:
    """How a search runs (gin: ``study.*``).

    * ``name``: the study in the storage (default: the space file's name);
    * ``objectives``: ``['top1']`` or top-1 with ``'params'`` / ``'flops'`` (minimised) for
      a Pareto search (multi-objective studies train every trial to ``max_steps``, no pruning);
    * ``min_steps``, ``reduction_factor``, ``max_steps``: the ASHA rungs, budgets
      ``min_steps * reduction_factor ** k`` up to ``max_steps``; each rung trains afresh with
      its own warmup + decay schedule over its budget;
    * ``minival_examples``: training examples held out (whole shards, from the end) as the
      objective's evaluation set; the official evaluation set is never read;
    * ``sampler``: ``'tpe'`` (multivariate grouped TPE with the constant liar, the default)
      or ``'random'`` (Optuna's ``RandomSampler``: the control a search is judged against, run
      with the same pruner and budgets);
    * ``n_startup_trials``: random trials before TPE; ``seed``: sampler seed (+ worker index);
    * ``keep_top_k``: finished trials that keep their checkpoints;
    * ``heartbeat_interval``, ``grace_period`` (s): a RUNNING trial without a heartbeat for
      ``grace_period`` is failed and re-queued (up to ``max_retry`` times), resuming from its
      last checkpoint; ``checkpoint_every``: steps between a trial's checkpoints;
    * ``recycle_rungs``, ``recycle_rss_mb``: a worker's rung runner (the process that trains)
      is replaced by a fresh one after this many rungs, or once its resident memory passed
      this many MB (0: never); ``hang_timeout`` (s): a rung runner that writes nothing
      (no log line, no progress) for this long during a rung is taken as hung, killed, and
      its rung failed with that reason (0: never; raise it above the longest silent phase of
      a rung, such as a first compile on a large slice).
    """
    name: str | None = None
    objectives: tuple = ("top1",)
    min_steps: int = 1000
    reduction_factor: int = 3
    max_steps: int = 9000
    checkpoint_every: int = 500
    minival_examples: int = 50_000
    sampler: str = "tpe"
    n_startup_trials: int = 10
    seed: int = 0
    keep_top_k: int = 5
    heartbeat_interval: int = 60
    grace_period: int = 300
    max_retry: int = 3
    recycle_rungs: int = 50
    recycle_rss_mb: int = 0
    hang_timeout: int = 1800

    def budgets(self) -> list:
        """Training steps of each rung (a multi-objective study has one: ``max_steps``)."""
        if len(self.objectives) > 1:
            return [self.max_steps]
        rungs = int(round(math.log(self.max_steps / self.min_steps, self.reduction_factor))) + 1
        return [self.min_steps * self.reduction_factor ** k for k in range(rungs)]

    def check(self, where=None):
        at = where or (lambda field, token=None: "the study settings")
        for name in ("min_steps", "max_steps", "checkpoint_every", "minival_examples",
                     "keep_top_k", "heartbeat_interval", "grace_period", "recycle_rungs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{at(name)}: study.{name} = {getattr(self, name)}: must be "
                                 "positive")
        if self.hang_timeout < 0:
            raise ValueError(f"{at('hang_timeout')}: study.hang_timeout = {self.hang_timeout}: "
                             "must be 0 (none) or positive")
        if self.reduction_factor < 2:
            raise ValueError(f"{at('reduction_factor')}: study.reduction_factor = "
                             f"{self.reduction_factor}: must be at least 2")
        ladder = [self.min_steps]
        while ladder[-1] < self.max_steps:
            ladder.append(ladder[-1] * self.reduction_factor)
        if len(self.objectives) == 1 and ladder[-1] != self.max_steps:
            raise ValueError(
                f"{at('max_steps')}: study.max_steps = {self.max_steps} is not study.min_steps "
                f"({self.min_steps}) x study.reduction_factor ({self.reduction_factor}) ** k; "
                f"e.g. {ladder[-2] if len(ladder) > 1 else ladder[0]} or {ladder[-1]}")
        if self.grace_period <= self.heartbeat_interval:
            raise ValueError(f"{at('grace_period')}: study.grace_period ({self.grace_period} s) "
                             f"must exceed study.heartbeat_interval ({self.heartbeat_interval} s)")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"{at('sampler')}: study.sampler = {self.sampler!r}: expected one of "
                             + ", ".join(repr(k) for k in SAMPLERS))
        objectives = list(self.objectives)
        if not objectives or objectives[0] != "top1" or len(set(objectives)) != len(objectives) \
                or any(o not in OBJECTIVES for o in objectives):
            raise ValueError(f"{at('objectives')}: study.objectives = {objectives}: expected "
                             "'top1' first, then any of 'params', 'flops'")


def locate(files) -> callable:
    """``where(field, token)`` -> ``"file, line N"`` of the gin binding ``space.field`` (or
    ``study.field``) in ``files``, at the line holding ``token`` if given."""
    def where(field, token=None):
        for path in reversed(list(files)):
            try:
                lines = open(path, encoding="utf-8").read().splitlines()
            except OSError:
                continue
            start = None
            for i, line in enumerate(lines):
                if re.match(rf"\s*(space|study)\.{re.escape(field)}\s*=", line):
                    start = i
            if start is None:
                continue
            if token is not None:
                for i in range(start, len(lines)):
                    if i > start and re.match(r"\s*[\w.]+\s*=", lines[i]):
                        break
                    if str(token) in lines[i]:
                        return f"{path}, line {i + 1}"
            return f"{path}, line {start + 1}"
        return "the space (no gin file binds it)" if field else "the space"
    return where


def plain(x):
    """``x`` as plain data: dicts (str keys), lists, and Python scalars for numpy ones."""
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if hasattr(x, "item"):  # numpy scalars
        return x.item()
    return x


def configured(files, params=()) -> tuple:
    """``(SearchSpace, StudyConfig)`` that the gin ``files`` and ``params`` bind (``space.*``,
    ``study.*``, after ``gin.clear_config()``); registers the two configurables first."""
    import gin
    space, study = gin_bindings.register("space", SearchSpace), \
        gin_bindings.register("study", StudyConfig)
    gin.clear_config()
    gin_bindings.parse_gin(list(files), list(params))
    return space(), study()
