"""Exported networks in the storage root's ``pretrainedmodels/``: exported once, then reused.

Exporting needs torch (the ``export`` extra); a job whose network is already in storage never
imports it, so scoring machines need only onnxruntime.
"""

from __future__ import annotations

from featurizers.export import export, onnx_file_name
from jobs.storage import PRETRAINED, LocalStorage


def ensure_onnx(storage: LocalStorage, name: str, weights: str | None = None) -> str:
    """URI of ``name``'s ONNX file in storage, exporting it (and its model card) if absent."""
    file_name = onnx_file_name(name, weights)
    if not storage.exists(PRETRAINED, file_name):
        data, card = export(name, weights)
        storage.write_json(card, PRETRAINED, file_name.replace(".onnx", ".json"))
        storage.write_bytes(data, PRETRAINED, file_name)
    return storage.uri(PRETRAINED, file_name)
