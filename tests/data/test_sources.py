import pytest

from tpu_convrnn.data.sources import DataConfig


def test_embedded_source_fills_in_patterns_and_classes(tmp_path):
    cfg = DataConfig(source="embedded").resolved()
    assert cfg.num_classes == 10 and cfg.train_pattern.endswith("train-*")
    images, labels = next(iter(cfg.train_fn(32, 8, seed=0)(None)))
    assert images.shape == (8, 32, 32, 3) and labels.shape == (8,)
    assert int(labels.numpy().min()) >= 0 and int(labels.numpy().max()) < 10
    eval_fn = cfg.eval_fn(32, 100)
    assert eval_fn.num_examples == 500
    batches = list(eval_fn(None))
    assert len(batches) == 5 and sum(int(b["mask"].numpy().sum()) for b in batches) == 500


def test_fake_source_gives_batches_and_no_eval_set():
    cfg = DataConfig(source="fake", num_classes=7).resolved()
    images, labels = next(iter(cfg.train_fn(8, 4, seed=0)(None)))
    assert images.shape == (4, 8, 8, 3) and images.dtype.name == "uint8"
    with pytest.raises(ValueError, match="'fake' has no evaluation set"):
        cfg.eval_fn(8, 4)


@pytest.mark.parametrize("cfg,match", [
    (DataConfig(source="imagenet"), r"data.source = 'imagenet': expected one of"),
    (DataConfig(), r"needs data.train_pattern and/or data.eval_pattern"),
])
def test_bad_settings_name_the_binding(cfg, match):
    with pytest.raises(ValueError, match=match):
        cfg.resolved()


def test_missing_eval_pattern_names_it():
    cfg = DataConfig(train_pattern="/nowhere/train-*").resolved()
    with pytest.raises(ValueError, match=r"data.eval_pattern is not set"):
        cfg.eval_fn(32, 8)
    with pytest.raises(ValueError, match=r"'/nowhere/train-\*' matches no files"):
        cfg.train_fn(32, 8, 0)(None)
