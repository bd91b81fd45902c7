import pytest
import tensorflow as tf

from tpu_convrnn.training import distribute


@pytest.mark.parametrize("tpu", ["local", "no-such-pod"])
def test_missing_tpu_fails_at_once_with_the_likely_cause(tpu):
    with pytest.raises(distribute.StrategyError, match=rf"--tpu={tpu}: could not initialise the "
                       r"TPU.*tensorflow-tpu"):
        distribute.make_strategy(tpu)


def test_cpu_default_strategy_is_chief(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    strategy = distribute.make_strategy(None)
    assert strategy.num_replicas_in_sync == 1
    assert distribute.is_chief(strategy)
    assert "1 replica" in distribute.describe(strategy)


def test_bad_tf_config_names_it(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "{cluster: ")
    with pytest.raises(distribute.StrategyError, match="TF_CONFIG is not valid JSON"):
        distribute.make_strategy(None)


def test_worker_one_is_not_chief():
    class Resolver:
        task_type, task_id = "worker", 1

        def cluster_spec(self):
            return tf.train.ClusterSpec({"worker": ["a:1", "b:2"]})

    class Fake(tf.distribute.Strategy):
        def __init__(self):
            pass
        cluster_resolver = Resolver()
    assert not distribute.is_chief(Fake())
    Resolver.task_id = 0
    assert distribute.is_chief(Fake())
