"""Exported networks in the storage root's ``pretrainedmodels/``: exported once, then reused.

Exporting needs torch (the ``export`` extra); a job whose network is already in storage never
imports it, so scoring machines need only onnxruntime.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from featurizers.export import as_network, export, onnx_file_name
from featurizers.preprocess import RejectedImage, prepare
from featurizers.quantize import FORMAT, cpu_has_vnni, quantize
from featurizers.zoo import Network
from jobs.runtime.digests import sha256_bytes, sha256_file
from jobs.storage import PRETRAINED, LocalStorage, Storage, temp_dir


def ensure_onnx(
    storage: Storage,
    name: str | Network,
    weights: str | None = None,
    pool_grid: int = 1,
    card_extra: dict[str, Any] | None = None,
) -> str:
    """A local path of the network's ONNX file, exporting it (and its model card) to storage if absent.

    For remote storage the file is fetched once into a temp folder: the driver reads it to
    broadcast it, and a saved model carries its own copy. ``card_extra`` joins the model card of
    a new export (e.g. how fine-tuned weights were made).
    """
    network = as_network(name, pool_grid)
    file_name = onnx_file_name(network, weights)
    if not storage.exists(PRETRAINED, file_name):
        data, card = export(network, weights)
        card |= card_extra or {}
        storage.write_json(card, PRETRAINED, file_name.replace(".onnx", ".json"))
        storage.write_bytes(data, PRETRAINED, file_name)
    return _local(storage, file_name)


CALIBRATION_IMAGES = 64  # int8 activation ranges: a seeded sample of the run's training images


def ensure_int8(
    storage: Storage, fp32_path: str, network: Network, sample: list[tuple[str, bytes]], source: dict[str, Any]
) -> str:
    """A local path of ``fp32_path``'s int8 network calibrated on ``sample`` (key, bytes), quantizing
    it (and writing its card) into storage when this network + calibration sample is new.

    Images of the sample that do not decode are left out of calibration (and counted in the card).
    """
    keys, tensors = [], []
    for key, data in sorted(sample):
        try:
            tensors.append(prepare(data, network.preprocessing))
            keys.append(key)
        except RejectedImage:
            continue
    fp32_sha = sha256_file(fp32_path)
    reduce_range = not cpu_has_vnni()
    identity = json.dumps(
        {"fp32": fp32_sha, "keys": keys, "reduce_range": reduce_range, "format": FORMAT}, sort_keys=True
    )
    file_name = os.path.basename(fp32_path).replace(".onnx", f"-int8-{sha256_bytes(identity.encode())[:12]}.onnx")
    if not storage.exists(PRETRAINED, file_name):
        with tempfile.TemporaryDirectory(prefix="int8-") as tmp:
            out = os.path.join(tmp, file_name)
            info = quantize(fp32_path, out, tensors, reduce_range=reduce_range)
            card = {
                "precision": "int8",
                "fp32_onnx": os.path.basename(fp32_path),
                "fp32_onnx_sha256": fp32_sha,
                "quantization": info,
                "calibration": source
                | {
                    "sampled": len(sample),
                    "used": len(keys),
                    "undecodable": len(sample) - len(keys),
                    "keys_sha256": sha256_bytes("\n".join(keys).encode()),
                },
                "onnx_sha256": sha256_file(out),
                "feature_dim": network.feature_dim,
                "preprocessing": json.loads(network.preprocessing.to_json()),
            }
            storage.write_json(card, PRETRAINED, file_name.replace(".onnx", ".json"))
            with open(out, "rb") as f:
                storage.write_bytes(f.read(), PRETRAINED, file_name)
    return _local(storage, file_name)


def _local(storage: Storage, file_name: str) -> str:
    """A local path of ``pretrainedmodels/<file_name>``: itself on a local root, else a fetched copy."""
    if isinstance(storage, LocalStorage):
        return storage.uri(PRETRAINED, file_name)
    local = os.path.join(temp_dir("onnx-"), file_name)
    with open(local, "wb") as f:
        f.write(storage.read_bytes(PRETRAINED, file_name))
    return local
