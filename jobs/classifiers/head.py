"""The head a train run fits on features: label indexer, classifier, label decoder and reject mask,
with the classifier's settings chosen on a validation split when asked."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyspark.ml import Pipeline, PipelineModel, Transformer
from pyspark.ml.classification import OneVsRestModel
from pyspark.ml.evaluation import MulticlassClassificationEvaluator
from pyspark.ml.feature import IndexToString, StringIndexer
from pyspark.sql import DataFrame

from featurizers.rejects import MaskRejects
from jobs.classifiers import estimators

PREDICTIONS_COLS = ["prediction", "probability", "raw_prediction", "rawPrediction", "predicted_label"]


def classifier_params(model: Transformer) -> dict[str, Any]:
    """The fitted classifier's parameters (for OneVsRest, its binary classifier's)."""
    if isinstance(model, OneVsRestModel):
        model = model.models[0]
    return {p.name: v for p, v in model.extractParamMap().items() if isinstance(v, (int, float, str, bool))}


def head_pipeline(rows: DataFrame, classifier: str, params: dict[str, Any], seed: int) -> tuple[Pipeline, Any]:
    """Label indexer, classifier, label decoder and reject mask; and the classifier whose params a grid names."""
    indexer = StringIndexer(
        inputCol="label", outputCol="label_index", stringOrderType="alphabetAsc", handleInvalid="keep"
    ).fit(rows)
    estimator, inner = estimators.build(classifier, params, seed)
    stages = [
        indexer,
        estimator,
        IndexToString(inputCol="prediction", outputCol="predicted_label", labels=indexer.labels),
        MaskRejects(rejectCol="reject_reason", maskCols=PREDICTIONS_COLS),
    ]
    return Pipeline(stages=stages), inner


def fit_head(
    train_rows: DataFrame,
    val_rows: DataFrame | None,
    classifier: str,
    params: dict[str, Any],
    seed: int,
    tune: bool,
    say: Callable[[str], None],
) -> tuple[PipelineModel, list[dict[str, Any]] | None]:
    """The head fitted on featurized rows. With ``tune``, each grid candidate is fitted on
    ``train_rows`` and scored on ``val_rows``; the best is refitted on both. Without tuning,
    the validation rows train too. Returns every candidate's validation accuracy."""
    everything = train_rows if val_rows is None else train_rows.unionByName(val_rows)
    if not tune or val_rows is None:
        pipeline, _ = head_pipeline(everything, classifier, params, seed)
        return pipeline.fit(everything), None
    pipeline, inner = head_pipeline(everything, classifier, params, seed)
    evaluator = MulticlassClassificationEvaluator(labelCol="label_index", metricName="accuracy")
    candidates = []
    for params in estimators.grid(classifier, inner):
        accuracy = evaluator.evaluate(pipeline.fit(train_rows, params).transform(val_rows))
        candidates.append({"params": {p.name: v for p, v in params.items()}, "validation_accuracy": float(accuracy)})
        say(f"  {candidates[-1]['params']}: validation accuracy {accuracy:.4f}")
    best = max(range(len(candidates)), key=lambda i: candidates[i]["validation_accuracy"])  # first of ties
    chosen = estimators.grid(classifier, inner)[best]
    return pipeline.fit(everything, chosen), candidates
