"""Exported networks in the storage root's ``pretrainedmodels/``: exported once, then reused.

Exporting needs torch (the ``export`` extra); a job whose network is already in storage never
imports it, so scoring machines need only onnxruntime.
"""

from __future__ import annotations

import os
from typing import Any

from featurizers.export import as_network, export, onnx_file_name
from featurizers.zoo import Network
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
    if isinstance(storage, LocalStorage):
        return storage.uri(PRETRAINED, file_name)
    local = os.path.join(temp_dir("onnx-"), file_name)
    with open(local, "wb") as f:
        f.write(storage.read_bytes(PRETRAINED, file_name))
    return local
