"""The MNIST idx reader: headers, lengths, gzip, and rows on Spark."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from conftest import DEMO, require
from PIL import Image

from jobs.datasets import mnist
from jobs.storage import LocalStorage


def test_reads_valid_files_plain_and_gz(fixtures):
    for folder in ("idx", "idx_gz"):
        images, labels = mnist.check_split(LocalStorage(fixtures / folder), "train")
        assert (images.count, images.shape) == (30, (28, 28))
        assert (labels.count, labels.shape) == (30, ())
        expected = np.load(fixtures / "idx_train_images.npy")
        assert np.array_equal(mnist.read_records(images, 3, 7), expected[3:7])
        assert np.array_equal(mnist.read_records(labels, 0, 30), np.load(fixtures / "idx_train_labels.npy"))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("truncated-images-idx3-ubyte", "bytes of records, expected 23520"),
        ("badmagic-images-idx3-ubyte", "magic number 2049, expected 2051"),
        ("short-header-images-idx3-ubyte", "header is 10 bytes, expected 16"),
        ("truncated-images-idx3-ubyte.gz", "unreadable"),
    ],
)
def test_broken_files_raise_clear_errors(fixtures, name, message):
    path = fixtures / "idx_broken" / name
    with pytest.raises(mnist.MnistFormatError, match=message) as err:
        mnist.read_header(str(path), mnist.IMAGES_MAGIC)
    assert name in str(err.value)


def test_missing_file_and_count_mismatch(fixtures, tmp_path):
    with pytest.raises(mnist.MnistFormatError, match="missing t10k-images-idx3-ubyte"):
        mnist.check_split(LocalStorage(tmp_path), "test")
    for f in (fixtures / "idx").iterdir():
        shutil.copy(f, tmp_path / f.name)
    # Labels from the test split (10) beside train images (30).
    shutil.copy(fixtures / "idx" / "t10k-labels-idx1-ubyte", tmp_path / "train-labels-idx1-ubyte")
    with pytest.raises(mnist.MnistFormatError, match="30 images but 10 labels"):
        mnist.check_split(LocalStorage(tmp_path), "train")


def test_real_mnist_headers():
    folder = require(DEMO / "mnist")
    train = mnist.check_split(LocalStorage(folder), "train")
    test = mnist.check_split(LocalStorage(folder), "test")
    assert [train[0].count, test[0].count] == [60000, 10000]
    assert train[0].shape == (28, 28)


def test_rows_on_spark_equal_the_files(spark, fixtures):
    rows = mnist.load_split(spark, LocalStorage(fixtures / "idx_gz"), "train").collect()
    images = np.load(fixtures / "idx_train_images.npy")
    labels = np.load(fixtures / "idx_train_labels.npy")
    assert len(rows) == 30
    for row in rows:
        i = int(row["path"].split("#")[1])
        assert row["label"] == str(labels[i])
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(row["image"]))), images[i])


def test_sampling_is_seeded_and_class_names_apply(spark, fixtures):
    names = [f"class{i}" for i in range(10)]
    a = mnist.load_split(spark, LocalStorage(fixtures / "idx"), "train", 0.5, seed=7, class_names=names)
    b = mnist.load_split(spark, LocalStorage(fixtures / "idx"), "train", 0.5, seed=7, class_names=names)
    paths_a = sorted(r["path"] for r in a.select("path").collect())
    assert paths_a == sorted(r["path"] for r in b.select("path").collect())
    assert 5 < len(paths_a) < 25
    assert {r["label"] for r in a.select("label").collect()} <= set(names)
