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


def test_folder_leaves_nothing_half_written_and_never_mixes_conversions(tmp_path, capsys):
    _make_folder(tmp_path / "in")
    os.makedirs(tmp_path / "in" / "zebra")
    (tmp_path / "in" / "zebra" / "bad.jpg").write_bytes(b"junk")  # item 5 of 6
    assert np.random.default_rng(0).permutation(6)[0] != 5  # shard 0 completes before it
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"cannot decode image .*bad.jpg"):
        folder.convert_folder(str(tmp_path / "in"), str(out), num_shards=6, quiet=True)
    assert os.listdir(out) == []  # no finished-looking shard, no temp file, no labels.json
    os.remove(tmp_path / "in" / "zebra" / "bad.jpg")
    os.rmdir(tmp_path / "in" / "zebra")
    folder.convert_folder(str(tmp_path / "in"), str(out), num_shards=2, quiet=True)
    with pytest.raises(ValueError, match=r"already holds 2 'train' shard\(s\) "
                                         r"\(train-00000-of-00002, \.\.\.\): pass --overwrite"):
        folder.convert_folder(str(tmp_path / "in"), str(out), num_shards=1, quiet=True)
    folder.convert_folder(str(tmp_path / "in"), str(out), split="validation", quiet=True)
    folder.convert_folder(str(tmp_path / "in"), str(out), num_shards=1, quiet=True,
                          overwrite=True)
    assert sorted(os.listdir(out)) == ["labels.json", "train-00000-of-00001",
                                       "validation-00000-of-00001"]
    assert sum(records.count_records(records.list_files(str(out / "train-*")))) == 5
    (tmp_path / "a_file").write_text("x")
    assert folder.main(["--input", str(tmp_path / "in"), "--output",
                        str(tmp_path / "a_file")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: --output {str(tmp_path / 'a_file')!r} is a file, not a folder")


def test_folder_refuses_a_read_only_output_before_reading_images(tmp_path, small_disk):
    read_only = small_disk("ro")
    os.makedirs(tmp_path / "in" / "x")
    (tmp_path / "in" / "x" / "a.jpg").write_bytes(b"junk")  # never read
    with pytest.raises(ValueError, match=r"^--output '.*' is not writable: Read-only file "
                                         r"system$"):
        folder.convert_folder(str(tmp_path / "in"), str(read_only / "out"), quiet=True)
