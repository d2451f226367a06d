"""``MaskRejects``: the last pipeline stage, which nulls predictions made for rejected images.

``ImageFeaturizer`` keeps a rejected image's row with a zero-vector placeholder so that the
classifier stages run over every row; this stage then sets the prediction columns of those rows
to null, so a PipelineModel never shows a guess for an image it could not read, and the row
still says why (``rejectCol``).
"""

from __future__ import annotations

from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import DataFrame
from pyspark.sql import functions as F


class MaskRejects(Transformer, DefaultParamsReadable, DefaultParamsWritable):
    """Nulls ``maskCols`` wherever ``rejectCol`` is set; columns that are absent are ignored."""

    rejectCol = Param(Params._dummy(), "rejectCol", "column holding reject reasons", TypeConverters.toString)
    maskCols = Param(Params._dummy(), "maskCols", "columns to null for rejected rows", TypeConverters.toListString)

    @keyword_only
    def __init__(self, *, rejectCol: str = "reject_reason", maskCols: list[str] | None = None) -> None:
        super().__init__()
        self._setDefault(rejectCol="reject_reason", maskCols=[])
        self._set(**self._input_kwargs)

    def _transform(self, dataset: DataFrame) -> DataFrame:
        rejected = F.col(self.getOrDefault(self.rejectCol)).isNotNull()
        for name in self.getOrDefault(self.maskCols):
            if name in dataset.columns:
                dataset = dataset.withColumn(name, F.when(~rejected, F.col(name)))
        return dataset
