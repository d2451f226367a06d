"""Azure Blob Storage for real, against Azurite: URIs, credentials, the jobs end to end, errors."""

from __future__ import annotations

import json
import shutil
import threading

import pytest
from azurite import ACCOUNT, KEY, connection_string, running
from conftest import LITE0
from make_fixtures import AERIAL_COUNTS, AERIAL_LABELS, BAD_EXPECTED

from jobs import config, score, train
from jobs.datasets import mnist
from jobs.runtime import errors as exits
from jobs.storage import PRETRAINED, RUNS, TRAINED, LocalStorage, StorageError, blob, open_storage
from jobs.workflows import convert as convert_workflow

HOST = f"{ACCOUNT}.blob.core.windows.net"


@pytest.fixture(scope="module")
def azurite(tmp_path_factory):
    with running(tmp_path_factory.mktemp("azurite")) as server:
        yield server


@pytest.fixture(scope="module")
def env(azurite):
    with pytest.MonkeyPatch.context() as mp:
        for name in ("AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_SECRETS"):
            mp.delenv(name, raising=False)
        mp.setenv("AZURE_STORAGE_CONNECTION_STRING", connection_string(azurite.port))
        # Pages of 5 names, so every listing below (the exact counts checked) follows pages.
        mp.setattr(blob.BlobStorage, "LIST_PAGE", 5)
        service = blob.credentials(None).service()
        for name in ("train", "tiles", "models", "mnist"):
            service.create_container(name)
        yield mp


@pytest.fixture(scope="module")
def uploaded(env, fixtures, tmp_path_factory):
    """The aerial fixture (with bad files mixed in) and the idx files, uploaded by the converter."""
    aerial = tmp_path_factory.mktemp("aerial_bad")
    shutil.copytree(fixtures / "aerial", aerial, dirs_exist_ok=True)
    shutil.copy(fixtures / "bad" / "truncated.png", aerial / "train" / "Barren" / "truncated.png")
    shutil.copy(fixtures / "bad" / "empty.png", aerial / "test" / "Forest" / "empty.png")
    counts = {
        "aerial": convert_workflow.upload(str(aerial), f"wasbs://train@{HOST}/aerial", 8),
        "tiles": convert_workflow.upload(str(fixtures / "bad"), f"https://{HOST}/tiles/batch1", 8),
        "idx": convert_workflow.upload(str(fixtures / "idx_gz"), "az://mnist/", 4),
    }
    return counts


def test_uri_forms():
    assert blob.parse(f"wasbs://train@{HOST}/a/b") == blob.BlobPath(ACCOUNT, "train", "a/b")
    assert blob.parse(f"https://{HOST}/train/a/b/") == blob.BlobPath(ACCOUNT, "train", "a/b")
    assert blob.parse("az://train") == blob.BlobPath(None, "train", "")
    with pytest.raises(StorageError, match="expected wasbs://<container>@<account>"):
        blob.parse("wasbs://train@example.com/x")
    # ADLS Gen2 names the same account's data: read and written through its Blob API, shown back as named.
    assert blob.parse("abfss://lake@acct.dfs.core.windows.net/a/b") == blob.BlobPath("acct", "lake", "a/b", dfs=True)
    assert blob.parse("https://acct.dfs.core.windows.net/lake/a") == blob.BlobPath("acct", "lake", "a", dfs=True)
    assert blob.is_blob_uri("abfss://c@acct.dfs.core.windows.net/x") and not blob.is_blob_uri("abfss://c@example.com/x")
    assert not blob.is_blob_uri("hdfs://namenode/x")


def test_credentials_sources_and_no_secret_in_repr(tmp_path, monkeypatch):
    for name in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_SECRETS"):
        monkeypatch.delenv(name, raising=False)
    # Nothing configured for an account: Entra ID, never anonymous; az:// then names no account.
    assert blob.credentials("acct").kind == blob.ENTRA_ID
    with pytest.raises(StorageError, match="az:// names no storage account"):
        blob.credentials(None)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT", "acct")
    assert blob.credentials(None) == blob.BlobCredentials("acct", "https://acct.blob.core.windows.net", token=True)
    # No identity on this machine: one line at the start, not a minute of retried requests.
    monkeypatch.setattr(blob, "_TOKEN_CREDENTIAL", {})
    for name in ("IDENTITY_ENDPOINT", "AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_STORAGE_BLOB_ENDPOINT", "https://127.0.0.1:9/acct")
    with pytest.raises(StorageError, match=r"^account acct: no Entra ID token \(DefaultAzureCredential found no"):
        open_storage("abfss://lake@acct.dfs.core.windows.net/x").check()
    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT")
    secrets = tmp_path / "settings.cfg"
    secrets.write_text("[azure]\naccount = acct\nkey = c2VjcmV0LWtleQ==\n")
    monkeypatch.setenv("AZURE_STORAGE_SECRETS", str(secrets))
    creds = blob.credentials("acct")
    assert (creds.account, creds.endpoint, creds.key) == (
        "acct",
        "https://acct.blob.core.windows.net",
        "c2VjcmV0LWtleQ==",
    )
    assert "c2VjcmV0" not in repr(creds) and creds.kind == "account key"
    # Another account in the same run signs in with Entra ID at Azure's endpoint.
    other = blob.credentials("other")
    assert (other.kind, other.endpoint, other.key) == (blob.ENTRA_ID, "https://other.blob.core.windows.net", None)


def test_storage_basics_and_concurrent_appends(env):
    store = open_storage("az://models/basics")
    store.write_json({"a": 1}, "x", "card.json")
    assert store.read_json("x", "card.json") == {"a": 1}
    assert store.exists("x", "card.json") and not store.exists("x", "nope.json")
    assert store.head(3, "x", "card.json") == b"{\n "
    threads = [threading.Thread(target=store.append_line, args=(json.dumps({"i": i}), "log.jsonl")) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = store.read_bytes("log.jsonl").decode().splitlines()
    assert sorted(json.loads(line)["i"] for line in lines) == list(range(20))


def test_upload_counts(uploaded):
    n_aerial = sum(AERIAL_COUNTS.values()) * len(AERIAL_LABELS) + 2
    assert uploaded["aerial"]["files"] == n_aerial
    assert uploaded["tiles"]["files"] == len(BAD_EXPECTED)
    assert uploaded["idx"]["files"] == 4


def test_mnist_from_blob(env, uploaded, spark, fixtures):
    location = open_storage("az://mnist")
    images, labels = mnist.check_split(location, "train")
    assert (images.count, labels.count) == (30, 30)
    rows = mnist.load_split(spark, location, "train").collect()
    local = {r["path"]: r for r in mnist.load_split(spark, LocalStorage(fixtures / "idx_gz"), "train").collect()}
    assert len(rows) == 30
    assert all(r["label"] == local[r["path"]]["label"] and r["image"] == local[r["path"]]["image"] for r in rows)


@pytest.fixture(scope="module")
def blob_runs(env, uploaded, spark, storage, lite0_onnx):
    """Train and score with data, tiles and the storage root all in Azurite."""
    root = open_storage("az://models/root")
    root.write_bytes(storage.read_bytes(PRETRAINED, "efficientnet_lite0.onnx"), PRETRAINED, "efficientnet_lite0.onnx")
    root.write_bytes(storage.read_bytes(PRETRAINED, "efficientnet_lite0.json"), PRETRAINED, "efficientnet_lite0.json")
    cfg = config.TrainConfig(
        output_model_name="aerial_lr",
        dataset="aerial",
        data=f"wasbs://train@{HOST}/aerial",
        storage="az://models/root",
        **LITE0,
    ).validate()
    trained = train.train(spark, cfg, root)
    scored = score.score(
        spark,
        config.ScoreConfig(
            output_model_name="aerial_lr", tiles=f"https://{HOST}/tiles/batch1", storage="az://models/root", csv=True
        ),
        root,
    )
    return root, trained, scored


def test_train_on_blob_counts_rejects_and_writes_everything_there(blob_runs):
    root, trained, _ = blob_runs
    metrics = root.read_json(RUNS, trained["run_id"], "metrics.json")
    assert metrics["counts"]["train"]["rejected_by_reason"] == {"truncated": 1}
    assert metrics["counts"]["test"]["rejected_by_reason"] == {"empty": 1}
    assert trained["n_train"] == AERIAL_COUNTS["train"] * len(AERIAL_LABELS)
    assert trained["n_test"] == AERIAL_COUNTS["test"] * len(AERIAL_LABELS)
    assert trained["predictions_uri"].startswith("wasbs://models@")
    assert root.exists(TRAINED, "aerial_lr", "_MODEL") and root.exists(RUNS, "index.jsonl")
    assert "AccountKey" not in json.dumps(metrics) and KEY not in json.dumps(metrics)
    frame = root.read_frame(*metrics["predictions_path"])
    assert len(frame) == trained["n_test"] + 1


def test_score_from_blob_keeps_every_tile(blob_runs, spark):
    root, _, scored = blob_runs
    assert scored["n_tiles"] == len(BAD_EXPECTED)
    assert scored["n_rejected"] == sum(1 for c in BAD_EXPECTED.values() if c)
    manifest = root.read_json("predictions", "aerial_lr", scored["run_id"], "_SUCCESS")
    assert manifest["rows"] == len(BAD_EXPECTED)
    csv = root.read_json("predictions", "aerial_lr", f"{scored['run_id']}.csv", "_SUCCESS")
    assert csv["rows"] == len(BAD_EXPECTED) and all(p.endswith(".csv") for p in csv["parts"])
    rows = root.read_table(spark, "predictions", "aerial_lr", scored["run_id"]).collect()
    assert sorted(r["tile"] for r in rows) == sorted(BAD_EXPECTED)
    reloaded = root.load_model(TRAINED, "aerial_lr")
    assert type(reloaded.stages[0]).__name__ == "ImageFeaturizer"


def test_missing_container_and_wrong_key_fail_in_one_line(env, azurite, uploaded, capsys, monkeypatch):
    args = ["--dataset", "aerial", "--data", f"wasbs://train@{HOST}/aerial", "--output_model_name", "x"]
    assert train.main([*args, "--storage", "az://nosuchcontainer/x"]) == exits.EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()  # the resolved configuration, then the error
    assert err[-1] == f"train: error: container nosuchcontainer not found in account {ACCOUNT}"
    wrong = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk="
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", connection_string(azurite.port, wrong))
    blob._CLIENTS.clear()
    try:
        code = score.main(
            ["--output_model_name", "aerial_lr", "--tiles", "az://tiles/batch1", "--storage", "az://models/root"]
        )
        out = capsys.readouterr()
    finally:
        blob._CLIENTS.clear()
    assert code == exits.EXIT_BAD_INPUT
    last = out.err.strip().splitlines()[-1]
    assert (
        last
        == "score: error: container models: access denied (check the account key, SAS token, or the identity's role)"
    )
    assert wrong not in out.err + out.out


def test_scoring_rides_out_a_storage_outage(env, azurite, blob_runs, tmp_path, spark):
    """Azurite stops for 10 s mid-run; retries carry the job through, nothing lost or doubled."""
    import subprocess
    import time

    from conftest import DEMO, ROOT, require, submit_command, summary_of

    sources = sorted(p for p in require(DEMO / "tiles").iterdir() if p.suffix == ".png")
    tiles = tmp_path / "tiles"
    tiles.mkdir()
    for i in range(400):
        shutil.copy(sources[i % len(sources)], tiles / f"t{i:05d}.png")
    convert_workflow.upload(str(tiles), "az://tiles/outage", 16)
    cmd, env_vars = submit_command(
        "score.py", "--output_model_name", "aerial_lr", "--tiles", "az://tiles/outage", "--storage", "az://models/root"
    )
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env_vars, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    assert proc.stderr is not None
    try:
        for line in proc.stderr:  # progress: wait until executors are reading tiles from storage
            lines.append(line)
            if "featurize, predict and write ..." in line:
                break
        time.sleep(2)
        azurite.stop()
        time.sleep(10)
        azurite.start()
        out, rest = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:  # never leave a driver behind
            proc.kill()
    assert proc.returncode == 0, ("".join(lines) + rest)[-3000:]
    summary = summary_of(out)  # stdout: the summary alone
    root = open_storage("az://models/root")
    rows = root.read_table(spark, "predictions", "aerial_lr", summary["run_id"]).select("tile").collect()
    assert summary["n_tiles"] == len(rows) == len({r["tile"] for r in rows}) == 400


HOSTILE_TILES = ["a #1.png", "b?x=1.png", "c%20d.png", "ünï cödé.png", "e&f;g.png"]


def test_names_with_url_characters_round_trip_from_listing_to_predictions(env, blob_runs, fixtures, tmp_path, spark):
    src = sorted((fixtures / "aerial" / "test" / "Forest").iterdir())[0]
    local = tmp_path / "hostile"
    local.mkdir()
    for name in HOSTILE_TILES:
        shutil.copy(src, local / name)
    assert convert_workflow.upload(str(local), "az://tiles/hostile", 4)["files"] == len(HOSTILE_TILES)
    assert sorted(open_storage("az://tiles/hostile").list_files()) == sorted(HOSTILE_TILES)
    root = blob_runs[0]
    for tiles in ("az://tiles/hostile", f"https://{HOST}/tiles/hostile", str(local)):
        cfg = config.ScoreConfig(output_model_name="aerial_lr", tiles=tiles, storage="az://models/root")
        scored = score.score(spark, cfg, root)
        rows = root.read_table(spark, "predictions", "aerial_lr", scored["run_id"]).collect()
        assert sorted(r["tile"] for r in rows) == sorted(HOSTILE_TILES), tiles
        assert all(r["reject_reason"] is None for r in rows)  # every one read, none cut at # or ?


def test_a_sas_url_is_used_and_never_shown_or_recorded(env, blob_runs, capsys, monkeypatch):
    from datetime import datetime, timedelta, timezone

    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    sas = generate_container_sas(
        ACCOUNT,
        "tiles",
        account_key=KEY,
        permission=ContainerSasPermissions(read=True, list=True),
        expiry=datetime.now(timezone.utc) + timedelta(hours=1),
    )
    signature = dict(p.split("=", 1) for p in sas.split("&"))["sig"]
    url = f"https://{HOST}/tiles/batch1?{sas}"
    args = ["--output_model_name", "aerial_lr", "--tiles", url, "--storage", "az://models/root"]
    assert score.main(args) == exits.EXIT_OK
    out = capsys.readouterr()
    assert signature not in out.out + out.err and json.loads(out.out)["n_tiles"] == len(BAD_EXPECTED)
    root = open_storage("az://models/root")
    root.write_json({"data": url}, "records", "r.json")  # what every run record goes through
    assert signature not in root.read_bytes("records", "r.json").decode()
    bad = url.replace(signature, "d3Jvbmc%3D")  # a wrong signature: one line, still not shown
    assert score.main([*args[:3], bad, *args[4:]]) == exits.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "access denied" in err and "d3Jvbmc" not in err


def test_blob_lock_is_a_renewed_lease_and_a_lost_one_stops_the_run(env):
    from azure.storage.blob import BlobLeaseClient

    from jobs.storage import lock

    root = open_storage("az://models/locks")
    first = lock.RunLock(root, ("_LOCK",), "first", timeout_s=300)
    first.acquire()
    try:
        with pytest.raises(lock.LockedError, match=r"held by run first \(its lease is renewed\)"):
            lock.RunLock(root, ("_LOCK",), "second", timeout_s=300).acquire()
        first.check()
        blob_client = root.client.get_blob_client(root._name("_LOCK"))
        BlobLeaseClient(blob_client).break_lease(lease_break_period=0)  # as if it had lapsed
        taker = lock.RunLock(root, ("_LOCK",), "taker", timeout_s=300)
        taker.acquire()  # a lease that can be taken belongs to a dead run
        with pytest.raises(lock.LockLostError, match="stopped before committing"):
            first.check()
        taker.release()
    finally:
        first.release()
    assert not root.exists("_LOCK")
    root.write_bytes(b'{"run_id": "died-before-leasing"}', "_LOCK")  # never leased: dead
    with lock.held(root, ("_LOCK",), "next", 300) as held:
        held.check()


def test_blob_model_save_rolls_back_when_its_record_fails(env, spark):
    from pyspark.ml import PipelineModel

    from featurizers.rejects import MaskRejects

    root = open_storage("az://models/rollback")
    root.save_model(PipelineModel([MaskRejects(maskCols=["a"])]), TRAINED, "m", card={"run_id": "r1"})

    def fail() -> None:
        raise StorageError("index unwritable")

    with pytest.raises(StorageError, match="index unwritable"):
        root.save_model(PipelineModel([MaskRejects(maskCols=["b"])]), TRAINED, "m", card={"run_id": "r2"}, record=fail)
    assert root.load_card(TRAINED, "m") == {"run_id": "r1"}
    assert root.load_model(TRAINED, "m").stages[0].getOrDefault("maskCols") == ["a"]


def test_hostile_model_names_touch_nothing_in_a_blob_root(env, capsys):
    from test_storage import HOSTILE

    root = open_storage("az://models/fuzz")
    root.write_bytes(b"keep", "sentinel")
    before = sorted(blob.name for blob in root.client.list_blobs())
    for name in HOSTILE:
        args = ["--output_model_name", name, "--storage", "az://models/fuzz"]
        assert train.main([*args, "--data", "az://train/aerial"]) == exits.EXIT_BAD_INPUT
        assert score.main([*args, "--tiles", "az://tiles/batch1"]) == exits.EXIT_BAD_INPUT
        assert "is not a name" in capsys.readouterr().err
    assert sorted(blob.name for blob in root.client.list_blobs()) == before


def test_label_reads_scenes_and_the_land_cover_raster_from_blob(env, fixtures, tmp_path, spark, capsys):
    """landuse-label with its scenes and its CDL raster in Blob Storage (ranged reads through
    rasterio's opener) keeps the same windows as from disk."""
    from make_fixtures import CDL

    from jobs import label

    if not CDL.exists():
        pytest.fail(f"{CDL} is missing: run with the data mirror")
    cdl = tmp_path / "cdl"
    cdl.mkdir()
    shutil.copy(CDL, cdl / CDL.name)
    assert convert_workflow.upload(str(cdl), "az://tiles/landcover", 2)["files"] == 1
    assert convert_workflow.upload(str(fixtures / "cdl" / "over"), "az://tiles/scenes", 2)["files"] == 1
    common = ["--classes", "cdl6", "--tile_px", "20", "--min_purity", "0.6"]
    runs = {}
    for where, scenes, labels in (
        ("local", str(fixtures / "cdl" / "over"), str(CDL)),
        ("blob", "az://tiles/scenes", f"az://tiles/landcover/{CDL.name}"),
    ):
        out = tmp_path / where
        assert label.main(["--scenes", scenes, "--labels", labels, "--out", str(out), *common]) == 0
        runs[where] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert sorted(p.relative_to(out).as_posix() for p in out.glob("*/*.tif"))
    assert runs["blob"]["kept_by_class"] == runs["local"]["kept_by_class"]
    assert runs["blob"]["dropped_by_reason"] == runs["local"]["dropped_by_reason"]
    assert runs["blob"]["labels"] == f"wasbs://tiles@{HOST}/landcover/{CDL.name}"
