"""How right a map is, and how much of each class there really is: the good-practice estimators.

Olofsson, Foody, Herold, Stehman, Woodcock and Wulder, "Good practices for estimating area and
assessing accuracy of land change", Remote Sensing of Environment 148 (2014) 42-57. The map's
classes are the strata; each reference unit (a window, a point) falls in the stratum of its map
class. With ``n_ij`` the units mapped ``i`` whose reference is ``j``, ``n_i.`` the units of
stratum ``i`` and ``W_i`` the share of the mapped area in class ``i``:

* ``p_ij = W_i n_ij / n_i.`` (eq. 4): the estimated share of the area mapped ``i`` and truly ``j``;
* overall accuracy ``sum_j p_jj``, user's accuracy ``n_ii / n_i.``, producer's accuracy
  ``p_jj / p_.j`` (eqs. 1-3), with their variances (eqs. 5-7);
* the area of class ``j``, ``A p_.j``, with ``SE(p_.j) = sqrt(sum_i W_i^2 (n_ij/n_i.)(1 - n_ij/n_i.)
  / (n_i. - 1))`` (eqs. 9-10); 95 % intervals are ``1.96 SE``.

A contrast of classes (water gained minus water lost) is estimated the same way, from each
stratum's sample mean and variance of the contrast (:func:`contrast`). The formulas are those
of a stratified random sample; when every window of the map has a reference (a census, as
with NDWI), the intervals are what a sample of that size would give, not zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from jobs.runtime.errors import UserInputError

Z95 = 1.959964  # the normal quantile of a two-sided 95 % interval


class AssessmentError(UserInputError, ValueError):
    """A reference and a map that cannot be compared (e.g. no class in common)."""


def _interval(value: float, variance: float | None, z: float = Z95) -> dict[str, float | None]:
    if variance is None or not math.isfinite(variance):
        return {"value": round(value, 6), "ci95": None}
    return {"value": round(value, 6), "ci95": round(z * math.sqrt(max(variance, 0.0)), 6)}


def estimate(
    labels: Sequence[str], counts: np.ndarray, mapped_area: Sequence[float], area_unit: str = "ha"
) -> dict[str, Any]:
    """Accuracy and area estimates from a confusion matrix of sample counts.

    ``counts[i][j]``: units mapped ``labels[i]`` whose reference is ``labels[j]``; ``mapped_area[i]``:
    the area the whole map gives class ``i`` (the stratum's size, sampled or not).
    """
    n = np.asarray(counts, dtype=np.float64)
    area = np.asarray(mapped_area, dtype=np.float64)
    k = len(labels)
    if n.shape != (k, k) or area.shape != (k,):
        raise AssessmentError(f"counts {n.shape} and areas {area.shape} do not fit {k} classes")
    total_area = float(area.sum())
    if total_area <= 0 or n.sum() == 0:
        raise AssessmentError("nothing to assess: no mapped area, or no reference unit on the map")
    n_i = n.sum(axis=1)
    warnings = []
    unsampled = [labels[i] for i in range(k) if area[i] > 0 and n_i[i] == 0]
    if unsampled:  # a stratum without reference units says nothing of its own area
        warnings.append(f"mapped classes without a reference unit, left out of the estimates: {', '.join(unsampled)}")
        area = np.where(n_i > 0, area, 0.0)
        total_area = float(area.sum())
    thin = [labels[i] for i in range(k) if n_i[i] == 1 and area[i] > 0]
    if thin:
        warnings.append(f"classes with one reference unit have no variance (no interval): {', '.join(thin)}")
    weights = area / total_area
    safe_n = np.where(n_i > 0, n_i, 1.0)
    share = n / safe_n[:, None]  # n_ij / n_i.
    p = weights[:, None] * share
    p_col = p.sum(axis=0)
    denom = np.where(n_i > 1, n_i - 1, np.nan)  # NaN: a one-unit stratum has no variance
    sampled = weights > 0

    def var_sum(terms: np.ndarray) -> float | None:
        terms = terms[sampled]
        return None if np.isnan(terms).any() else float(terms.sum())

    users = np.diag(share)
    overall = float(np.trace(p))
    var_overall = var_sum(weights**2 * users * (1 - users) / denom)
    stratum_size = area  # N_i. in area units; the estimators only need ratios of them
    per_class: dict[str, Any] = {}
    for j, label in enumerate(labels):
        var_area = var_sum(weights**2 * share[:, j] * (1 - share[:, j]) / denom)
        estimated = total_area * p_col[j]
        ua = _interval(float(users[j]), None if n_i[j] < 2 else users[j] * (1 - users[j]) / (n_i[j] - 1))
        if n_i[j] == 0:
            ua = {"value": None, "ci95": None}
        if p_col[j] > 0:
            producers = float(p[j, j] / p_col[j])
            n_col_total = float((stratum_size / safe_n * n[:, j]).sum())  # N-hat_.j
            others = [i for i in range(k) if i != j and sampled[i]]
            var_pa: float | None = None
            if n_i[j] > 1 and all(n_i[i] > 1 for i in others):
                first = stratum_size[j] ** 2 * (1 - producers) ** 2 * users[j] * (1 - users[j]) / (n_i[j] - 1)
                rest = sum(stratum_size[i] ** 2 * share[i, j] * (1 - share[i, j]) / (n_i[i] - 1) for i in others)
                var_pa = (first + producers**2 * rest) / n_col_total**2
            pa: dict[str, float | None] = _interval(producers, var_pa)
        else:
            pa = {"value": None, "ci95": None}
        est = _interval(estimated, None if var_area is None else var_area * total_area**2)
        per_class[label] = {
            "n_map": int(n_i[j]),
            "n_reference": int(n[:, j].sum()),
            "users_accuracy": ua,
            "producers_accuracy": pa,
            f"mapped_area_{area_unit}": round(float(mapped_area[j]), 6),
            f"estimated_area_{area_unit}": est,
        }
    return {
        "labels": list(labels),
        "confusion": {"rows": "map", "columns": "reference", "counts": n.astype(np.int64).tolist()},
        "n": int(n.sum()),
        f"total_area_{area_unit}": round(total_area, 6),
        "overall_accuracy": _interval(overall, var_overall),
        "per_class": per_class,
        "warnings": warnings,
    }


def contrast(
    labels: Sequence[str], counts: np.ndarray, mapped_area: Sequence[float], coefficients: dict[str, float]
) -> dict[str, float | None]:
    """The area of ``sum_j c_j * (reference class j)``, e.g. ``{"gain": 1, "loss": -1}`` for net gain,
    with its 95 % interval: per stratum, the sample mean and variance of ``c`` over its units."""
    n = np.asarray(counts, dtype=np.float64)
    area = np.asarray(mapped_area, dtype=np.float64)
    c = np.asarray([coefficients.get(label, 0.0) for label in labels], dtype=np.float64)
    n_i = n.sum(axis=1)
    area = np.where(n_i > 0, area, 0.0)
    total = float(area.sum())
    if total <= 0:
        raise AssessmentError("nothing to assess: no sampled mapped area")
    weights = area / total
    value, variance = 0.0, 0.0
    for i in range(len(labels)):
        if weights[i] == 0:
            continue
        mean = float((n[i] * c).sum() / n_i[i])
        value += weights[i] * mean
        if n_i[i] < 2:
            variance = math.nan
            continue
        s2 = float(((n[i] * c**2).sum() - n_i[i] * mean**2) / (n_i[i] - 1))
        variance += weights[i] ** 2 * s2 / n_i[i]
    return _interval(value * total, variance * total**2 if math.isfinite(variance) else None)
