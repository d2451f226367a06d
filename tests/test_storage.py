"""Local and Hadoop-URI storage, the MNIST converter, and the jobs' one-line errors."""

from __future__ import annotations

import os
import re
import stat

import numpy as np
import pytest
from make_fixtures import AERIAL_COUNTS, AERIAL_LABELS
from PIL import Image
from pyspark.ml import PipelineModel

from featurizers.rejects import MaskRejects
from jobs import convert, score, train
from jobs.datasets import folders, mnist
from jobs.runtime import errors as exits
from jobs.storage import HadoopStorage, LocalStorage, StorageError


def test_local_writes_are_whole_and_lists_skip_hidden(tmp_path):
    store = LocalStorage(tmp_path)
    store.write_bytes(b"abc", "a", "b.bin")
    (tmp_path / "a" / "_SUCCESS").write_bytes(b"")
    (tmp_path / "a" / ".hidden").write_bytes(b"")
    assert store.list_files() == ["a/b.bin"]
    assert not isinstance(store.iter_files(), list)  # streamed, never a whole listing
    assert [p.name for p in (tmp_path / "a").iterdir() if p.name.startswith(".b.bin")] == []  # no temp left
    assert (store.head(2, "a", "b.bin"), store.size("a", "b.bin")) == (b"ab", 3)
    with pytest.raises(StorageError, match="not found"):
        store.read_bytes("nope")
    umask = os.umask(0o022)
    os.umask(umask)
    # Readable by the root's other users as the umask allows (Spark's files are), never mkstemp's 0600.
    assert stat.S_IMODE((tmp_path / "a" / "b.bin").stat().st_mode) == 0o666 & ~umask


def test_a_long_listing_reaches_executors_whole_in_bounded_partitions(tmp_path, spark):
    store = LocalStorage(tmp_path)
    n = 3 * folders._MAX_MARKS + 7  # past the point where the driver thins its offsets
    files = ((f"d{i % 3}/t\n{i}.png", None if i % 2 else f"L{i % 5}") for i in range(n))  # a generator
    names = folders.names_frame(spark, ((store.uri(*p.split("/")), lab) for p, lab in files))
    sizes = names.rdd.glom().map(len).collect()
    assert sum(sizes) == n and max(sizes) <= folders.FILES_PER_PARTITION and len(sizes) >= n // 256
    got = {(r["path"], r["label"]) for r in names.collect()}
    assert got == {(store.uri(f"d{i % 3}", f"t\n{i}.png"), None if i % 2 else f"L{i % 5}") for i in range(n)}
    few = folders.names_frame(spark, iter([("a.png", None), ("b.png", None), ("c.png", None)]))
    assert few.rdd.getNumPartitions() == spark.sparkContext.defaultParallelism and few.count() == 3
    assert folders.names_frame(spark, iter([])).count() == 0


def _stores(tmp_path, spark):
    return [LocalStorage(tmp_path / "local"), HadoopStorage((tmp_path / "hadoop").as_uri(), spark)]


def test_model_card_and_record_become_visible_together_or_not_at_all(tmp_path, spark):
    for store in _stores(tmp_path, spark):
        index: list[str] = []
        store.save_model(PipelineModel([MaskRejects(maskCols=["a"])]), "trainedmodels", "m", card={"run_id": "r1"})
        saved = store.save_model(
            PipelineModel([MaskRejects(maskCols=["b", "c"])]),
            "trainedmodels",
            "m",
            card={"run_id": "r2"},
            record=lambda index=index: index.append("r2"),
        )
        assert saved == store.uri("trainedmodels", "m") and index == ["r2"]
        assert store.load_model("trainedmodels", "m").stages[0].getOrDefault("maskCols") == ["b", "c"]
        assert store.load_card("trainedmodels", "m") == {"run_id": "r2"}

        def fail() -> None:
            raise OSError("index unwritable")

        with pytest.raises(OSError, match="index unwritable"):  # a late failure: the old model stays live
            store.save_model(PipelineModel([MaskRejects(maskCols=["z"])]), "trainedmodels", "m", card={}, record=fail)
        assert store.load_card("trainedmodels", "m") == {"run_id": "r2"}
        assert store.load_model("trainedmodels", "m").stages[0].getOrDefault("maskCols") == ["b", "c"]
        with pytest.raises(OSError):  # a first save that fails leaves no model at all
            store.save_model(PipelineModel([]), "trainedmodels", "new", card={}, record=fail)
        with pytest.raises(StorageError, match="no saved model"):
            store.load_card("trainedmodels", "new")
        assert store.list_folders("trainedmodels") == ["m"]


def test_leftovers_of_a_killed_save_never_block_the_next(tmp_path, spark):
    import os
    import time

    store = LocalStorage(tmp_path)
    stale = [tmp_path / "trainedmodels" / n for n in (".m.old", ".m.abc123", ".m.old-1234")]
    for folder in stale:  # what a kill -9 between the steps of a save leaves
        (folder / "model" / "metadata").mkdir(parents=True)
        os.utime(folder, (time.time() - 7200, time.time() - 7200))
    store.save_model(PipelineModel([MaskRejects(maskCols=["a"])]), "trainedmodels", "m", card={"run_id": "r"})
    assert store.load_card("trainedmodels", "m") == {"run_id": "r"}
    assert sorted(p.name for p in (tmp_path / "trainedmodels").iterdir()) == ["m"]  # stale ones removed


def test_saved_models_are_checked_before_loading(tmp_path, spark):
    import json
    import shutil

    store = LocalStorage(tmp_path)
    store.save_model(PipelineModel([MaskRejects(maskCols=["a"])]), "trainedmodels", "m", card={"run_id": "r"})
    stage = next((tmp_path / "trainedmodels" / "m" / "stages").iterdir())
    meta_file = stage / "metadata" / "part-00000"
    meta = json.loads(meta_file.read_text())
    meta_file.write_text(json.dumps({**meta, "class": "os.system"}))
    with pytest.raises(StorageError, match=r"of class os\.system, outside this project and Spark ML: refused"):
        store.load_model("trainedmodels", "m")
    # A trusted prefix is not enough: the name must be one of this project's stages or a Spark ML
    # class (pyspark's reader would import org.apache.spark.ml.feature.os as pyspark.ml.feature.os).
    for name in ("featurizers.pixels.np", "org.apache.spark.ml.feature.os", "jobs.storage.local.shutil"):
        meta_file.write_text(json.dumps({**meta, "class": name}))
        with pytest.raises(StorageError, match=rf"of class {re.escape(name)}, outside this project and Spark ML"):
            store.load_model("trainedmodels", "m")
    shutil.rmtree(stage)
    with pytest.raises(StorageError, match=r"incomplete saved model, stage 0_MaskRejects_\w+ is missing"):
        store.load_model("trainedmodels", "m")


def test_hadoop_uris_go_through_spark(tmp_path, spark, fixtures):
    store = HadoopStorage((tmp_path / "h").as_uri(), spark)
    store.write_bytes(b"{}", "x.json")
    assert store.read_json("x.json") == {} and store.exists("x.json") and store.size("x.json") == 2
    store.append_line("one", "log")
    store.append_line("two", "log")
    assert store.read_bytes("log") == b"one\ntwo\n"
    df = spark.createDataFrame([(1, "a"), (2, "b")], "n long, s string")
    store.write_table(df, "t")
    assert sorted(r["n"] for r in store.read_table(spark, "t").collect()) == [1, 2]
    aerial = HadoopStorage((fixtures / "aerial").as_uri(), spark)
    rows = folders.load_labelled(spark, aerial, "train").collect()
    assert len(rows) == AERIAL_COUNTS["train"] * len(AERIAL_LABELS)
    assert {r["label"] for r in rows} == set(AERIAL_LABELS)
    # Where Python on the executors reads files itself (idx by range, scene windows), fsspec does.
    idx = mnist.load_split(spark, HadoopStorage((fixtures / "idx_gz").as_uri(), spark), "test")
    local = mnist.load_split(spark, LocalStorage(fixtures / "idx_gz"), "test")
    assert sorted(r["label"] for r in idx.collect()) == sorted(r["label"] for r in local.collect())


def test_mnist_to_folders(fixtures, tmp_path, capsys):
    assert (
        convert.main(["mnist-to-folders", "--data", str(fixtures / "idx_gz"), "--out", str(tmp_path), "--workers", "2"])
        == 0
    )
    assert capsys.readouterr().out.strip() == '{"train": 30, "test": 10}'
    labels = np.load(fixtures / "idx_train_labels.npy")
    images = np.load(fixtures / "idx_train_images.npy")
    png = tmp_path / "train" / str(labels[7]) / "00007.png"
    assert np.array_equal(np.asarray(Image.open(png)), images[7])
    assert sum(1 for _ in (tmp_path / "train").rglob("*.png")) == 30


def test_jobs_fail_in_one_line_with_exit_code_2(fixtures, tmp_path, capsys, spark):
    broken = tmp_path / "mnist"
    broken.mkdir()
    for f in (fixtures / "idx").iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / "train-images-idx3-ubyte").write_bytes(
        (fixtures / "idx_broken" / "truncated-images-idx3-ubyte").read_bytes()
    )
    (tmp_path / "empty" / "train").mkdir(parents=True)
    storage = tmp_path / "storage"
    cases = [
        (train.main, ["--dataset", "mnist", "--data", str(broken)], "bytes of records, expected 23520"),
        (train.main, ["--dataset", "aerial", "--data", str(tmp_path / "empty")], "no class folders"),
        (train.main, ["--mmlspark_model_type", "svm"], None),
        (score.main, ["--output_model_name", "none", "--tiles", str(fixtures / "bad")], "no trained model 'none'"),
    ]
    for main, args, message in cases:
        if message is None:
            with pytest.raises(SystemExit) as exit_info:  # argparse's own check of choices
                main([*args, "--storage", str(storage)])
            assert exit_info.value.code == 2
            capsys.readouterr()
            continue
        assert main([*args, "--storage", str(storage)]) == exits.EXIT_BAD_INPUT
        err = capsys.readouterr().err.strip().splitlines()  # progress lines, then the error
        errors = [line for line in err if ": error: " in line]
        assert len(errors) == 1 and message in errors[0] and errors[0] == err[-1], err
        assert not any("Traceback" in line for line in err)
    assert not storage.exists()  # failed before writing anything


HOSTILE = ["..", "../../escape", "/tmp", "", "/", "a/b", "a\\b", "nul\x00x", "x" * 300, "#?%", "ünïcode", ".hidden"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_model_names_are_refused_before_anything_is_touched(tmp_path, name, capsys):
    storage = tmp_path / "root"
    before = sorted(p.name for p in tmp_path.iterdir())
    for main in (train.main, score.main):
        args = ["--output_model_name", name, "--storage", str(storage), "--data", str(tmp_path / "none")]
        code = main(args if main is train.main else [*args[:4], "--tiles", str(tmp_path)])
        assert code == 2
        assert "is not a name" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written, nothing deleted


def test_local_storage_never_leaves_its_root(tmp_path):
    store = LocalStorage(tmp_path / "root")
    for parts in (("..", "x"), ("/etc", "passwd"), ("a", ""), ("a/../../b",)):
        with pytest.raises(StorageError, match="not a path inside the storage root"):
            store.write_bytes(b"x", *parts)
    assert not (tmp_path / "x").exists() and not (tmp_path / "b").exists()
