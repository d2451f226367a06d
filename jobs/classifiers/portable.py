"""A saved Spark ML classifier read from its files and applied with numpy, without a JVM.

Spark Connect sessions (Databricks shared and serverless compute, Spark 3.5's connect server)
have no JVM on the client and, in Spark 3.5, no Spark ML over the connection, so a saved
PipelineModel's classifier cannot be loaded there. Its saved form is plain: a metadata JSON line
and Parquet. This reads those (pyarrow) and computes what Spark ML's ``transform`` computes for
the classifiers :mod:`jobs.classifiers.estimators` fits (a test checks both give the same numbers):

* ``LogisticRegressionModel``: raw = X·Cᵀ + b, probability = softmax(raw); binomial models
  keep one margin m, raw = (-m, m) and probability = (1 - σ(m), σ(m)).
* ``RandomForestClassificationModel``: raw = Σ over trees of the leaf's class counts / their
  sum; probability = raw / Σ raw.
* ``OneVsRestModel`` over ``GBTClassificationModel``: raw[k] = Σ tree weight x leaf value of
  class k's trees; no probability.

prediction = argmax(raw), the first of ties (as Spark's ``Vector.argmax``). Splits are continuous
(``x[f] <= threshold`` goes left): features from ``array_to_vector`` carry no categorical
metadata, so Spark never makes another kind.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from jobs.storage import Storage, StorageError, stage_metadata

_CLS = "org.apache.spark.ml.classification."
LOGISTIC = _CLS + "LogisticRegressionModel"
FOREST = _CLS + "RandomForestClassificationModel"
ONE_VS_REST = _CLS + "OneVsRestModel"
GBT = _CLS + "GBTClassificationModel"
CLASSES = (LOGISTIC, FOREST, ONE_VS_REST)


class UnsupportedStageError(StorageError):
    """A saved classifier this module cannot apply (the message names its class)."""


def parquet_rows(storage: Storage, *parts: str) -> list[dict[str, Any]]:
    """Every row of the Parquet table a stage saved under ``parts`` (its ``data`` folder…)."""
    rows: list[dict[str, Any]] = []
    for name in storage.list_files(*parts):
        if name.endswith(".parquet"):
            rows.extend(pq.read_table(io.BytesIO(storage.read_bytes(*parts, *name.split("/")))).to_pylist())
    if not rows:
        raise StorageError(f"{storage.uri(*parts)}: no saved data")
    return rows


def _vector(v: dict[str, Any]) -> np.ndarray:
    """A saved ``VectorUDT`` value (type 0 sparse, 1 dense)."""
    if v["type"] == 1:
        return np.asarray(v["values"], dtype=np.float64)
    out = np.zeros(v["size"], dtype=np.float64)
    out[np.asarray(v["indices"], dtype=np.int64)] = v["values"]
    return out


def _matrix(m: dict[str, Any]) -> np.ndarray:
    """A saved ``MatrixUDT`` value (type 0 sparse CSC, 1 dense column-major; either transposed)."""
    rows, cols, transposed = m["numRows"], m["numCols"], m["isTransposed"]
    if m["type"] == 1:
        values = np.asarray(m["values"], dtype=np.float64)
        return values.reshape(rows, cols) if transposed else values.reshape(cols, rows).T
    out = np.zeros((rows, cols), dtype=np.float64)
    ptrs, idx, vals = m["colPtrs"], m["rowIndices"], m["values"]
    for major in range(len(ptrs) - 1):  # CSC, or CSR when transposed
        for k in range(ptrs[major], ptrs[major + 1]):
            if transposed:
                out[major, idx[k]] = vals[k]
            else:
                out[idx[k], major] = vals[k]
    return out


@dataclass(frozen=True)
class Trees:
    """An ensemble flattened into node arrays (one array per field, trees end to end)."""

    feature: np.ndarray  # split feature per node; -1 at leaves
    threshold: np.ndarray
    left: np.ndarray  # child node indices into these arrays
    right: np.ndarray
    value: np.ndarray  # (nodes, outputs): the leaf's value
    roots: np.ndarray
    weights: np.ndarray  # per tree

    @classmethod
    def from_rows(cls, rows: list[dict[str, Any]], weights: dict[int, float], leaf: Any) -> Trees:
        """From the saved ``(treeID, nodeData)`` rows; ``leaf(node)`` gives a leaf's value vector."""
        by_tree: dict[int, list[dict[str, Any]]] = {}
        for r in rows:
            by_tree.setdefault(int(r["treeID"]), []).append(r["nodeData"])
        feature, threshold, left, right, value, roots, tree_weights = [], [], [], [], [], [], []
        for tree_id in sorted(by_tree):
            nodes = by_tree[tree_id]
            base = len(feature)
            index = {n["id"]: base + i for i, n in enumerate(nodes)}
            roots.append(index[0])  # Spark numbers each tree's nodes in pre-order from 0
            tree_weights.append(weights.get(tree_id, 1.0))
            for n in nodes:
                split = n["split"]
                if n["leftChild"] < 0:
                    feature.append(-1)
                    threshold.append(0.0)
                    left.append(-1)
                    right.append(-1)
                else:
                    if split["numCategories"] != -1:
                        raise UnsupportedStageError("a tree with a categorical split (features here are continuous)")
                    feature.append(split["featureIndex"])
                    threshold.append(split["leftCategoriesOrThreshold"][0])
                    left.append(index[n["leftChild"]])
                    right.append(index[n["rightChild"]])
                value.append(leaf(n))
        return cls(
            np.asarray(feature, dtype=np.int64),
            np.asarray(threshold, dtype=np.float64),
            np.asarray(left, dtype=np.int64),
            np.asarray(right, dtype=np.int64),
            np.asarray(value, dtype=np.float64),
            np.asarray(roots, dtype=np.int64),
            np.asarray(tree_weights, dtype=np.float64),
        )

    def leaves(self, x: np.ndarray) -> np.ndarray:
        """``(rows, trees)``: the leaf each row reaches in each tree."""
        node = np.broadcast_to(self.roots, (len(x), len(self.roots))).copy()
        rows = np.arange(len(x))[:, None]
        while True:
            split = self.feature[node] >= 0
            if not split.any():
                return node
            f = np.where(split, self.feature[node], 0)
            go_left = x[rows, f] <= self.threshold[node]
            node = np.where(split, np.where(go_left, self.left[node], self.right[node]), node)


@dataclass(frozen=True)
class Head:
    """A classifier as arrays: ``apply`` gives ``(prediction, probability or None, raw)``."""

    kind: str
    num_classes: int
    coefficients: np.ndarray | None = None  # logistic: (classes or 1, features)
    intercepts: np.ndarray | None = None
    trees: tuple[Trees, ...] = ()  # forest: one ensemble; one-vs-rest: one per class

    @property
    def has_probability(self) -> bool:
        return self.kind != ONE_VS_REST

    def apply(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        x = np.asarray(x, dtype=np.float64)
        if self.kind == LOGISTIC:
            assert self.coefficients is not None and self.intercepts is not None
            margins = x @ self.coefficients.T + self.intercepts
            if self.coefficients.shape[0] == 1:  # binomial: one margin for class 1
                m = margins[:, 0]
                raw = np.stack([-m, m], axis=1)
                p1 = 1.0 / (1.0 + np.exp(-m))
                prob = np.stack([1.0 - p1, p1], axis=1)
            else:
                raw = margins
                e = np.exp(margins - margins.max(axis=1, keepdims=True))
                prob = e / e.sum(axis=1, keepdims=True)
            return np.argmax(raw, axis=1).astype(np.float64), prob, raw
        if self.kind == FOREST:
            (forest,) = self.trees
            raw = forest.value[forest.leaves(x)].sum(axis=1)
            total = raw.sum(axis=1, keepdims=True)
            prob = np.divide(raw, total, out=np.zeros_like(raw), where=total > 0)
            return np.argmax(raw, axis=1).astype(np.float64), prob, raw
        raw = np.stack([(t.value[t.leaves(x), 0] * t.weights).sum(axis=1) for t in self.trees], axis=1)
        return np.argmax(raw, axis=1).astype(np.float64), None, raw


def _normalized_counts(node: dict[str, Any]) -> list[float]:
    stats = np.asarray(node["impurityStats"], dtype=np.float64)
    total = stats.sum()
    return list(stats / total) if total else list(stats)


def _gbt_trees(storage: Storage, *parts: str) -> Trees:
    weights = {int(r["treeID"]): float(r["weights"]) for r in parquet_rows(storage, *parts, "treesMetadata")}
    return Trees.from_rows(parquet_rows(storage, *parts, "data"), weights, lambda n: [n["prediction"]])


def load(storage: Storage, *parts: str) -> Head:
    """The classifier stage saved under ``parts``; UnsupportedStageError for another class."""
    meta = stage_metadata(storage, *parts)
    kind = str(meta["class"])
    if kind == LOGISTIC:
        (row,) = parquet_rows(storage, *parts, "data")
        coef, icpt = _matrix(row["coefficientMatrix"]), _vector(row["interceptVector"])
        return Head(kind, int(row["numClasses"]), coefficients=coef, intercepts=icpt)
    if kind == FOREST:
        trees = Trees.from_rows(parquet_rows(storage, *parts, "data"), {}, _normalized_counts)
        return Head(kind, int(meta["numClasses"]), trees=(trees,))
    if kind == ONE_VS_REST:
        k = int(meta["numClasses"])
        for i in range(k):
            if stage_metadata(storage, *parts, f"model_{i}")["class"] != GBT:
                raise UnsupportedStageError(f"{storage.uri(*parts)}: one-vs-rest over another classifier than GBT")
        return Head(kind, k, trees=tuple(_gbt_trees(storage, *parts, f"model_{i}") for i in range(k)))
    raise UnsupportedStageError(f"{storage.uri(*parts)}: {kind} cannot be applied without a JVM")
