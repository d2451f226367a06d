"""Aerial data sets: UC Merced's real mirror, folder-per-class splits, recipes, and bad layouts."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import shutil
import threading
import zipfile
from pathlib import Path

import pytest
from conftest import DEMO, require
from make_fixtures import CLASS_COUNTS
from pyspark.sql import functions as F

from featurizers.preprocess import prepare
from featurizers.zoo import Network
from jobs import config
from jobs.datasets import DatasetError, folders, labelled, splits, ucmerced
from jobs.storage import LocalStorage


def mirror() -> Path:
    """The real UC Merced that `make data` put in place (the mirror's copy, or the official zip)."""
    return require(DEMO / "ucmerced")


def original_tifs() -> list[Path]:
    """Two original TIFFs a class: the mirror's ``original_tif/``, or the official release's."""
    copy = mirror() / "original_tif"
    folder = copy if copy.is_dir() else Path(ucmerced.locate(str(mirror())))
    return [p for c in ucmerced.CLASSES for p in sorted((folder / c).glob("*.tif"))[:2]]


def names(spark, root: Path):
    loc = LocalStorage(root)
    return folders.names_frame(spark, folders.uris(loc, folders.class_files(loc))).withColumn(
        "key", folders.relative_key(loc)
    )


def test_the_real_mirror_has_21_classes_of_100_and_its_tiffs_decode():
    root = Path(ucmerced.locate(str(mirror())))
    counts = {c: len(list((root / c).iterdir())) for c in ucmerced.CLASSES}
    assert len(counts) == 21 and set(counts.values()) == {100}
    tifs = original_tifs()
    assert len(tifs) == 42  # the first two original TIFFs of each class
    prep = Network.parse("efficientnet_lite0").preprocessing
    assert all(prepare(p.read_bytes(), prep).shape == (3, 224, 224) for p in tifs)


def test_the_official_tif_layout_reads_the_same_way(spark, tmp_path):
    release = tmp_path / "UCMerced_LandUse" / "Images"
    for tif in original_tifs():
        (release / tif.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(tif, release / tif.parent.name / tif.name)
    assert ucmerced.locate(str(tmp_path)) == str(release)
    cfg = config.TrainConfig(dataset="ucmerced", data=str(tmp_path), train_ratio=0.5).validate()
    rows, info, _ = labelled.load(spark, cfg)
    by_split = {r["split"]: r["count"] for r in rows.groupBy("split").count().collect()}
    assert by_split == {"train": 21, "test": 21}  # 2 a class: one each side (val needs 2 in train)
    assert info["method"].startswith("seeded stratified")
    (tmp_path / "partial" / "forest").mkdir(parents=True)
    with pytest.raises(DatasetError, match="missing agricultural"):
        ucmerced.locate(str(tmp_path / "partial"))


def test_the_split_is_stratified_and_the_same_whatever_the_partitioning_or_location(spark, tmp_path):
    root = Path(ucmerced.locate(str(mirror())))
    a = splits.assign(names(spark, root), F.col("key"), 0.8, 0.1, 42)
    test = {r["key"] for r in a.where(F.col("split") == "test").collect()}
    per_class = a.groupBy("label", "split").count().collect()
    assert {(r["split"], r["count"]) for r in per_class} == {("test", 20), ("val", 8), ("train", 72)}
    # The same names in one partition, listed in reverse: the same split.
    reordered = names(spark, root).orderBy(F.desc("key")).coalesce(1)
    b = splits.assign(reordered, F.col("key"), 0.8, 0.1, 42)
    assert {r["key"] for r in b.where(F.col("split") == "test").collect()} == test
    # A copy of two classes elsewhere splits those classes exactly as the original did.
    for c in ("forest", "river"):
        shutil.copytree(root / c, tmp_path / "copy" / c)
    c2 = splits.assign(names(spark, tmp_path / "copy"), F.col("key"), 0.8, 0.1, 42)
    assert {r["key"] for r in c2.where(F.col("split") == "test").collect()} == {
        k for k in test if k.startswith(("forest/", "river/"))
    }
    other_seed = splits.assign(names(spark, root), F.col("key"), 0.8, 0.1, 7)
    assert {r["key"] for r in other_seed.where(F.col("split") == "test").collect()} != test


def test_class_folders_split_with_sampling_keeps_every_split(spark, fixtures):
    cfg = config.TrainConfig(data=str(fixtures / "classes"), sample_frac=0.6).validate()
    rows, _, _ = labelled.load(spark, cfg)
    got = {(r["label"], r["split"]) for r in rows.select("label", "split").distinct().collect()}
    assert {s for _, s in got} == {"train", "val", "test"}
    full = config.TrainConfig(data=str(fixtures / "classes")).validate()
    rows, _, _ = labelled.load(spark, full)
    counts = {(r["label"], r["split"]): r["count"] for r in rows.groupBy("label", "split").count().collect()}
    for label, n in CLASS_COUNTS.items():
        assert sum(v for (lab, _), v in counts.items() if lab == label) == n
        assert counts[(label, "test")] == max(1, round(n * 0.2))


def test_bad_layouts_and_ratios_are_one_line_errors(spark, fixtures, tmp_path):
    root = tmp_path / "classes"
    shutil.copytree(fixtures / "classes", root)
    (root / "Water").mkdir()
    with pytest.raises(DatasetError, match=r"class folder .*Water holds no image"):
        labelled.load(spark, config.TrainConfig(data=str(root)).validate())
    (root / "Water" / "only.png").write_bytes((root / "Barren" / "barren00.png").read_bytes())
    with pytest.raises(splits.SplitError, match="fewer than 2 images cannot be split: Water"):
        labelled.load(spark, config.TrainConfig(data=str(root)).validate())
    (root / "stray.png").write_bytes(b"x")
    with pytest.raises(folders.LayoutError, match="directly under the data root"):
        labelled.load(spark, config.TrainConfig(data=str(root)).validate())
    for bad in ({"train_ratio": 1.5}, {"train_ratio": 0.0}, {"val_ratio": 1.0}, {"tune": True, "val_ratio": 0.0}):
        with pytest.raises(config.ConfigError):
            config.TrainConfig(data=str(root), **bad).validate()


def test_a_class_whose_training_images_are_all_rejected_is_an_error_naming_it(spark, fixtures, tmp_path, storage):
    from jobs import train

    root = tmp_path / "classes"
    shutil.copytree(fixtures / "classes", root)
    (root / "Broken").mkdir()
    for i in range(3):
        (root / "Broken" / f"b{i}.png").write_bytes(b"not an image")
    cfg = config.TrainConfig(data=str(root), pretrained_model_type="pixels", tune=False, val_ratio=0.0).validate()
    with pytest.raises(DatasetError, match=r"class folder .*Broken: every training image was rejected"):
        train.train(spark, cfg, storage)


def test_too_few_images_to_carve_validation_trains_untuned_and_says_so(spark, fixtures, tmp_path):
    """Two images a class: one tests, one trains, none is left to validate on. The documented
    fallback (the classifier's defaults) is taken aloud: a warning in the summary and the record."""
    from jobs import train

    root = tmp_path / "two_each"
    for c in ("Barren", "Forest", "Developed"):
        (root / c).mkdir(parents=True)
        for f in sorted((fixtures / "aerial" / "train" / c).iterdir())[:2]:
            shutil.copy(f, root / c / f.name)
    store = LocalStorage(tmp_path / "store")
    cfg = config.TrainConfig(data=str(root), storage=str(store.root), pretrained_model_type="pixels",
                             tune=True, val_ratio=0.2, train_ratio=0.5).validate()  # fmt: skip
    summary = train.train(spark, cfg, store)
    expected = "no validation images to tune on (3 training images in 3 classes, val_ratio 0.2)"
    assert any(w.startswith(expected) for w in summary["warnings"]), summary["warnings"]
    record = store.read_json("runs", summary["run_id"], "metrics.json")
    assert record["tuning"] is None and any(w.startswith(expected) for w in record["warnings"])


def test_defaults_are_each_data_sets_best_recipe():
    aerial = config.TrainConfig(dataset="aerial", data="x").validate()
    # One pass a tile: Lite0 fine-tuned (12 epochs at most), no D4 at scoring time, LR tuned on validation.
    assert (aerial.pretrained_model_type, aerial.d4, aerial.image_size, aerial.pool_grid) == (
        "efficientnet_lite0",
        False,
        192,
        1,
    )
    assert (aerial.finetune, aerial.epochs) == (True, 12)
    assert aerial.tune and aerial.val_ratio > 0 and aerial.mmlspark_model_type == "logisticregression"
    assert config.TrainConfig(dataset="aerial", data="x", recipe="frozen-d4").validate().d4 is True
    uc = config.TrainConfig(dataset="ucmerced", data="uc").validate()
    assert (uc.gsd_m, uc.image_px, uc.data) == (0.3, 256, os.path.abspath("uc"))  # recorded whole
    mnist = config.TrainConfig(dataset="mnist", data="m").validate()
    assert (mnist.pretrained_model_type, mnist.pool_grid, mnist.d4) == ("efficientnet_lite0", 2, False)
    # Outside make demo (whose confs name the demo copies) no data is an error, not UC Merced.
    with pytest.raises(config.ConfigError, match=r"^no data: give --data ROOT"):
        config.TrainConfig(dataset="ucmerced").validate()
    # A setting given wins over the recipe.
    assert config.TrainConfig(dataset="aerial", data="x", d4=True).validate().d4 is True
    with pytest.raises(config.ConfigError, match="d4 averages over rotations"):
        config.TrainConfig(dataset="aerial", data="x", recipe="frozen-d4", pool_grid=2).validate()


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # keep the test output clean
        return None


def test_download_fetches_checks_and_unpacks(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for c in ucmerced.CLASSES:
            z.writestr(f"UCMerced_LandUse/Images/{c}/{c}00.tif", b"tif")
    served = tmp_path / "served"
    served.mkdir()
    (served / ucmerced.ARCHIVE).write_bytes(buf.getvalue())
    md5 = hashlib.md5(buf.getvalue(), usedforsecurity=False).hexdigest()

    def handler(*args, **kwargs):
        return _Files(*args, directory=str(served), **kwargs)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/{ucmerced.ARCHIVE}"
    try:
        found = ucmerced.download(str(tmp_path / "data"), url, md5)
        assert found == str(tmp_path / "data" / "UCMerced_LandUse" / "Images")
        with pytest.raises(ucmerced.ChecksumError, match=r"md5 .*, expected 0000"):
            ucmerced.download(str(tmp_path / "bad"), url, "0" * 32)
        assert not any((tmp_path / "bad").iterdir())  # no partial archive left behind
    finally:
        server.shutdown()
