"""Hostile and careless inputs, case by case: each gets a counted skip, a note, or one line and exit 2."""

from __future__ import annotations

import io
import json
import os
import re
import sys
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from featurizers.preprocess import decode_rgb_noted
from jobs import config, train
from jobs.classifiers import estimators as classifiers
from jobs.datasets import mnist
from jobs.runtime import errors as exits
from jobs.runtime import redact
from jobs.storage import LocalStorage


def _png(colour: tuple[int, ...] = (10, 200, 30), mode: str = "RGB", **save: object) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (40, 24), colour).save(buf, format=str(save.pop("format", "PNG")), **save)
    return buf.getvalue()


def test_listing_counts_what_it_leaves_out_and_never_hangs_or_loops(tmp_path):
    root = tmp_path / "tiles"
    (root / "a").mkdir(parents=True)
    (root / "a" / "x.png").write_bytes(_png())
    (root / ".DS_Store").write_bytes(b"")
    (root / "_SUCCESS").write_bytes(b"")
    os.mkfifo(root / "a" / "pipe.png")  # reading it would block forever
    os.symlink(root, root / "a" / "loop")  # a folder linking back up: 40 copies without a guard
    os.symlink(tmp_path / "missing.png", root / "dangling.png")
    skipped: Counter[str] = Counter()
    files = list(LocalStorage(root).iter_files(skipped=skipped))
    assert files == ["a/x.png"]
    assert skipped == {"hidden": 2, "not_a_file": 1, "link_loop": 1, "broken_link": 1}


def test_pixels_changed_before_featurizing_are_noted():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees to view
    img, note = decode_rgb_noted(_png(format="JPEG", exif=exif.tobytes()))
    assert img.size == (24, 40) and note == "exif_rotated: orientation 6"
    stack = io.BytesIO()  # two full-size pages: a stack, not overviews
    Image.new("RGB", (40, 24), (1, 2, 3)).save(
        stack, format="TIFF", save_all=True, append_images=[Image.new("RGB", (40, 24))]
    )
    assert decode_rgb_noted(stack.getvalue())[1] == "first_page: 1 of 2 pages used"
    overview = io.BytesIO()  # a reduced second page (an overview) changes nothing
    Image.new("RGB", (40, 24)).save(overview, format="TIFF", save_all=True, append_images=[Image.new("RGB", (20, 12))])
    assert decode_rgb_noted(overview.getvalue())[1] is None
    four = Image.fromarray(np.dstack([np.full((24, 40), v, np.uint8) for v in (10, 20, 30, 40)]), "RGBX")
    buf = io.BytesIO()
    four.save(buf, format="TIFF")
    rgb, note = decode_rgb_noted(buf.getvalue())
    assert note == "bands_1_3: 4 bands stored, 3 used" and rgb.getpixel((0, 0)) == (10, 20, 30)
    assert decode_rgb_noted(_png((1, 2, 3, 255), "RGBA"))[1] is None  # opaque alpha: nothing lost
    assert decode_rgb_noted(_png((1, 2, 3, 0), "RGBA"))[1] == "alpha_dropped: 100% not opaque"
    assert decode_rgb_noted(_png())[1] is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('sample_frac = "0.5"', "sample_frac = '0.5' is a string, expected a number"),
        ('top_k = "3"', "top_k = '3' is a string, expected an integer"),
        ("d4 = 1", "d4 = 1 is an integer, expected true or false"),
        ('[logisticregression]\nregParam = "x"', "regParam = 'x': not a valid value"),
        ("pool_grid = 100\nd4 = false", "pool_grid 100: the cut's last feature map is 6 x 6 at 192 px"),
        ("pool_grid = 0", "pool_grid 0 must be a positive integer"),
    ],
)
def test_conf_values_of_the_wrong_type_are_one_line_errors(tmp_path, capsys, body, message):
    conf = tmp_path / "c.toml"
    conf.write_text(f'pretrained_model_type = "efficientnet_lite0"\n{body}\n')
    args = ["--conf", str(conf), "--storage", str(tmp_path / "s"), "--data", str(tmp_path / "none")]
    assert train.main(args) == exits.EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and not any("Traceback" in line for line in err)


def test_conf_naming_a_folder_is_a_one_line_error(tmp_path):
    with pytest.raises(config.ConfigError, match="is a folder: name a TOML file"):
        config.build(config.TrainConfig, str(tmp_path), {})


def test_mnist_labels_without_a_class_name_fail_on_the_driver(fixtures, tmp_path, spark):
    location = LocalStorage(fixtures / "idx")
    labels = np.load(fixtures / "idx_train_labels.npy")
    few = [str(i) for i in range(int(labels.max()))]  # one name short
    with pytest.raises(mnist.MnistFormatError, match=f"labels of {int(labels.max())} or less have no class name"):
        mnist.load_split(spark, location, "train", class_names=few)


def test_signatures_never_reach_logs_or_records():
    url = "https://acct.blob.core.windows.net/c/data?sv=2024-01-01&se=2030-01-01&sr=c&sp=rl&sig=c2VjcmV0%2Bsig"
    shown = redact.redact(f"reading {url}")
    assert "c2VjcmV0" not in shown and "se=2030-01-01" in shown and "sig=REDACTED" in shown
    conn = "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=a2V5a2V5;EndpointSuffix=core.windows.net"
    assert "a2V5a2V5" not in json.dumps(redact.redact_obj({"data": url, "list": [conn], url: 1}))
    assert redact.redact("https://user:hunter2@host/x") == "https://user:REDACTED@host/x"


def test_a_flag_always_wins_and_the_resolved_configuration_says_from_where(tmp_path, capsys):
    conf = tmp_path / "job.toml"
    conf.write_text("train_sample_frac = 0.5\ntest_sample_frac = 0.4\nseed = 7\nbatch_size = 4\n")
    cfg = train.parse_args(["--conf", str(conf), "--sample_frac", "0.02", "--seed", "1", "--data", str(tmp_path)])
    assert (cfg.fraction("train"), cfg.fraction("test"), cfg.seed, cfg.batch_size) == (0.02, 0.02, 1, 4)
    assert cfg.train_sample_frac is None  # --sample_frac on the command line beat the conf's per-split value
    pinned = train.parse_args(
        ["--conf", str(conf), "--sample_frac", "0.02", "--train_sample_frac", "0.3", "--data", str(tmp_path)]
    )
    assert (pinned.fraction("train"), pinned.fraction("test")) == (0.3, 0.02)
    rows = config.resolved(cfg)
    assert rows["sample_frac"] == {"value": 0.02, "from": "flag"} and rows["batch_size"]["from"] == "conf"
    assert rows["pretrained_model_type"] == {"value": "efficientnet_lite0", "from": "recipe"}  # one-pass
    assert rows["train_ratio"] == {"value": 0.8, "from": "default"}
    lines = [" ".join(line.split()) for line in config.describe(cfg).splitlines()]
    assert "sample_frac = 0.02 (flag)" in lines and len(lines) == len(rows)  # printed at start, one per key
    with pytest.raises(SystemExit):
        train.parse_args(["--help"])
    helped = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert (
        "(default: 42)" in helped
        and "(default: the data set's recipe: aerial true, aid true, ucmerced true, mnist false)" in helped
    )
    for flag, meaning in classifiers.FLAG_HELP.items():
        assert f"--{flag} {flag.upper()} {meaning}" in helped


def test_a_missing_torch_is_one_line_naming_the_extra(monkeypatch):
    from featurizers import export

    monkeypatch.setitem(sys.modules, "torch", None)  # what an install without the export extra sees
    with pytest.raises(export.MissingExtraError, match=r"^exporting resnet18 to ONNX needs torch: pip install"):
        export.export("resnet18")
    assert issubclass(export.MissingExtraError, exits.UserInputError)  # exit 2 with that line


def test_the_package_leaves_pyspark_to_the_cluster_and_installs_its_commands():
    """Managed Spark ships pyspark: only the `spark` extra asks for it. The commands are installed."""
    import importlib.metadata as meta

    wanted = [r for r in meta.requires("spark-image-classification") or [] if r.startswith("pyspark")]
    assert wanted and all('extra == "spark"' in r for r in wanted)
    commands = {e.name: e.value for e in meta.entry_points(group="console_scripts") if e.name.startswith("landuse-")}
    assert commands["landuse-score"] == "jobs.score:main" and len(commands) == 8


def test_a_list_flag_with_a_bad_item_names_the_flag_and_no_internal_name(capsys):
    from jobs import score

    with pytest.raises(SystemExit) as exc:
        score.parse_args(["--bands", "1,2,x"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "argument --bands: invalid comma-separated int value: '1,2,x'" in err
    assert "_ints" not in err and "lambda" not in err


def test_misspelt_flags_and_conf_keys_say_what_was_meant(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        train.parse_args(["--regparm", "0.1"])
    assert exc.value.code == 2
    assert "unrecognized arguments: --regparm (did you mean --regParam?)" in capsys.readouterr().err
    conf = tmp_path / "c.toml"
    conf.write_text("sample_fraq = 0.5\n")
    with pytest.raises(config.ConfigError, match=r"unknown keys sample_fraq \(did you mean sample_frac\?\)"):
        train.parse_args(["--conf", str(conf)])


def test_an_unknown_model_lists_the_models_there_and_the_closest(spark, tmp_path, capsys):
    from jobs import score

    storage = tmp_path / "s"
    (storage / "trainedmodels" / "aid_demo").mkdir(parents=True)
    (storage / "trainedmodels" / "ucmerced_demo").mkdir()
    code = score.main(["--output_model_name", "aid_dmeo", "--storage", str(storage), "--tiles", str(tmp_path)])
    assert code == exits.EXIT_BAD_INPUT
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "no trained model 'aid_dmeo'" in line
    assert "models there: aid_demo, ucmerced_demo (did you mean aid_demo?)" in line


def test_runs_piped_into_head_ends_quietly(tmp_path):
    """`landuse-runs list | head -1` on a long history: no BrokenPipeError traceback."""
    import subprocess

    record = {c: 1.0 for c in ("train_sample_frac", "accuracy", "macro_f1", "images_per_s", "seconds")}
    record |= {"dataset": "aerial", "pretrained_model_type": "x", "classifier": "lr", "n_train": 1, "n_test": 1}
    (tmp_path / "runs").mkdir()
    lines = [json.dumps(record | {"run_id": f"run-{i:05d}"}) for i in range(20000)]
    (tmp_path / "runs" / "index.jsonl").write_text("\n".join(lines) + "\n")
    done = subprocess.run(
        f"{sys.executable} -m jobs.runs list --storage {tmp_path} | head -1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    assert done.stdout.startswith("run_id")
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr[-2000:]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--value_range", "nan,nan"], "value_range nan: give a finite number"),
        (["--tile_m", "1e12"], "tile_m 1000000000000.0: give a value from 0.001 to 1e+06"),
        (["--lock_timeout_s", "-5"], "lock_timeout_s -5.0: give a value from"),
        (["--lock_timeout_s", "nan"], "lock_timeout_s nan: give a finite number"),
        (["--bands", "0,1,2"], "bands 0: give a value from 1 to 65535"),
        (["--max_nodata", "1.5"], "max_nodata 1.5: give a value from 0 to 1"),
    ],
)
def test_numbers_out_of_range_are_one_line_errors(flags, message):
    from jobs import score

    with pytest.raises(config.ConfigError, match=re.escape(message)):
        score.parse_args([*flags, "--scenes", "x.tif"])


def test_huge_integers_in_a_conf_or_a_classifier_table_are_refused(tmp_path):
    conf = tmp_path / "c.toml"
    conf.write_text("seed = 99999999999999999999\n")
    with pytest.raises(config.ConfigError, match=r"seed 99999999999999999999: too large"):
        train.parse_args(["--conf", str(conf)])
    conf.write_text("[logisticregression]\nmaxIter = 100000000000000000000000\n")
    with pytest.raises(config.ConfigError, match=r"logisticregression.maxIter .*: too large"):
        train.parse_args(["--conf", str(conf), "--data", str(tmp_path)])


def test_scene_flags_given_to_a_tile_run_are_refused():
    from jobs import score

    with pytest.raises(config.ConfigError, match=r"--max_nodata, --tile_px apply to --scenes only"):
        score.parse_args(["--tiles", "t", "--tile_px", "20", "--max_nodata", "0.9"])


def test_a_model_edited_behind_its_checksums_is_a_damaged_model_not_a_trace(spark, tmp_path):
    from pyspark.ml import PipelineModel

    from featurizers.rejects import MaskRejects
    from jobs.storage import StorageError

    store = LocalStorage(tmp_path)
    store.save_model(PipelineModel([MaskRejects(maskCols=["a"])]), "trainedmodels", "m", card={"run_id": "r"})
    meta = next((tmp_path / "trainedmodels" / "m" / "stages").iterdir()) / "metadata" / "part-00000"
    meta.write_text(meta.read_text().replace('"a"', '"b"'))  # its .crc left as it was
    with pytest.raises(StorageError, match=r"damaged saved model \(.*ChecksumException"):
        store.load_model("trainedmodels", "m")


@pytest.mark.parametrize(
    ("remote", "message"),
    [
        ("sc://127.0.0.1:1", "no Spark Connect server answers at 127.0.0.1:1 (SPARK_REMOTE)"),
        ("localhost:15002", "SPARK_REMOTE 'localhost:15002': give sc://host:port"),
    ],
)
def test_a_spark_connect_server_that_is_not_there_is_one_line_not_a_hang(remote, message, monkeypatch, capsys):
    import time

    from jobs import score

    monkeypatch.setenv("SPARK_REMOTE", remote)
    started = time.monotonic()
    assert score.main(["--output_model_name", "m", "--tiles", "t"]) == exits.EXIT_BAD_INPUT
    assert time.monotonic() - started < 30
    assert message in capsys.readouterr().err.strip().splitlines()[-1]


def test_scene_ids_are_unique_per_input():
    from jobs.scenes.windows import scene_id

    names = ["twin a.tif", "twin_a.tif", "stem.tif", "stem.tiff", "a/b.tif", "a__b.tif", "x.TIF", "x.tif"]
    ids = [scene_id(n) for n in names]
    assert len(set(ids)) == len(ids)
    assert scene_id("m_4709963_se_14_1_20090818.tif") == "m_4709963_se_14_1_20090818"  # readable where it can be
    assert scene_id("twin a.tif").startswith("twin_a-")


def test_a_scene_list_names_each_file_once_and_resolves_against_its_folder(spark, tmp_path):
    from collections import Counter

    from jobs.scenes.windows import list_scenes

    (tmp_path / "sc").mkdir()
    scene = tmp_path / "sc" / "rgb.tif"
    scene.write_bytes(b"")
    listing = tmp_path / "sc" / "l.txt"
    listing.write_text(f"{scene}\n{scene}\n{tmp_path}//sc/./rgb.tif\nrgb.tif\n")
    skipped: Counter[str] = Counter()
    rows = list_scenes(spark, str(listing), skipped)[0].collect()
    assert [r["path"] for r in rows] == [str(scene)]
    assert skipped["duplicate"] == 3


def _class_raster(west: float, cells: list[list[int]], labels: list[str], crs: str = "EPSG:32614") -> bytes:
    """A class raster as landuse-score writes it: 100 m cells (1 ha), one row per list."""
    from rasterio.io import MemoryFile
    from rasterio.transform import from_origin

    values = np.array(cells, dtype=np.uint8)
    profile = {"driver": "GTiff", "width": values.shape[1], "height": values.shape[0], "count": 1, "dtype": "uint8"}
    with MemoryFile() as mem:
        transform = from_origin(west, 5_300_000, 100, 100)
        with mem.open(**profile, crs=crs, transform=transform, nodata=255) as ds:
            ds.write(values, 1)
            ds.update_tags(CLASS_NAMES=json.dumps(labels))
        return mem.read()


def test_a_run_changed_against_itself_changes_nothing_and_overlaps_count_once():
    """Two scenes of one run overlapping by two cells: the ground is compared once (case 4)."""
    from jobs.maps.change import compare

    labels = ["Farmland", "Pond"]
    run = {
        "east": _class_raster(500_200, [[1, 1, 0, 0]], labels),  # 500200-500600
        "west": _class_raster(500_000, [[255, 0, 0, 1]], labels),  # 500000-500400, first cell nodata
    }
    same = compare(run, run)
    assert same["changed_ha"] == 0.0
    assert same["compared_ha"] == pytest.approx(5.0)  # 6 ha of ground, 1 ha nodata
    assert same["nodata_at_either_date_ha"] == pytest.approx(1.0)  # nodata at both dates counts too
    assert same["area_ha"]["a"] == same["area_ha"]["b"] == {"Farmland": 3.0, "Pond": 2.0}  # "east" wins its cells
    later = {"all": _class_raster(500_000, [[1, 1, 1, 1, 1, 1]], list(reversed(labels)))}  # 0 = Pond here
    moved = compare(run, later)
    assert moved["compared_ha"] == pytest.approx(5.0) and moved["changed_ha"] == pytest.approx(2.0)
    assert moved["area_ha"]["b"] == {"Farmland": 5.0, "Pond": 0.0}
    assert moved["mapped_at_one_date_only_ha"] == {"a": 0.0, "b": 0.0}


def test_nan_in_a_float_scene_is_nodata_even_undeclared(tmp_path):
    """A float scene with NaN and no nodata value: NaN windows are nodata, the rest stretch (case 5)."""
    import rasterio
    from rasterio.transform import from_origin

    from jobs.scenes.windows import SceneOptions, header, read_window_rgb
    from jobs.storage import Reader

    rng = np.random.default_rng(5)
    values = rng.uniform(100, 4000, (3, 120, 120)).astype(np.float32)
    values[:, :60, :60] = np.nan  # the top-left window, no nodata declared
    path = tmp_path / "float.tif"
    profile = {"driver": "GTiff", "width": 120, "height": 120, "count": 3, "dtype": "float32"}
    with rasterio.open(path, "w", **profile, crs="EPSG:32614", transform=from_origin(500_000, 5_300_000, 5, 5)) as ds:
        ds.write(values)
    opts = SceneOptions(tile_px=60).check()
    head = header(str(path), "f", Reader(), opts)
    assert head["scene_reject"] is None and all(np.isfinite(head["lo"] + head["hi"]))
    got = [read_window_rgb(str(path), r, c, 60, head["lo"], head["hi"], Reader(), opts) for r in (0, 1) for c in (0, 1)]
    assert got[0] == (None, "nodata: 100% of the window")
    assert all(reason is None and rgb.std() > 10 for rgb, reason in got[1:])  # stretched, not black
    # Case 7: a window smaller than a pixel would make as many windows as pixels, each one blank.
    small = header(str(path), "f", Reader(), SceneOptions(tile_m=1.0).check())["scene_reject"]
    assert small == "tile_too_small: a 1 m window is less than one 5 m pixel"


def test_a_scene_swapped_for_a_fifo_is_a_reason_not_a_hang(tmp_path):
    """Case 11 for scenes: GDAL would block opening a FIFO; the header says why instead."""
    from jobs.scenes.windows import SceneOptions, header
    from jobs.storage import Reader

    os.mkfifo(tmp_path / "scene.tif")
    row = header(str(tmp_path / "scene.tif"), "s", Reader(), SceneOptions(tile_px=8).check())
    assert row["scene_reject"] == f"not_a_raster: not a regular file: {tmp_path / 'scene.tif'}"


def test_links_are_followed_inside_the_root_only_for_reads_and_writes(tmp_path):
    """Case 12: a tile linking outside its folder is a counted skip; a storage folder linking
    outside the root is refused before anything is written there."""
    from jobs.storage import StorageError

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(_png())
    tiles = tmp_path / "tiles"
    tiles.mkdir()
    (tiles / "a.png").write_bytes(_png())
    os.symlink(tiles / "a.png", tiles / "alias.png")  # inside: followed
    os.symlink(outside / "secret.png", tiles / "b.png")
    os.symlink(outside, tiles / "more")
    skipped: Counter[str] = Counter()
    assert sorted(LocalStorage(tiles).iter_files(skipped=skipped)) == ["a.png", "alias.png"]
    assert skipped == {"link_outside": 2}
    root = tmp_path / "store"
    root.mkdir()
    os.symlink(outside, root / "predictions")
    store = LocalStorage(root)
    with pytest.raises(StorageError, match="a link leads outside the storage root"):
        store.write_bytes(b"rows", "predictions", "m", "part.parquet")
    with pytest.raises(StorageError, match="a link leads outside the storage root"):
        store.uri("predictions", "m")  # what Spark would be handed to write to
    assert sorted(p.name for p in outside.iterdir()) == ["secret.png"]


def test_no_tiles_and_no_scenes_is_bad_input_not_the_demo_folder():
    from jobs import score

    with pytest.raises(config.ConfigError, match="nothing to score: give --tiles FOLDER or --scenes URI"):
        score.parse_args(["--output_model_name", "m"])


def test_a_map_without_a_crs_in_the_later_run_is_skipped_and_listed():
    from jobs.maps.change import compare

    a = {"s": _class_raster(500_000, [[0, 1]], ["Farmland", "Pond"])}
    b = a | {"nocrs": _class_raster(0, [[1, 1]], ["Farmland", "Pond"], crs=None)}
    result = compare(a, b)
    assert result["changed_ha"] == 0.0 and result["skipped"] == [
        {"scene": "nocrs", "reason": "no CRS: cannot be laid on the grid"}
    ]


@pytest.mark.parametrize("command", ["score", "train", "assess", "change", "label", "runs"])
def test_help_is_plain_text_with_an_aerial_example(command, capsys):
    import importlib

    with pytest.raises(SystemExit):
        importlib.import_module(f"jobs.{command}").main(["--help"])
    shown = capsys.readouterr().out
    assert "``" not in shown and ":mod:" not in shown and ":func:" not in shown
    if command == "score":
        assert "aid_demo" in shown and "mnist" not in shown.lower()


def test_classifier_flags_take_snake_case_and_pyspark_camel_case_alike(tmp_path):
    cfg = train.parse_args(
        ["--data", str(tmp_path), "--reg_param", "0.5", "--maxIter", "7", "--elastic_net_param", "0"]
    )
    assert cfg.classifier_params() == {"maxIter": 7, "regParam": 0.5, "elasticNetParam": 0.0}
    assert config.resolved(cfg)["logisticregression.regParam"]["from"] == "flag"


def test_a_switch_is_spelt_no_key_as_every_flag_is_snake_case_and_no_dash_key_still_works(tmp_path, capsys):
    """``--no_use_gpu`` / ``--no_finetune`` (the one spelling ``--help`` shows); argparse's ``--no-d4``
    is kept as an alias, so scripts written before still run."""
    from jobs import finetune

    for spelling in ("--no_finetune", "--no-finetune"):
        cfg = train.parse_args(["--data", str(tmp_path), spelling])
        assert cfg.finetune is False and config.resolved(cfg)["finetune"]["from"] == "flag"
    assert train.parse_args(["--data", str(tmp_path)]).finetune is True  # the recipe's, not a flag's
    with pytest.raises(SystemExit):
        finetune.parse_args(["--help"])
    shown = capsys.readouterr().out
    assert "--use_gpu, --no_use_gpu" in shown and "--no-use_gpu" not in shown
    assert finetune.parse_args(["--data", str(tmp_path), "--no_use_gpu"]).use_gpu is False
    assert finetune.parse_args(["--data", str(tmp_path), "--no-use_gpu"]).use_gpu is False


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("frozen-d4", {"pretrained_model_type": "efficientnet_lite0+mobilenet_v2", "d4": True, "image_size": 256}),
        ("frozen", {"pretrained_model_type": "efficientnet_lite0+mobilenet_v2", "d4": False, "image_size": 256}),
        (
            "one-pass",
            {"pretrained_model_type": "efficientnet_lite0", "d4": False, "image_size": 192, "finetune": True}
            | {"precision": "auto"},
        ),
        ("mnist", {"pretrained_model_type": "efficientnet_lite0", "pool_grid": 2, "d4": False, "tune": False}),
    ],
)
def test_each_recipe_is_one_name_whose_settings_fill_what_no_flag_gives(tmp_path, name, expected):
    cfg = train.parse_args(["--data", str(tmp_path), "--dataset", "aerial", "--recipe", name])
    resolved = config.resolved(cfg)
    assert {k: resolved[k]["value"] for k in expected} == expected
    assert {resolved[k]["from"] for k in expected} == {"recipe"} and resolved["recipe"]["from"] == "flag"
    flagged = train.parse_args(["--data", str(tmp_path), "--recipe", name, "--no_d4", "--image_size", "128"])
    assert (flagged.d4, flagged.image_size) == (False, 128)  # a flag wins over the recipe


def test_an_unknown_recipe_is_one_line_listing_the_names(tmp_path, capsys):
    assert train.parse_args(["--data", str(tmp_path)]).finetune is True  # no --recipe: the data set's (one-pass)
    assert train.main(["--data", str(tmp_path), "--storage", str(tmp_path / "s"), "--recipe", "frozen_d4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith(
        "recipe 'frozen_d4': choose one of frozen-d4, frozen, one-pass, mnist (did you mean frozen-d4?)"
    )
    assert not any("Traceback" in line for line in err)
