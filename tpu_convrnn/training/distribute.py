"""Choosing the tf.distribute strategy: TPU, GPUs, several workers, or one CPU.

``make_strategy(tpu)``:

* ``tpu="local"``: the TPU VM this process runs on (``TPUClusterResolver(tpu="local")``);
* ``tpu="<name>"``: a TPU pod slice by name; the same program runs on every host (worker);
* ``tpu=None`` with ``TF_CONFIG`` set: ``MultiWorkerMirroredStrategy`` over the listed workers;
* ``tpu=None``, GPUs visible: ``MirroredStrategy`` over them; else the default strategy (CPU).

A TPU that was asked for but is not visible fails at once with the likely causes.
"""
from __future__ import annotations

import json
import os

import tensorflow as tf

TPU_HINT = ("the usual causes: the plain `tensorflow` wheel is installed without the matching "
            "`tensorflow-tpu` wheel (error \"No OpKernel was registered to support Op "
            "'ConfigureDistributedTPU'\"); the TPU VM runs another TF runtime "
            "(tpu-vm-tf-<version>[-pod]-pjrt must match the installed TensorFlow); another "
            "process holds the TPU (check `sudo lsof -w /dev/accel*`); or, for a pod, the "
            "program was not started on every worker (--worker=all)")


class StrategyError(RuntimeError):
    """The requested accelerator cannot be used."""


def make_strategy(tpu: str | None = None) -> tf.distribute.Strategy:
    """The strategy for ``tpu`` (see the module docstring)."""
    if tpu:
        return _tpu_strategy(tpu)
    if os.environ.get("TF_CONFIG"):
        try:
            json.loads(os.environ["TF_CONFIG"])
        except ValueError as e:
            raise StrategyError(f"TF_CONFIG is not valid JSON: {e}") from e
        return tf.distribute.MultiWorkerMirroredStrategy()
    if tf.config.list_logical_devices("GPU"):
        return tf.distribute.MirroredStrategy()
    cpus = tf.config.list_logical_devices("CPU")
    if len(cpus) > 1:  # several logical CPUs configured (tests): one replica each
        return tf.distribute.MirroredStrategy([d.name for d in cpus])
    return tf.distribute.get_strategy()


def _tpu_strategy(tpu: str) -> tf.distribute.Strategy:
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        if tpu != "local":
            tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, OSError, tf.errors.OpError) as e:
        first = str(e).splitlines()[0][:300] if str(e) else ""
        where = " (a named TPU is looked up through the Cloud TPU API: is this a TPU VM of " \
            "that name, with network access?)" if tpu != "local" else ""
        raise StrategyError(f"--tpu={tpu}: could not initialise the TPU{where} "
                            f"({type(e).__name__}: {first}); {TPU_HINT}") from e
    if not tf.config.list_logical_devices("TPU"):
        raise StrategyError(f"--tpu={tpu}: no TPU devices are visible to TensorFlow; {TPU_HINT}")
    return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes summaries, configs and metrics (host / worker 0)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or isinstance(strategy, tf.distribute.TPUStrategy):
        return _tpu_host_id(strategy) == 0
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type in (None, "chief") or (task_type == "worker" and task_id == 0 and
                                            "chief" not in resolver.cluster_spec().as_dict())


def num_hosts(strategy: tf.distribute.Strategy) -> int:
    """Hosts (workers) that run this program: a TPU slice's hosts, or TF_CONFIG's workers."""
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return int(getattr(strategy.extended, "num_hosts", 1))
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 1
    spec = resolver.cluster_spec().as_dict()
    return max(1, sum(len(spec.get(kind, ())) for kind in ("chief", "worker")))


def any_host(strategy: tf.distribute.Strategy):
    """``flag -> bool``: whether ``flag`` is set on any host. With several hosts it is a
    collective (every host calls it at the same point of the program, e.g. after each loop of
    steps), so that all of them act on a signal that reached one (a preemption notice comes to
    each VM at its own moment); on one host it is the flag itself and runs nothing."""
    if num_hosts(strategy) <= 1:
        return bool

    @tf.function
    def total(flag):
        return strategy.reduce("SUM", strategy.run(tf.identity, (flag,)), axis=None)
    return lambda flag: bool(total(tf.constant(1.0 if flag else 0.0)) > 0)


def _tpu_host_id(strategy) -> int:
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return int(os.environ.get("CLOUD_TPU_TASK_ID", os.environ.get("TPU_WORKER_ID", "0")))
    return 0


def describe(strategy: tf.distribute.Strategy) -> str:
    """One line for the console: strategy, replicas, devices."""
    try:
        devices = strategy.extended.worker_devices
    except RuntimeError:  # the default strategy
        devices = ()
    return (f"{type(strategy).__name__} with {strategy.num_replicas_in_sync} replica(s)"
            + (f" on {', '.join(sorted(set(d.split('/device:')[-1] for d in devices)))}"
               if devices else ""))
