"""``PixelFeaturizer``: raw grey pixels as features, the baseline a CNN has to beat.

Each image is decoded as :mod:`featurizers.preprocess` decodes it (same modes, same rejects),
converted to 8-bit grey (Pillow's ``L``: ITU-R 601 luma), resized to ``size x size`` with PIL's
bilinear filter when it is not that size already, and flattened row by row into ``size**2``
values in [0, 1]. On MNIST (28 x 28 grey) this is exactly the 784 pixels / 255 that the Azure
ML tutorial's logistic regression used.

Same contract as :class:`featurizers.image_featurizer.ImageFeaturizer`: ``outputCol``
(``VectorUDT``) and ``rejectCol``; rejected rows carry zeros and a reason.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasInputCol, HasOutputCol
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from featurizers.image_featurizer import RESULT_SCHEMA, HasRejects, float_lists, per_image, task_started, unpack_result
from featurizers.preprocess import DEFAULT_MAX_PIXELS, decode_rgb_noted
from jobs.runtime import progress


def grey_pixels(data: bytes | None, size: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, str | None]:
    """Encoded bytes -> ``size*size`` float32 grey values in [0, 1] and the pixel note; raises
    RejectedImage."""
    rgb, note = decode_rgb_noted(data, max_pixels)
    img = rgb.convert("L")
    if img.size != (size, size):
        img = img.resize((size, size))
    return np.asarray(img, dtype=np.float32).reshape(-1) / np.float32(255.0), note


class PixelFeaturizer(Transformer, HasInputCol, HasOutputCol, HasRejects, DefaultParamsReadable, DefaultParamsWritable):
    """Encoded image bytes -> flattened grey pixels (``VectorUDT``) plus a reject reason."""

    size = Param(Params._dummy(), "size", "side of the square grey image that is flattened", TypeConverters.toInt)

    @keyword_only
    def __init__(
        self,
        *,
        inputCol: str = "image",
        outputCol: str = "features",
        rejectCol: str = "reject_reason",
        size: int = 28,
        maxPixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        super().__init__()
        self._setDefault(
            inputCol="image", outputCol="features", rejectCol="reject_reason", size=28, maxPixels=DEFAULT_MAX_PIXELS
        )
        self._set(**self._input_kwargs)

    def _transform(self, dataset: DataFrame) -> DataFrame:
        size, max_pixels = self.getOrDefault(self.size), self.getOrDefault(self.maxPixels)
        zeros = np.zeros(size * size, dtype=np.float32)
        counter = progress.image_counter(dataset.sparkSession)

        @F.pandas_udf(RESULT_SCHEMA)  # type: ignore[call-overload]
        def pixels(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
            task_started()
            for series in batches:
                if counter is not None:
                    counter.add(len(series))
                feats, reasons, notes = per_image(series, lambda b: grey_pixels(b, size, max_pixels), zeros)
                yield pd.DataFrame({"features": float_lists(feats), "reject": reasons, "note": notes})

        result = f"__{self.uid}_result"
        staged = dataset.withColumn(result, pixels(F.col(self.getInputCol())))
        return unpack_result(staged, result, self.getOutputCol(), self.getOrDefault(self.rejectCol))
