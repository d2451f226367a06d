"""Maps you can trust: labels from a land-cover raster, every map assessed, water checked by NDWI.

The label tests run on scenes built in UTM 14N over the real CDL clip (tests/make_fixtures.py);
the estimators are checked against numbers worked out by hand and against Olofsson et al.
(2014)'s published example.
"""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from conftest import pixel_model, submit
from make_fixtures import CDL
from rasterio.warp import Resampling, reproject

from jobs import score, train
from jobs.datasets import landcover
from jobs.datasets.landcover import CrosswalkError
from jobs.maps import assessment, reference
from jobs.maps.change import GAIN, LOSS, STRATA, water_check
from jobs.maps.palette import is_water, palette
from jobs.scenes import grids, labels
from jobs.storage import LocalStorage

MODEL = "cdl_px"


# ------------------------------------------------------------------------------ estimators


def test_estimates_match_a_small_case_worked_by_hand():
    """Map A 60 ha, B 40 ha; 10 reference units in each stratum: A → 8 A, 2 B; B → 1 A, 9 B.
    W = (0.6, 0.4); p_AA = 0.48, p_AB = 0.12, p_BA = 0.04, p_BB = 0.36.
    Overall accuracy 0.84, V = 0.6²·0.8·0.2/9 + 0.4²·0.9·0.1/9 = 0.008 → ± 1.96·√0.008 = 0.1753.
    Area of A: 100·(0.48 + 0.04) = 52 ha; V(p_.A) = 0.36·0.16/9 + 0.16·0.09/9 = 0.008 → ± 17.53 ha.
    User's A 0.8, B 0.9; producer's A 0.48/0.52 = 0.9231, B 0.36/0.48 = 0.75."""
    r = assessment.estimate(["A", "B"], np.array([[8, 2], [1, 9]]), [60.0, 40.0])
    assert r["overall_accuracy"]["value"] == pytest.approx(0.84)
    assert r["overall_accuracy"]["ci95"] == pytest.approx(1.959964 * 0.008**0.5, abs=1e-5)
    a, b = r["per_class"]["A"], r["per_class"]["B"]
    assert a["estimated_area_ha"]["value"] == pytest.approx(52.0)
    assert b["estimated_area_ha"]["value"] == pytest.approx(48.0)
    assert a["estimated_area_ha"]["ci95"] == pytest.approx(1.959964 * 0.008**0.5 * 100, abs=1e-3)
    assert a["mapped_area_ha"] == 60.0
    assert (a["users_accuracy"]["value"], b["users_accuracy"]["value"]) == (0.8, 0.9)
    assert a["producers_accuracy"]["value"] == pytest.approx(0.48 / 0.52, abs=1e-6)
    assert b["producers_accuracy"]["value"] == pytest.approx(0.75)
    assert r["confusion"]["counts"] == [[8, 2], [1, 9]]
    # Net area of B minus A, from each stratum's mean and variance: 48 - 52 = -4 ha.
    assert assessment.contrast(["A", "B"], np.array([[8, 2], [1, 9]]), [60.0, 40.0], {"B": 1, "A": -1})[
        "value"
    ] == pytest.approx(-4.0)


def test_estimates_reproduce_olofsson_2014s_worked_example():
    """Olofsson et al. 2014, section 5: four strata (deforestation, forest gain, stable forest,
    stable non-forest) of 200,000 / 150,000 / 3,200,000 / 6,450,000 pixels of 0.09 ha; the paper
    gives deforestation 21,158 ± 6,158 ha, gain 11,686 ± 3,756, stable forest 285,770 ± 15,510,
    stable non-forest 581,386 ± 16,282; overall accuracy 0.95 ± 0.02; deforestation's user's
    accuracy 0.88 ± 0.07 and producer's 0.75 ± 0.21."""
    counts = np.array([[66, 0, 5, 4], [0, 55, 8, 12], [1, 0, 153, 11], [2, 1, 9, 313]])
    area = np.array([200_000, 150_000, 3_200_000, 6_450_000]) * 0.09
    r = assessment.estimate(["defor", "gain", "forest", "nonforest"], counts, area)
    published = {"defor": (21_158, 6_158), "gain": (11_686, 3_756), "forest": (285_770, 15_510)}
    published["nonforest"] = (581_386, 16_282)
    for cls, (value, ci) in published.items():
        est = r["per_class"][cls]["estimated_area_ha"]
        assert est["value"] == pytest.approx(value, abs=1) and est["ci95"] == pytest.approx(ci, abs=1)
    assert r["overall_accuracy"]["value"] == pytest.approx(0.95, abs=0.005)
    assert r["overall_accuracy"]["ci95"] == pytest.approx(0.02, abs=0.002)
    defor = r["per_class"]["defor"]
    assert defor["users_accuracy"]["value"] == pytest.approx(0.88)
    assert defor["users_accuracy"]["ci95"] == pytest.approx(0.07, abs=0.005)
    assert defor["producers_accuracy"]["value"] == pytest.approx(0.75, abs=0.005)
    assert defor["producers_accuracy"]["ci95"] == pytest.approx(0.21, abs=0.005)


def test_the_change_water_check_counts_strata_by_hand():
    """Six cells of 1 ha: the map says water at B on cells 0-2 (gain on 1 and 2), NDWI agrees on
    0 and 1; cell 3 NDWI sees a gain the map missed. Mapped net +2 ha, NDWI-measured net from the
    shares: (0.9+0.8+0.1+0.7) - (0.9+0.1+0.1+0.1) = +1.3 ha."""
    water_a = np.array([1, 0, 0, 0, 0, 0], bool)
    water_b = np.array([1, 1, 1, 0, 0, 0], bool)
    share_a = np.array([0.9, 0.1, 0.1, 0.1, 0.0, 0.0])
    share_b = np.array([0.9, 0.8, 0.1, 0.7, 0.0, 0.0])
    check = water_check([(water_a, water_b, share_a, share_b, np.ones(6))])
    counts = np.asarray(check["confusion"]["counts"])
    land, gain, water = STRATA.index("land → land"), STRATA.index(GAIN), STRATA.index("water → water")
    assert counts[water, water] == 1 and counts[gain, gain] == 1 and counts[gain, land] == 1
    assert counts[land, gain] == 1 and counts[land, land] == 2 and counts.sum() == 6
    net = check["net_water_change_ha"]
    assert net["mapped"] == 2.0 and net["ndwi_measured"] == pytest.approx(1.3)
    # Estimated net: stratum gain (2 ha) has mean (1 + 0)/2 of gain; land (3 ha) 1/3; no loss.
    assert net["estimated"]["value"] == pytest.approx(2 * 0.5 + 3 * (1 / 3))
    assert check["per_stratum"][LOSS]["estimated_area_ha"]["value"] == 0.0


# ------------------------------------------------------------------------ crosswalks & colours


def test_shipped_crosswalks_load_and_cover_the_original_classes():
    six = landcover.load("nlcd6")
    assert six.names == ["Barren", "Cultivated", "Developed", "Forest", "Herbaceous", "Shrub", "Water"]
    assert six.classes[11] == "Water" and six.classes[23] == "Developed" and six.classes[82] == "Cultivated"
    assert 90 not in six.classes  # wetlands: unmapped, as in the original
    cdl = landcover.load("cdl6")
    assert cdl.classes[5] == "Cultivated" and cdl.classes[111] == "Water" and cdl.classes[176] == "Herbaceous"
    nlcd = landcover.load("nlcd")
    assert nlcd.classes[52] == "Shrub/Scrub" and nlcd.classes[141] == "Deciduous Forest" and 0 in nlcd.nodata
    table = cdl.lookup()
    assert table[0] == -2 and table[190] == -1 and cdl.names[table[121]] == "Developed"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[classes]\n"1-" = "A"\n', "not a code"),
        ('[classes]\n"5" = "A"\n"3-7" = "B"\n', "both 'A' and 'B'"),
        ('nodata = [5]\n[classes]\n"5" = "A"\n', "both nodata and a class"),
        ('title = "x"\n', r"no \[classes\] table"),
        ('[classes]\n"9-2" = "A"\n', "low to high"),
    ],
)
def test_a_bad_crosswalk_says_why(tmp_path, text, message):
    path = tmp_path / "x.toml"
    path.write_text(text)
    with pytest.raises(CrosswalkError, match=message):
        landcover.load(str(path))
    with pytest.raises(CrosswalkError, match="shipped legend"):
        landcover.load(str(tmp_path / "missing.toml"))


def test_colours_mean_something():
    colours = palette(["BareLand", "Farmland", "Forest", "Meadow", "Pond", "River", "Rice", "Odd"])
    r, g, b = colours["Pond"]
    assert b > r and b > g  # water is blue
    r, g, b = colours["Forest"]
    assert g > r and g > b  # forest is green
    r, g, b = colours["Farmland"]
    assert r > b and g > b  # farmland is yellow
    assert colours["Pond"] != colours["River"]  # two waters, two shades
    assert not is_water("Rice") and colours["Rice"][2] < 200  # "ice" is not inside "Rice"
    assert is_water("Open Water") and is_water("Pond") and not is_water("Woody Wetlands")


# ------------------------------------------------------------------------------- window verdicts


def test_window_verdicts_follow_their_documented_order():
    cw = landcover.load("cdl6")
    grid = np.full((10, 10), 5)  # soybeans: Cultivated
    assert labels.decide(grid, cw, None, 0.75, 0.05).label == "Cultivated"
    mixed = grid.copy()
    mixed[:, :4] = 176  # 60 % Cultivated, 40 % Herbaceous
    verdict = labels.decide(mixed, cw, None, 0.75, 0.05)
    assert (verdict.reason, verdict.purity) == ("impure", 0.6)
    assert labels.decide(mixed, cw, None, 0.6, 0.05).label == "Cultivated"
    wet = grid.copy()
    wet[:, :6] = 190  # mostly woody wetland: unmapped in cdl6
    verdict = labels.decide(wet, cw, None, 0.5, 0.05)
    assert (verdict.reason, verdict.detail) == ("unmapped", "190")
    empty = grid.copy()
    empty[:5] = 0  # CDL's background
    assert labels.decide(empty, cw, None, 0.5, 0.05).reason == "nodata"
    edge = grid.copy()
    edge[0, 0] = labels.OUTSIDE
    assert labels.decide(edge, cw, None, 0.5, 0.05).reason == "outside"
    assert labels.folder_name("Shrub/Scrub") == "Shrub_Scrub"


# ------------------------------------------------------------------------------- the label job


def _independent_majorities(scene: str, tile: int) -> dict[tuple[int, int], tuple[str | None, float]]:
    """Per window, the cdl6 majority and its share, from one GDAL warp of the whole label raster
    onto the scene's grid (not the job's per-window reads)."""
    cw = landcover.load("cdl6")
    with rasterio.open(scene) as sc, rasterio.open(CDL) as src:
        codes = np.zeros((sc.height, sc.width), dtype=np.int32)
        reproject(rasterio.band(src, 1), codes, dst_transform=sc.transform, dst_crs=sc.crs,
                  resampling=Resampling.nearest)  # fmt: skip
    out = {}
    for r in range(codes.shape[0] // tile):
        for c in range(codes.shape[1] // tile):
            window = codes[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile]
            names = [cw.classes.get(int(v), f"?{v}") for v in window.ravel()]
            values, counts = np.unique(names, return_counts=True)
            best = int(np.argmax(counts))
            out[(r, c)] = (str(values[best]), counts[best] / window.size)
    return out


@pytest.fixture(scope="module")
def labelled(fixtures, tmp_path_factory):
    if not CDL.exists():
        pytest.fail(f"{CDL} is missing: the label tests need the CDL clip under DATA_MIRROR")
    out = tmp_path_factory.mktemp("labelled")
    summary = submit(
        "label.py",
        "--scenes", str(fixtures / "cdl" / "over"),
        "--labels", str(CDL),
        "--classes", "cdl6",
        "--tile_px", "20",
        "--min_purity", "0.6",
        "--out", str(out),
    )  # fmt: skip
    return out, summary


def test_label_keeps_each_window_under_its_majority_class_computed_independently(labelled, fixtures):
    out, summary = labelled
    assert summary["n_windows"] == 100
    assert summary["n_kept"] + sum(summary["dropped_by_reason"].values()) == 100
    assert summary["n_kept"] >= 40 and len(summary["kept_by_class"]) >= 4
    assert set(summary["unmapped_codes"]) >= {"190", "195"}  # wetlands here: counted and listed
    manifest = gpd.read_parquet(out / "_manifest" / "kansas_a.parquet")
    assert len(manifest) == 100 and manifest.crs.to_epsg() == 32614
    truth = _independent_majorities(str(fixtures / "cdl" / "over" / "kansas_a.tif"), 20)
    kept = manifest[manifest["reason"].isna()]
    assert len(kept) == summary["n_kept"]
    for w in kept.itertuples():
        cls, share = truth[(w.row, w.col)]
        assert w.label == cls and w.purity == pytest.approx(share, abs=1e-6), (w.row, w.col)
        assert share >= 0.6
    for w in manifest[manifest["reason"] == "impure"].itertuples():
        assert truth[(w.row, w.col)][1] < 0.6
    # Files are what `train --dataset aerial` reads, and they are georeferenced on their window.
    files = sorted(p.relative_to(out).as_posix() for p in out.glob("*/*.tif"))
    assert files == sorted(kept["file"])
    first = kept.iloc[0]
    with rasterio.open(out / first["file"]) as tile, rasterio.open(fixtures / "cdl" / "over" / "kansas_a.tif") as sc:
        assert tile.crs == sc.crs and tile.count == 3 and tile.width == 20
        assert tile.transform == grids.window_transform(sc.transform.to_gdal(), 20, first["row"], first["col"])
    assert json.loads((out / "_label_summary.json").read_text())["n_kept"] == summary["n_kept"]


def _label_fails(capsys, tmp_path, *flags) -> str:
    """The job run in this process (its Spark session is the suite's), as its entry point."""
    from jobs import label

    args = ["--out", str(tmp_path / "o"), "--tile_px", "20", "--classes", "cdl6", *flags]
    assert label.main(args) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("label: error")]
    assert len(errors) == 1, errors
    return errors[0]


def test_label_bad_inputs_exit_2_with_one_line(spark, capsys, fixtures, tmp_path):
    over = str(fixtures / "cdl" / "over")
    line = _label_fails(capsys, tmp_path, "--scenes", over, "--labels", str(fixtures / "cdl" / "rgb_map.tif"))
    assert "3 bands" in line and "class codes" in line
    line = _label_fails(capsys, tmp_path, "--scenes", over, "--labels", str(fixtures / "cdl" / "no_crs.tif"))
    assert "no CRS" in line
    line = _label_fails(capsys, tmp_path, "--scenes", str(fixtures / "cdl" / "far"), "--labels", str(CDL))
    assert "no scene overlaps" in line and "EPSG:5070" in line and "far_away covers" in line
    for purity in ("0", "1.5"):
        line = _label_fails(capsys, tmp_path, "--scenes", over, "--labels", str(CDL), "--min_purity", purity)
        assert "min_purity" in line


# ---------------------------------------------------------------- label → train → score → assess


@pytest.fixture(scope="module")
def assessed_store(spark, labelled, fixtures, tmp_path_factory):
    out, _ = labelled
    store = LocalStorage(tmp_path_factory.mktemp("trust_store"))
    cfg = pixel_model(MODEL, out, store.root, val_ratio=0.0, gsd_m=12.0, image_px=20)
    trained = train.train(spark, cfg, store)
    args = ["--output_model_name", MODEL, "--storage", str(store.root), "--scenes", str(fixtures / "cdl" / "over")]
    scored = score.score(spark, score.parse_args(args), store)
    return store, trained, scored


def test_label_train_score_assess_end_to_end(spark, assessed_store, labelled, tmp_path):
    store, trained, scored = assessed_store
    assert trained["n_train"] > 0 and scored["tile_px"] == [20]  # the card's 240 m at 12 m
    result = submit(
        "assess.py",
        "--output_model_name", MODEL,
        "--run", scored["run_id"],
        "--reference", str(CDL),
        "--classes", "cdl6",
        "--storage", str(store.root),
    )  # fmt: skip
    full = json.loads((store.root / "assessments" / MODEL / scored["run_id"] / "raster-2021_30m_cdls" /
                       "assessment.json").read_text())  # fmt: skip
    counts = np.asarray(full["confusion"]["counts"])
    assert counts.sum() == result["n"] == full["n_windows"] - full["n_without_reference"]
    assert full["n_windows"] == scored["n_scored"]
    # Grey levels set by the CDL class: the pixel model maps most windows right.
    assert result["overall_accuracy"]["value"] >= 0.6
    areas = [v["estimated_area_ha"]["value"] for v in full["per_class"].values()]
    assert sum(areas) == pytest.approx(full["total_area_ha"], rel=1e-6)
    assert full["total_area_ha"] == pytest.approx(scored["n_scored"] * (240 * 240) / 10_000)
    # How sure against how right: the judged windows by the map's probability, agreeing as the matrix says.
    sure = full["by_confidence"]
    assert sure["n"] == counts.sum() == sum(b["n"] for b in sure["bins"])
    assert sum(b["accuracy"] * b["n"] for b in sure["bins"] if b["n"]) == pytest.approx(np.trace(counts), abs=0.05)
    assert [b["n"] for b in result["by_confidence"]] == [b["n"] for b in sure["bins"]]
    _warned_iff_surer_than_right(full)
    # Sample points: the scene's centres of a few kept windows, as a CSV in the scene's CRS.
    manifest = gpd.read_parquet(labelled[0] / "_manifest" / "kansas_a.parquet")
    points = manifest[manifest["reason"].isna()].head(12)
    table = pd.DataFrame(
        {
            "x": points.geometry.centroid.x,
            "y": points.geometry.centroid.y,
            "crs": "EPSG:32614",
            "class": points["label"],
        }
    )
    csv = tmp_path / "points.csv"
    table.to_csv(csv, index=False)
    from jobs.workflows.assess import assess_run

    pts = assess_run(spark, store, MODEL, scored["run_id"], str(csv), None, None)
    assert pts["n"] == 12 and pts["reference"] == "points"
    by_points = json.loads((store.root / "assessments" / MODEL / scored["run_id"] / "points-points" /
                            "assessment.json").read_text())  # fmt: skip
    sure, trace = by_points["by_confidence"], np.trace(np.asarray(by_points["confusion"]["counts"]))
    assert sure["n"] == 12 == sum(b["n"] for b in pts["by_confidence"])
    assert sum(b["accuracy"] * b["n"] for b in sure["bins"] if b["n"]) == pytest.approx(trace, abs=0.05)


def test_a_reference_with_no_class_in_common_exits_2(assessed_store, capsys):
    from jobs import assess

    store, _, scored = assessed_store
    args = ["--output_model_name", MODEL, "--run", scored["run_id"], "--reference", str(CDL), "--classes", "nlcd"]
    assert assess.main([*args, "--storage", str(store.root)]) == 2
    assert "shares no class with the map" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------- NDWI


def test_ndwi_reference_of_a_half_water_scene(tmp_path):
    """A 4-band scene: columns 0-9 water (green 120 > NIR 20), 10-19 land (green 60 < NIR 150);
    windows of 10 px: the left ones water (share 1), the right ones not (share 0)."""
    from rasterio.transform import from_origin

    path = tmp_path / "pond_20200701.tif"
    data = np.zeros((4, 20, 20), dtype=np.uint8)
    data[:, :, :10] = np.array([40, 120, 90, 20])[:, None, None]
    data[:, :, 10:] = np.array([70, 60, 50, 150])[:, None, None]
    profile = {"driver": "GTiff", "width": 20, "height": 20, "count": 4, "dtype": "uint8", "crs": "EPSG:32614"}
    with rasterio.open(path, "w", transform=from_origin(600_000, 4_400_000, 5, 5), **profile) as dst:
        dst.write(data)
    from jobs.storage import LocalStorage as Local

    fn = reference.ndwi_reference(Local(tmp_path).reader(), 2, 4)
    windows = pd.DataFrame(
        {"scene_id": "p", "scene_path": str(path), "tile_px": 10, "row": [0, 0, 1, 1], "col": [0, 1, 0, 1]}
    ).assign(map_label=["water", "water", "not water", "not water"])
    out = fn(windows)
    assert out["water_share"].tolist() == [1.0, 0.0, 1.0, 0.0]
    assert out["reference"].tolist() == ["water", "not water", "water", "not water"]
    from jobs.workflows.assess import ndwi_figures

    figures = ndwi_figures(out.assign(cell=0.25), "ha")
    assert figures["windows_at_least_half_water"] == 2 and figures["water_recall_at_least_half_water"] == 0.5
    assert figures["false_water_almost_no_water"] == 0.5 and figures["ndwi_water_ha"] == 0.5


def _warned_iff_surer_than_right(full: dict) -> None:
    """The assessment warns exactly when a probability group agrees less, at 95 %, than it is sure."""
    short = [b for b in full["by_confidence"]["bins"] if b["n"] and b["accuracy_ci95"][1] < b["mean_probability"]]
    warned = [w for w in full["warnings"] if "not how right the map is" in w]
    assert len(warned) == (1 if short else 0)


def _pond_scene(path, water_cols: int) -> None:
    """A 40 x 40 px 4-band scene at 5 m in UTM 14N: columns below ``water_cols`` water by NDWI."""
    from rasterio.transform import from_origin

    data = np.zeros((4, 40, 40), dtype=np.uint8)
    data[:, :, :water_cols] = np.array([40, 120, 90, 20])[:, None, None]
    data[:, :, water_cols:] = np.array([70, 60, 50, 150])[:, None, None]
    profile = {"driver": "GTiff", "width": 40, "height": 40, "count": 4, "dtype": "uint8", "crs": "EPSG:32614"}
    with rasterio.open(path, "w", transform=from_origin(600_000, 4_400_000, 5, 5), **profile) as dst:
        dst.write(data)


def test_ndwi_assessment_and_the_change_water_check_end_to_end(spark, assessed_store, tmp_path, capsys):
    """Two dates of a pond that grows from one column of 10 px windows to two: the NDWI
    assessment counts its water whatever the map says, writes the water shares on the class
    raster's grid, and the change measures +4 windows (1 ha) of water from them."""
    from jobs import assess, change
    from jobs.storage import ASSESSMENTS, MAPS

    store, _, _ = assessed_store
    runs = []
    for year, cols in (("20090818", 10), ("20200831", 20)):
        folder = tmp_path / year
        folder.mkdir()
        _pond_scene(folder / f"pond_{year}.tif", cols)
        args = ["--output_model_name", MODEL, "--storage", str(store.root), "--tile_px", "10", "--scenes", str(folder)]
        runs.append(score.score(spark, score.parse_args(args), store)["run_id"])
    capsys.readouterr()
    for run, water_windows in zip(runs, (4, 8), strict=True):
        assert assess.main(["--output_model_name", MODEL, "--run", run, "--reference", "ndwi",
                            "--storage", str(store.root)]) == 0  # fmt: skip
        full = store.read_json(ASSESSMENTS, MODEL, run, "ndwi", "assessment.json")
        assert full["ndwi"]["windows_at_least_half_water"] == water_windows
        assert full["ndwi"]["ndwi_water_ha"] == pytest.approx(water_windows * 0.25)  # 50 m windows
        assert full["by_confidence"]["n"] == 16
        _warned_iff_surer_than_right(full)
        sid = next(f for f in store.list_files(MAPS, MODEL, run) if f.endswith(".tif") and "/" not in f)
        with (
            rasterio.open(store.uri(MAPS, MODEL, run, sid)) as classes,
            rasterio.open(store.uri(ASSESSMENTS, MODEL, run, "ndwi", sid)) as shares,
        ):
            assert (shares.transform, shares.crs, shares.shape) == (classes.transform, classes.crs, (4, 4))
            share = shares.read(1)
            assert (share == 1.0).sum() == water_windows and (share == 0.0).sum() == 16 - water_windows
    capsys.readouterr()
    assert change.main([runs[0], runs[1], "--output_model_name", MODEL, "--storage", str(store.root)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["net_water_change_ha"]["ndwi_measured"] == pytest.approx(1.0)


def test_far_resolution_warnings_reach_the_summary_and_the_change(spark, assessed_store, capsys):
    """A scene 4x coarser than the finest-to-coarsest range of the training imagery is warned of
    in the scoring summary; the run's warnings travel with its maps into change.json."""
    from jobs import change
    from jobs.storage import MAPS
    from jobs.workflows.score_scenes import _scene_stats

    table = spark.createDataFrame(
        [("a", None, 10, 10, 20, 40.0, "wkt"), ("b", None, 10, 10, 20, 5.0, "wkt")],
        "scene_id string, scene_reject string, n_rows int, n_cols int, tile_px int, res_m double, crs string",
    )
    warned = _scene_stats(table, 8.0, [2.0, 16.0])["warnings"]
    assert len(warned) == 1 and "1 scenes" in warned[0] and "2-16 m" in warned[0]
    assert _scene_stats(table, 8.0, [2.0, 32.0])["warnings"] == []  # 40 m is within 2x of 32 m
    store, _, scored = assessed_store
    run = scored["run_id"]
    about = store.read_json(MAPS, MODEL, run, "run.json")
    assert about["dates"] == [] and about["training_gsd_m"] == 12.0
    store.write_json(about | {"warnings": ["imagery far from training"]}, MAPS, MODEL, run, "run.json")
    assert change.main([run, run, "--output_model_name", MODEL, "--storage", str(store.root)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "imagery far from training" in result["warnings"]
    assert result["changed_ha"] == 0.0  # a run against itself changes nothing
    saved = json.loads((store.root / "changes" / MODEL / f"{run}__{run}" / "change.json").read_text())
    assert "imagery far from training" in saved["warnings"] and saved["dates"] == [None, None]


def test_scenes_that_all_fail_exit_2_and_say_why(assessed_store, fixtures, capsys):
    """A plain picture (no CRS) scored in metres yields no window: exit 2 with the reason, not
    exit 0 with `0 windows`."""
    store, _, _ = assessed_store
    args = ["--output_model_name", MODEL, "--storage", str(store.root), "--tile_m", "240", "--bands", "1"]
    assert score.main([*args, "--scenes", str(fixtures / "cdl" / "no_crs.tif")]) == 2
    err = capsys.readouterr().err
    assert "no scene at" in err and "no_crs" in err and "give tile_px" in err


def test_a_tile_folder_of_nothing_but_rejects_exits_2_with_the_counts(assessed_store, tmp_path, capsys):
    """A folder holding only a README and a CSV: both recorded as rejects, and the run exits 2."""
    store, _, _ = assessed_store
    tiles = tmp_path / "tiles"
    tiles.mkdir()
    (tiles / "README.txt").write_text("not an image\n")
    (tiles / "labels.csv").write_text("tile,label\n")
    assert score.main(["--output_model_name", MODEL, "--storage", str(store.root), "--tiles", str(tiles)]) == 2
    err = capsys.readouterr().err
    assert "no tile in" in err and "2 rejected" in err and "not_an_image" in err
