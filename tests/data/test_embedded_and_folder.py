import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tpu_convrnn.data import embedded, folder, pipeline, records


def test_embedded_dataset_is_real_digits_in_the_imagenet_layout(tmp_path):
    info = embedded.write_embedded(str(tmp_path))
    assert info["source"] in ("mnist5k", "sklearn_digits")
    assert info["num_classes"] == 10
    files = records.list_files(info["train_pattern"])
    assert all(os.path.basename(f).startswith("train-") and "-of-" in f for f in files)
    counts = records.count_records(records.list_files(info["eval_pattern"]))
    assert sum(counts) == info["num_eval"]
    record = next(iter(tf.data.TFRecordDataset(files[0])))
    jpeg, label, key = records.parse_example(record, files[0], 10)
    assert bool(tf.io.is_jpeg(jpeg)) and 0 <= int(label) < 10
    img = tf.io.decode_jpeg(jpeg).numpy()
    assert img.shape[-1] == 3 and img.std() > 10  # a real digit, RGB
    labels = [int(b["label"][0]) for b in pipeline.eval_dataset(pipeline.InputConfig(
        info["eval_pattern"], num_classes=10, image_size=28), global_batch=1).take(200)]
    assert len(set(labels)) == 10
    # cached: a second call finds the files and returns the same description
    assert embedded.write_embedded(str(tmp_path)) == info


def _make_folder(root):
    rng = np.random.default_rng(0)
    for cls, n in (("cat", 3), ("dog", 2)):
        os.makedirs(root / cls)
        for i in range(n):
            img = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
            enc = tf.io.encode_png(img) if i % 2 else tf.io.encode_jpeg(img)
            ext = "png" if i % 2 else "jpg"
            tf.io.write_file(str(root / cls / f"{i}.{ext}"), enc)


def test_folder_conversion(tmp_path, capsys):
    _make_folder(tmp_path / "in")
    rc = folder.main(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"),
                      "--num_shards", "2"])
    assert rc == 0
    out = capsys.readouterr()
    assert "wrote 5 examples of 2 classes" in out.out and "5/5 images" in out.err
    assert json.load(open(tmp_path / "out" / "labels.json")) == {"cat": 0, "dog": 1}
    files = records.list_files(str(tmp_path / "out" / "train-*"))
    assert [os.path.basename(f) for f in files] == ["train-00000-of-00002",
                                                     "train-00001-of-00002"]
    got = {}
    for f in files:
        for r in tf.data.TFRecordDataset(f):
            jpeg, label, key = records.parse_example(r, f, 2)
            assert bool(tf.io.is_jpeg(jpeg))
            got[key.numpy().decode()] = int(label)
    assert got == {"cat/0.jpg": 0, "cat/1.png": 0, "cat/2.jpg": 0, "dog/0.jpg": 1,
                   "dog/1.png": 1}


def test_folder_errors(tmp_path):
    os.makedirs(tmp_path / "empty")
    with pytest.raises(ValueError, match="has no class sub-folders"):
        folder.convert_folder(str(tmp_path / "empty"), str(tmp_path / "o"), quiet=True)
    os.makedirs(tmp_path / "bad" / "x")
    (tmp_path / "bad" / "x" / "a.jpg").write_bytes(b"junk")
    with pytest.raises(ValueError, match=r"cannot decode image .*a.jpg"):
        folder.convert_folder(str(tmp_path / "bad"), str(tmp_path / "o"), quiet=True)
    assert not any(n.endswith(".tmp") for n in os.listdir(tmp_path / "o"))  # no half shard
    _make_folder(tmp_path / "in")
    with pytest.raises(ValueError, match=r"--num_shards=0: expected at least 1"):
        folder.convert_folder(str(tmp_path / "in"), str(tmp_path / "o"), num_shards=0)
    assert folder.main(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "o"),
                        "--num_shards", "0"]) != 0
    os.makedirs(tmp_path / "in" / "empty_class")
    with pytest.raises(ValueError, match=r"class folder\(s\) \['empty_class'\] hold no"):
        folder.convert_folder(str(tmp_path / "in"), str(tmp_path / "o"), quiet=True)
