"""Scenes in, maps out: windows, CRS and geotransforms carried through, nodata counted, change."""

from __future__ import annotations

import json
import shutil

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from conftest import pixel_model, run_notebook
from make_fixtures import SCENES, write_sparse_scene
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from jobs import change, score, train
from jobs.datasets import DatasetError
from jobs.maps import change as change_maps
from jobs.records import history as run_history
from jobs.scenes.windows import scene_id
from jobs.storage import MAPS, LocalStorage

MODEL = "scene_px"


@pytest.fixture(scope="module")
def root(tmp_path_factory, spark, fixtures):
    """A storage root with a small raw-pixel model (the scoring path is what these tests check)."""
    store = LocalStorage(tmp_path_factory.mktemp("scene_storage"))
    train.train(spark, pixel_model(MODEL, fixtures / "classes", store.root), store)
    return store


def run_score(spark, store, scenes, *flags):
    cfg = score.parse_args(
        ["--output_model_name", MODEL, "--storage", str(store.root), "--scenes", str(scenes), *flags]
    )
    return score.score(spark, cfg, store)


@pytest.fixture(scope="module")
def scored(spark, root, fixtures):
    return run_score(spark, root, fixtures / "scenes", "--tile_px", "64", "--top_k", "2")


def expected_grid(name: str, tile: int = 64) -> tuple[int, int, int]:
    """(rows, cols, nodata windows) of a fixture scene: a window is nodata when over half of it is."""
    width, height, _, _, _, _, nodata_cols = SCENES[name]
    rows, cols = -(-height // tile), -(-width // tile)
    nodata = 0
    for r in range(rows):
        for c in range(cols):
            x0, y0 = c * tile, r * tile
            inside_w = max(0, min(width, x0 + tile) - max(x0, nodata_cols))
            inside_h = max(0, min(height, y0 + tile) - y0)
            nodata += (inside_w * inside_h) / (tile * tile) < 0.5
    return rows, cols, nodata


def test_every_window_is_scored_or_counted_and_bad_scenes_have_reasons(scored):
    grids = {n: expected_grid(n) for n in SCENES}
    assert scored["n_scenes"] == len(SCENES) + 1
    assert scored["scenes_rejected_by_reason"] == {"not_a_raster": 1}
    assert scored["scenes_without_crs"] == 1 and any("no CRS" in w for w in scored["warnings"])
    assert scored["n_tiles"] == sum(r * c for r, c, _ in grids.values())
    assert scored["n_nodata"] == sum(n for _, _, n in grids.values()) > 0
    assert scored["n_scored"] == scored["n_tiles"] - scored["n_nodata"]
    assert scored["confidence"]["n"] == scored["n_scored"] and 0 < scored["confidence"]["p10"] <= 1
    baseline, sure = scored["model_test_confidence"], scored["confidence"]
    drifted = any("half the windows are less sure" in w for w in scored["warnings"])
    assert baseline["n"] > 0 and drifted == (sure["median"] < baseline["p10"])  # the scene path warns too


def test_class_raster_and_footprints_sit_exactly_on_the_windows(scored, fixtures):
    maps_dir = scored["maps_uri"]
    for name, (_, _, _, _, crs, _, _) in SCENES.items():
        sid = scene_id(name)
        with rasterio.open(fixtures / "scenes" / name) as src, rasterio.open(f"{maps_dir}/{sid}.tif") as out:
            rows, cols, _ = expected_grid(name)
            assert (out.height, out.width) == (rows, cols)
            assert out.crs == src.crs and (crs is None) == (out.crs is None)
            tags = out.tags()
            assert json.loads(tags["CLASS_NAMES"]) == ["Barren", "Developed", "Forest"]
            assert out.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"  # cloud-optimized, read by ranges
            assert out.colormap(1)[0][:3] != (0, 0, 0)
            classes = out.read(1)
            frame = gpd.read_parquet(f"{maps_dir}/{sid}.parquet")
            assert (frame.crs is None) == (crs is None) and (crs is None or frame.crs.equals(src.crs))
            assert len(frame) == rows * cols
            for r, c in [(0, 0), (rows - 1, cols - 1), (rows // 2, cols // 2)]:
                wt = window_transform(Window(c * 64, r * 64, 64, 64), src.transform)
                corners = [wt @ (0, 0), wt @ (64, 64)]
                # The class raster's pixel (r, c) spans the window (r, c) exactly …
                assert np.allclose([out.transform @ (c, r), out.transform @ (c + 1, r + 1)], corners)
                # … and so does the window's footprint polygon.
                poly = frame[(frame["row"] == r) & (frame["col"] == c)].geometry.iloc[0]
                xs, ys = zip(*corners, strict=True)
                assert np.allclose(poly.bounds, (min(xs), min(ys), max(xs), max(ys)))
                label = frame[(frame["row"] == r) & (frame["col"] == c)]["predicted_label"].iloc[0]
                assert (classes[r, c] == 255) == (label is None)
            # How sure: each window's probability on the same grid, NaN where nothing was scored.
            with rasterio.open(f"{maps_dir}/confidence/{sid}.tif") as conf:
                assert (conf.height, conf.width, conf.crs, conf.transform) == (rows, cols, out.crs, out.transform)
                sure = conf.read(1)
            by_cell = {(r, c): p for r, c, p in zip(frame["row"], frame["col"], frame["probability"], strict=True)}
            for (r, c), prob in by_cell.items():
                if prob is None or np.isnan(prob):
                    assert np.isnan(sure[r, c])
                else:
                    assert sure[r, c] == pytest.approx(prob, abs=1e-6) and 0 < sure[r, c] <= 1
            assert np.isnan(sure[classes == 255]).all() and np.isfinite(sure[classes != 255]).all()
            top_k = json.loads(frame["top_k"].dropna().iloc[0])
            assert len(top_k) == 2 and top_k[0]["probability"] >= top_k[1]["probability"]
        assert (fixtures / "scenes").exists()
        with open(f"{maps_dir}/{sid}.png", "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        assert "paletteEntry" in open(f"{maps_dir}/{sid}.qml").read()


def test_a_county_sized_class_raster_is_a_tiled_cog_with_overviews():
    from rasterio.io import MemoryFile

    from jobs.maps.writer import class_raster

    grid = np.random.default_rng(0).integers(0, 3, (600, 700)).astype(np.uint8)
    scene = pd.Series({"transform": [500_000.0, 5.0, 0.0, 5_300_000.0, 0.0, -5.0], "tile_px": 60, "crs": "EPSG:32614"})
    colours = {"a": (1, 2, 3), "b": (4, 5, 6), "c": (7, 8, 9)}
    with MemoryFile(class_raster(grid, scene, ["a", "b", "c"], colours)) as mem, mem.open() as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG" and ds.block_shapes == [(256, 256)]
        assert ds.overviews(1) == [2, 4] and ds.colormap(1)[1][:3] == (4, 5, 6)
        assert (ds.read(1) == grid).all() and ds.transform.a == 300.0


def test_duckdb_spatial_opens_the_footprints_unchanged(scored):
    """DuckDB's spatial extension (loaded from its PyPI wheel: no download at test time) reads the
    GeoParquet's geometry as GEOMETRY in the scene's CRS, with the footprints geopandas reads."""
    import glob
    import os

    import duckdb
    import duckdb_extension_spatial

    home = os.path.dirname(duckdb_extension_spatial.__file__)
    con = duckdb.connect()
    con.execute(f"LOAD '{glob.glob(f'{home}/extensions/*/spatial.duckdb_extension')[0]}'")
    for name, (_, _, _, _, crs, _, _) in SCENES.items():
        path = f"{scored['maps_uri']}/{scene_id(name)}.parquet"
        kind = con.execute(f"DESCRIBE SELECT geometry FROM read_parquet('{path}')").fetchone()[1]
        assert kind.startswith("GEOMETRY") and (crs is None) == (kind == "GEOMETRY"), (name, kind)
        query = "SELECT row, col, ST_XMin(geometry), ST_YMin(geometry), ST_XMax(geometry), ST_YMax(geometry) "
        got = con.execute(query + f"FROM read_parquet('{path}') ORDER BY row, col").fetchall()
        frame = gpd.read_parquet(path).sort_values(["row", "col"])
        assert np.allclose([g[2:] for g in got], frame.geometry.bounds.to_numpy())


def test_the_16_bit_four_band_scene_is_stretched_and_scored(scored, spark):
    rows = spark.read.parquet(scored["predictions_uri"]).where("scene_id = 'nir16_wgs84'")
    assert rows.where("reject_reason is null").count() == rows.count() == 4 * 3


def test_bands_that_do_not_exist_are_a_reason_not_a_crash(spark, root, fixtures):
    """The scene gets the reason; with no other scene to score, the run is bad input (exit 2)."""
    with pytest.raises(DatasetError, match=r"1 rejected, by reason \{'no_such_band': 1\}.*band 5 asked for"):
        run_score(spark, root, fixtures / "scenes" / "nir16_wgs84.tif", "--tile_px", "64", "--bands", "1,2,5")


def test_tile_size_in_metres_needs_a_model_that_records_it(spark, root, fixtures):
    with pytest.raises(DatasetError, match="give --tile_m or --tile_px"):
        run_score(spark, root, fixtures / "scenes" / "rgb8_utm.tif")
    out = run_score(spark, root, fixtures / "scenes" / "rgb8_utm.tif", "--tile_m", "128")  # 2 m pixels
    assert out["tile_px"] == [64] and out["n_tiles"] == 4 * 5


def test_incremental_scene_runs_score_only_new_scenes(spark, fixtures, tmp_path, root):
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    shutil.copy(fixtures / "scenes" / "rgb8_utm.tif", scenes)
    first = run_score(spark, root, scenes, "--tile_px", "64", "--incremental")
    assert first["n_scenes"] == 1
    shutil.copy(fixtures / "scenes" / "rgb8_nocrs.tif", scenes)
    second = run_score(spark, root, scenes, "--tile_px", "64", "--incremental")
    assert second["n_scenes"] == 1 and second["n_tiles"] == 4
    third = run_score(spark, root, scenes, "--tile_px", "64", "--incremental")
    assert third["n_scenes"] == 0 and third["predictions_uri"] is None


def test_change_between_two_runs_sums_to_the_compared_area(spark, root, fixtures, scored, tmp_path):
    other = run_score(spark, root, fixtures / "scenes" / "rgb8_utm.tif", "--tile_px", "64", "--smooth", "3x3")
    a = change_maps.class_rasters(root, MODEL, scored["run_id"])
    b = change_maps.class_rasters(root, MODEL, other["run_id"])
    result = change_maps.compare({"rgb8_utm": a["rgb8_utm"]}, b)
    cell_ha = (64 * 2.0) ** 2 / 10_000
    rows, cols, nodata = expected_grid("rgb8_utm.tif")
    assert result["compared_ha"] == pytest.approx((rows * cols - nodata) * cell_ha)
    assert sum(map(sum, result["transitions_ha"])) == pytest.approx(result["compared_ha"])
    assert sum(result["area_ha"]["b"].values()) == pytest.approx(result["compared_ha"])
    assert change_maps.picture(result, "a", "b")[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(DatasetError, match="projected CRS"):
        change_maps.compare({"x": a["nir16_wgs84"]}, b)
    assert change.main([scored["run_id"], other["run_id"], "--model", MODEL, "--storage", str(root.root)]) == 0
    # One history: the scoring runs and the change are in it, and --from/--to find runs there.
    by_kind = {(r.get("kind"), r["run_id"]) for r in run_history.load(root)}
    assert {("score", scored["run_id"]), ("score", other["run_id"])} <= by_kind
    assert change.main(["--from", scored["run_id"][:22], "--to", other["run_id"], "--model", MODEL,
                        "--storage", str(root.root)]) == 0  # fmt: skip
    assert sum(k == "change" for k, _ in {(r.get("kind"), r["run_id"]) for r in run_history.load(root)}) == 2
    assert root.exists("changes", MODEL, f"{scored['run_id']}__{other['run_id']}", "change.png")
    # The notebook draws the run's maps and the change between the two runs.
    params = {"storage": str(root.root), "model": MODEL, "run_a": scored["run_id"], "run_b": other["run_id"]}
    nb = run_notebook("scene_maps.ipynb", params, tmp_path / "out.ipynb")
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2
    assert f"changed {result['changed_ha']:.1f} of {result['compared_ha']:.1f} ha" in "".join(
        o.get("text", "") for o in outputs
    )
    # With a single scene run the notebook still draws it, compared with itself: no change.
    alone = tmp_path / "alone"
    shutil.copytree(root.root / MAPS / MODEL / scored["run_id"], alone / MAPS / MODEL / scored["run_id"])
    nb = run_notebook("scene_maps.ipynb", {"storage": str(alone), "model": MODEL}, tmp_path / "alone.ipynb")
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "1 complete scene runs" in text and "changed 0.0 of" in text


def test_scenes_from_stac_items_carry_their_dates_into_maps_and_history(spark, root, fixtures, tmp_path):
    """An ItemCollection made with pystac over a fixture scene: the asset's href (relative to the
    file), the item's datetime as the scene's date; an item without the asset is a counted skip."""
    import datetime

    import pystac
    import rasterio
    from rasterio.warp import transform_bounds

    shutil.copy(fixtures / "scenes" / "rgb8_utm.tif", tmp_path / "scene.tif")
    with rasterio.open(tmp_path / "scene.tif") as ds:
        bbox = list(transform_bounds(ds.crs, "EPSG:4326", *ds.bounds))
    geometry = {"type": "Polygon", "coordinates": [[[bbox[0], bbox[1]], [bbox[2], bbox[1]], [bbox[2], bbox[3]],
                                                    [bbox[0], bbox[3]], [bbox[0], bbox[1]]]]}  # fmt: skip
    made = []
    for item_id, asset in (("ia_m_4109163_se_15_060_20190701", "image"), ("preview_only", "rendered_preview")):
        item = pystac.Item(item_id, geometry, bbox, datetime.datetime(2019, 7, 1, 16, 30), {})
        item.add_asset(asset, pystac.Asset("scene.tif", media_type=pystac.MediaType.COG))
        made.append(item)
    (tmp_path / "search.json").write_text(json.dumps(pystac.ItemCollection(made).to_dict(transform_hrefs=False)))
    out = run_score(spark, root, tmp_path / "search.json", "--tile_px", "64")
    rows, cols, _ = expected_grid("rgb8_utm.tif")
    assert out["n_scenes"] == 1 and out["n_tiles"] == rows * cols
    assert out["dates"] == ["2019-07-01"] and out["skipped_by_reason"] == {"no_asset": 1}
    assert root.exists(MAPS, MODEL, out["run_id"], "ia_m_4109163_se_15_060_20190701.tif")
    assert run_history.by_date(run_history.load(root), MODEL, "2019-07")["run_id"] == out["run_id"]
    with pytest.raises(DatasetError, match=r"no item has an asset 'visual' \(their assets: image, rendered_preview\)"):
        run_score(spark, root, tmp_path / "search.json", "--tile_px", "64", "--asset", "visual")


def test_scenes_from_a_stac_api_search_follow_its_pages_and_carry_dates(spark, root, fixtures, tmp_path):
    """``--scenes https://…/search?collections=…&bbox=…&datetime=…``: pystac-client runs the search
    against a STAC API on 127.0.0.1 (three pages), each item's asset is a scene with the item's
    date, an item without the asset is a counted skip; bad searches are one-line errors."""
    import datetime

    import pystac
    from stac_api import serving

    from jobs.scenes import stac

    made = []
    for n, (name, day) in enumerate((("rgb8_utm.tif", 3), ("rgb16_nodata.tif", 9), ("rgb8_utm.tif", 12))):
        item = pystac.Item(f"naip_{n}", None, None, datetime.datetime(2021, 8, day, 17, 0), {})
        key = "image" if n != 2 else "rendered_preview"
        item.add_asset(key, pystac.Asset(str(fixtures / "scenes" / name), media_type=pystac.MediaType.COG))
        made.append(item.to_dict(transform_hrefs=False))
    made.append(made[0])  # the API returns an item twice (pages shifted under it): scored once
    with serving(made) as (api, queries):
        search = f"{api}/search?collections=naip&bbox=-99.1,46.9,-98.9,47.1&datetime=2021-01-01/2021-12-31&limit=2"
        out = run_score(spark, root, search, "--tile_px", "64")
        assert out["n_scenes"] == 2 and out["dates"] == ["2021-08-03", "2021-08-09"]
        assert out["skipped_by_reason"] == {"duplicate": 1, "no_asset": 1}
        assert len(queries) == 2  # two pages of two items
        assert queries[0]["collections"] == ["naip"]
        assert queries[0]["datetime"] == ["2021-01-01T00:00:00Z/2021-12-31T23:59:59Z"]
        assert [float(v) for v in queries[0]["bbox"][0].split(",")] == [-99.1, 46.9, -98.9, 47.1]
        assert root.exists(MAPS, MODEL, out["run_id"], "naip_0.tif")
        assert run_history.by_date(run_history.load(root), MODEL, "2021-08-09")["run_id"] == out["run_id"]
        with pytest.raises(DatasetError, match=r"unknown parameter 'colections' \(known: collections"):
            run_score(spark, root, f"{api}/search?colections=naip", "--tile_px", "64")
        with pytest.raises(DatasetError, match=r"bbox needs four numbers"):
            stac.items(f"{api}/search?bbox=a,b,c,d", "image")
    with pytest.raises(DatasetError, match=r"^STAC search http://127\.0\.0\.1:\d+/search\?collections=naip: "):
        stac.items(f"{api}/search?collections=naip", "image")  # the API is gone: one line, no hang
    planetary = "https://planetarycomputer.microsoft.com/api/stac/v1/search?collections=naip"
    try:
        import planetary_computer  # the planetary-computer extra

        assert stac._signer(planetary) is planetary_computer.sign_inplace
    except ImportError:
        with pytest.raises(DatasetError, match=r"need signing: pip install '\.\[planetary-computer\]'$"):
            stac._signer(planetary)


def test_a_scene_declared_100000_pixels_square_streams(spark, root, tmp_path):
    write_sparse_scene(tmp_path / "huge.tif")  # a 300 KB file: no tile is stored
    out = run_score(spark, root, tmp_path / "huge.tif", "--tile_px", "10000")
    assert out["n_tiles"] == 100 and out["n_nodata"] == 100 and out["n_scored"] == 0
    assert root.exists(MAPS, MODEL, out["run_id"], "huge.tif")


@pytest.fixture
def entra_id_azurite(spark, tmp_path_factory):
    """Azurite over HTTPS taking only Entra ID tokens, an identity endpoint issuing them, and the
    environment that points the driver and the executors (as their own nodes' identity) at both."""
    from azurite import ACCOUNT, identity_endpoint, running

    from jobs.storage import blob

    with running(tmp_path_factory.mktemp("azurite_oauth"), oauth=True) as server, identity_endpoint() as (ids, issued):
        node_env = ids | {"REQUESTS_CA_BUNDLE": str(server.cert)}
        executors = spark.sparkContext.environment  # sent with every Python task: a fresh worker gets it
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(blob, "_TOKEN_CREDENTIAL", {})  # this process's credential reads the new environment
            for name in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN"):
                mp.delenv(name, raising=False)
            mp.delenv("AZURE_STORAGE_SECRETS", raising=False)
            for name, value in node_env.items():
                mp.setenv(name, value)
                mp.setitem(executors, name, value)
            mp.setenv("AZURE_STORAGE_ACCOUNT", ACCOUNT)  # the emulator's endpoint for that account, no key
            mp.setenv("AZURE_STORAGE_BLOB_ENDPOINT", server.endpoint)
            yield server, issued


def test_a_scene_in_adls_with_an_entra_id_token_scores_as_the_same_scene_on_disk(
    spark, root, fixtures, scored, entra_id_azurite
):
    from azure.core.exceptions import HttpResponseError
    from azure.storage.blob import BlobServiceClient

    from jobs.storage import blob, open_storage

    server, issued = entra_id_azurite
    creds = blob.credentials(None)
    assert creds.kind == blob.ENTRA_ID and creds.key is None
    lake = creds.service().create_container("lake")
    with pytest.raises(HttpResponseError):  # the server takes no anonymous request: tokens are checked
        next(iter(BlobServiceClient(server.endpoint).get_container_client("lake").list_blobs()))
    lake.upload_blob("naip/2026/rgb8_utm.tif", (fixtures / "scenes" / "rgb8_utm.tif").read_bytes())
    lake.upload_blob("naip/2026", b"", metadata={"hdi_isfolder": "true"})  # a hierarchical namespace's folder

    # An ADLS Gen2 root from plain Python (notebooks, the run index): same writes and listing as Blob.
    store = open_storage(f"abfss://lake@{server.endpoint.rsplit('/', 1)[1]}.dfs.core.windows.net/root")
    store.write_json({"a": 1}, "x", "card.json")
    store.append_line("one", "runs", "index.jsonl")
    store.append_line("two", "runs", "index.jsonl")
    assert store.read_json("x", "card.json") == {"a": 1} and store.read_bytes("runs", "index.jsonl") == b"one\ntwo\n"
    assert sorted(store.iter_files()) == ["runs/index.jsonl", "x/card.json"]
    assert store.uri("x").startswith("abfss://lake@") and store.credential().endswith("ManagedIdentityCredential")

    before = len(issued)
    remote = run_score(spark, root, "abfss://lake@devstoreaccount1.dfs.core.windows.net/naip", "--tile_px", "64")
    assert len(issued) > before  # the executors' Python workers asked for their own tokens
    local = spark.read.parquet(scored["predictions_uri"]).where("scene_id = 'rgb8_utm'")
    got = spark.read.parquet(remote["predictions_uri"])
    key = ["row", "col", "predicted_label", "reject_reason"]
    assert remote["n_scenes"] == 1
    assert sorted(map(tuple, got.select(*key).collect())) == sorted(map(tuple, local.select(*key).collect()))
    assert got.first()["path"] == "abfss://lake@devstoreaccount1.dfs.core.windows.net/naip/2026/rgb8_utm.tif"


def test_scenes_under_other_hadoop_uris_are_read_through_fsspec(fixtures):
    """hdfs://, s3a://, gs://…: windows read by fsspec's implementation of the scheme, here its
    in-memory one (a real HDFS needs libhdfs on the nodes; see the README)."""
    import fsspec

    from jobs.scenes import windows as scenes
    from jobs.scenes.windows import SceneOptions, header, read_window
    from jobs.storage import Reader, StorageError
    from jobs.storage.fsspec_files import FsspecReader

    mem = fsspec.filesystem("memory")
    mem.pipe("/naip/rgb8_utm.tif", (fixtures / "scenes" / "rgb8_utm.tif").read_bytes())
    reader, opts = FsspecReader.for_uri("memory://naip"), SceneOptions(tile_px=64).check()
    remote = header("memory://naip/rgb8_utm.tif", "a", reader, opts)
    local = header(str(fixtures / "scenes" / "rgb8_utm.tif"), "a", Reader(), opts)
    same = ("width", "height", "crs", "transform", "n_rows", "n_cols", "tile_px", "scene_reject")
    assert {k: remote[k] for k in same} == {k: local[k] for k in same} and remote["scene_reject"] is None
    window = (1, 2, 64, remote["lo"], remote["hi"])
    assert read_window("memory://naip/rgb8_utm.tif", *window, reader, opts) == read_window(
        str(fixtures / "scenes" / "rgb8_utm.tif"), *window, Reader(), opts
    )
    assert header("memory://naip/gone.tif", "b", reader, opts)["scene_reject"].startswith("not_a_raster")
    scenes._forget("memory://naip/rgb8_utm.tif")  # closed now, not by GDAL at exit after fsspec's file
    with pytest.raises(StorageError, match="s3a:// files are read from Python through fsspec"):
        FsspecReader.for_uri("s3a://bucket/scenes")


def test_windows_that_cannot_be_read_are_retried_then_rejected_with_a_reason(spark, root, fixtures, tmp_path):
    data = (fixtures / "scenes" / "rgb8_utm.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) // 2])  # the header survives, later tiles do not
    out = run_score(spark, root, tmp_path / "cut.tif", "--tile_px", "64")
    rows = spark.read.parquet(out["predictions_uri"])
    failed = rows.where("reject_reason like 'read_error:%'").count()
    assert failed > 0 and out["n_tiles"] == 20
    assert out["n_scored"] + out["n_rejected"] + out["n_nodata"] == out["n_tiles"]  # every window has a result
    assert rows.where("reject_reason is null and predicted_label is null").count() == 0
