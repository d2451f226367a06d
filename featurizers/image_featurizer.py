"""``ImageFeaturizer``: a pyspark.ml Transformer from encoded image bytes to CNN feature vectors.

Input: a binary column of encoded images (PNG, JPEG, TIFF, … anything Pillow opens).
Output: ``outputCol`` (``VectorUDT``, ``featureDim`` long) and ``rejectCol`` (string, null when
the image was featurized). An image that cannot be decoded keeps its row: its reason goes in
``rejectCol`` and its features are a zero vector placeholder, so that downstream stages run;
:class:`featurizers.rejects.MaskRejects` then nulls those rows' predictions. Nothing is dropped.

The network is an ONNX file (see :mod:`featurizers.export`). Two engines run it, with one
contract and the same numbers (decoding and preprocessing are shared):

* ``onnx`` (default): Python onnxruntime in an iterator pandas UDF. The driver reads the file
  and broadcasts it once per application (again only if the file changes); each Python worker
  builds one session per model (cached at module level, so reused across tasks) and runs it on
  batches of ``batchSize`` images. A Spark Connect session has no broadcast: there each Python
  worker reads the file itself by URI (local path, Azure Blob/ADLS, or fsspec's schemes), once,
  and checks it is the file (sha256) the driver read.
  ``numThreads`` is onnxruntime's intra-op thread count per task: keep ``numThreads x``
  concurrent tasks per executor at or below its cores.
* ``synapseml``: SynapseML 1.1's ``ONNXModel`` (Java onnxruntime in the executor JVM). A pandas
  UDF decodes and normalizes exactly as above; the tensor is reshaped to the nested
  ``array<array<array<float>>>`` that ONNXModel feeds. Needs the SynapseML jars on the session
  (``spark.jars.packages=com.microsoft.azure:synapseml_2.12:1.1.0``). SynapseML's own
  OpenCV-based ``ImageTransformer`` is not used: its resize differs from torchvision's.

Arrow sends ``spark.sql.execution.arrow.maxRecordsPerBatch`` rows (default 10,000) to Python at
a time; with large images set it near ``batchSize`` (the jobs do) to bound worker memory.

Saved (alone or inside a PipelineModel), the ONNX file is copied into the stage's folder, so a
saved model never depends on where the network was first exported.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import sys
import zipimport
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from pyspark import Broadcast, keyword_only
from pyspark.ml import Transformer
from pyspark.ml.functions import array_to_vector
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasInputCol, HasOutputCol
from pyspark.ml.util import DefaultParamsReader, DefaultParamsWriter, MLReadable, MLReader, MLWritable, MLWriter
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, FloatType, StringType, StructField, StructType

from featurizers.preprocess import DEFAULT_MAX_PIXELS, RejectedImage, prepare_noted
from featurizers.zoo import INPUT_NAME, OUTPUT_NAME, Network, Preprocessing
from jobs.runtime import progress
from jobs.runtime.errors import UserInputError
from jobs.runtime.spark import is_connect
from jobs.storage import jvm_files

MODEL_FILE = "model.onnx"

# What every featurizer's UDF returns per image; see unpack_result.
RESULT_SCHEMA = StructType(
    [
        StructField("features", ArrayType(FloatType()), True),
        StructField("reject", StringType(), True),
        StructField("note", StringType(), True),
    ]
)
NOTE_COL = "pixel_note"  # how an image's pixels were changed before featurizing (preprocess's notes)

_TENSOR = StructType(
    [
        StructField("tensor", ArrayType(FloatType()), True),
        StructField("reject", StringType(), True),
        StructField("note", StringType(), True),
    ]
)
ENGINES = ("onnx", "synapseml")


class ModelFileError(UserInputError, ValueError):
    """A saved featurizer whose network file is missing or not the one it was saved with."""


class EngineError(UserInputError, ValueError):
    """An engine that is unknown, or whose jars are not on the Spark session."""


class _Shipped(NamedTuple):
    version: tuple[int, int]  # jvm_files.version of the file when it was read
    sha256: str
    model: Broadcast


# Driver: the broadcast of each model file, per application, kept while the file is unchanged.
# Reading, hashing and broadcasting a 230 MB network takes over a second on 2 cores, which
# every transform() (each notebook cell, each scoring batch) would otherwise pay again.
_BROADCASTS: dict[tuple[str, str], _Shipped] = {}

# Python worker: one onnxruntime session per (model sha256, threads), reused across tasks.
_SESSIONS: dict[tuple[str, int], Any] = {}


def _broadcast_model(spark: SparkSession, uri: str) -> tuple[str, Broadcast]:
    """``(sha256, broadcast bytes)`` of the ONNX file at ``uri``, made once per file version."""
    sc = spark.sparkContext
    key, version = (sc.applicationId, uri), jvm_files.version(spark, uri)
    cached = _BROADCASTS.get(key)
    if cached is not None and cached.version == version:
        return cached.sha256, cached.model
    for old in [k for k in _BROADCASTS if k[0] != sc.applicationId]:  # from a stopped context
        del _BROADCASTS[old]
    data = jvm_files.read_bytes(spark, uri)
    shipped = _Shipped(version, hashlib.sha256(data).hexdigest(), sc.broadcast(data))
    if cached is not None:
        cached.model.unpersist(blocking=False)  # the file was rewritten; a running job keeps its copy
    _BROADCASTS[key] = shipped
    return shipped.sha256, shipped.model


def task_started() -> None:
    """Trims what Spark's Python worker redoes before each task, ~130 ms a task on 2 cores (4% of
    a 256-image AlexNet task); every UDF of this package calls it first. The worker's
    ``gc.collect()`` walks every live object: those alive when a task starts are the worker's own
    (modules, sessions), so they are frozen out of its way. Its ``importlib.invalidate_caches()``
    re-reads a whole archive for each zip importer cached in ``sys.path_importer_cache`` (one per
    package imported from pyspark.zip, and spark-core's jar): dropped here, they are made again
    from the directory already in memory if an import needs one."""
    gc.freeze()
    for path, finder in list(sys.path_importer_cache.items()):
        if isinstance(finder, zipimport.zipimporter):
            del sys.path_importer_cache[path]


def _shipped_by_uri(uri: str) -> tuple[str, Callable[[], bytes]]:
    """Spark Connect: ``(sha256, what an executor calls to read the file)``."""
    from jobs.storage import reader_for

    reader = reader_for(uri)
    sha = hashlib.sha256(reader.read(uri)).hexdigest()
    return sha, functools.partial(_read_checked, reader, uri, sha)


def _read_checked(reader: Any, uri: str, sha: str) -> bytes:
    data = reader.read(uri)
    if hashlib.sha256(data).hexdigest() != sha:
        raise ModelFileError(f"{uri}: changed while this job ran (its sha256 differs from the driver's)")
    return bytes(data)


def _session(key: tuple[str, int], network: Callable[[], bytes]) -> Any:
    sess = _SESSIONS.get(key)
    if sess is None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = key[1]
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(network(), opts, providers=["CPUExecutionProvider"])
        _SESSIONS[key] = sess
    return sess


def float_lists(vectors: list[np.ndarray] | np.ndarray) -> list[list[float]]:
    """Vectors in the form a pandas UDF returns fastest for ``array<float>``: Spark's Arrow writer
    walks each array element by element in Python, which takes twice as long over numpy scalars
    as over Python floats (0.44 vs 0.20 ms for a 4096-d vector)."""
    return [v.tolist() for v in vectors]


def unpack_result(staged: DataFrame, result: str, output_col: str, reject_col: str) -> DataFrame:
    """Turns the ``RESULT_SCHEMA`` column ``result`` into ``output_col`` (vector), ``reject_col``
    and :data:`NOTE_COL`."""
    return (
        staged.withColumn(output_col, array_to_vector(F.col(f"{result}.features")))
        .withColumn(reject_col, F.col(f"{result}.reject"))
        .withColumn(NOTE_COL, F.col(f"{result}.note"))
        .drop(result)
    )


def per_image(
    images: Iterable[bytes | None],
    convert: Callable[[bytes | None], tuple[np.ndarray, str | None]],
    placeholder: np.ndarray,
) -> tuple[list[np.ndarray], list[str | None], list[str | None]]:
    """``convert`` applied to each image: arrays, reject reasons and pixel notes; a rejected
    image gets ``placeholder`` and its reason."""
    out: list[np.ndarray] = []
    reasons: list[str | None] = []
    notes: list[str | None] = []
    for data in images:
        try:
            arr, note = convert(data)
            out.append(arr)
            reasons.append(None)
            notes.append(note)
        except RejectedImage as exc:
            out.append(placeholder)
            reasons.append(exc.reason)
            notes.append(None)
    return out, reasons, notes


def featurize_batch(
    session: Any, images: list[bytes | None], prep: Preprocessing, dim: int, max_pixels: int
) -> tuple[np.ndarray, list[str | None], list[str | None]]:
    """Featurizes one batch: ``(features[N, dim], reasons[N], pixel notes[N])``; rejects get zeros."""
    tensors: list[np.ndarray] = []
    ok: list[int] = []
    reasons: list[str | None] = [None] * len(images)
    notes: list[str | None] = [None] * len(images)
    for i, data in enumerate(images):
        try:
            tensor, notes[i] = prepare_noted(data, prep, max_pixels)
            tensors.append(tensor)
            ok.append(i)
        except RejectedImage as exc:
            reasons[i] = exc.reason
    out = np.zeros((len(images), dim), dtype=np.float32)
    if tensors:
        name = session.get_inputs()[0].name
        out[ok] = session.run(None, {name: np.stack(tensors)})[0].reshape(len(ok), -1)
    return out, reasons, notes


def _flat(noted: tuple[np.ndarray, str | None]) -> tuple[np.ndarray, str | None]:
    return noted[0].reshape(-1), noted[1]


def _param(name: str, doc: str, converter: Any) -> Param:
    return Param(Params._dummy(), name, doc, converter)


class HasRejects(Params):
    """What every featurizer shares: where reject reasons go, and the decompression-bomb limit."""

    rejectCol = _param("rejectCol", "output column: why an image was rejected (null if not)", TypeConverters.toString)
    maxPixels = _param("maxPixels", "larger images are rejected as too_large", TypeConverters.toInt)


class ImageFeaturizer(Transformer, HasInputCol, HasOutputCol, HasRejects, MLReadable, MLWritable):
    """Encoded image bytes -> CNN features (``VectorUDT``) plus a reject reason column."""

    modelPath = _param("modelPath", "URI of the ONNX network (input N x 3 x H x W)", TypeConverters.toString)
    modelName = _param("modelName", "zoo name of the network, for records", TypeConverters.toString)
    featureDim = _param("featureDim", "length of the feature vector", TypeConverters.toInt)
    preprocessing = _param("preprocessing", "JSON of featurizers.zoo.Preprocessing", TypeConverters.toString)
    batchSize = _param("batchSize", "images per onnxruntime call", TypeConverters.toInt)
    numThreads = _param("numThreads", "onnxruntime intra-op threads per task", TypeConverters.toInt)
    engine = _param("engine", "onnx (Python onnxruntime) or synapseml (SynapseML ONNXModel)", TypeConverters.toString)

    @keyword_only
    def __init__(
        self,
        *,
        inputCol: str = "image",
        outputCol: str = "features",
        rejectCol: str = "reject_reason",
        modelPath: str | None = None,
        modelName: str = "",
        featureDim: int | None = None,
        preprocessing: str | None = None,
        batchSize: int = 8,
        numThreads: int = 1,
        maxPixels: int = DEFAULT_MAX_PIXELS,
        engine: str = "onnx",
    ) -> None:
        super().__init__()
        self._setDefault(
            inputCol="image",
            outputCol="features",
            rejectCol="reject_reason",
            modelName="",
            batchSize=8,
            numThreads=1,
            maxPixels=DEFAULT_MAX_PIXELS,
            engine="onnx",
        )
        kwargs = self._input_kwargs
        if kwargs.get("engine", "onnx") not in ENGINES:
            raise EngineError(f"engine {kwargs['engine']!r}: choose one of {', '.join(ENGINES)}")
        self._set(**kwargs)

    @classmethod
    def from_zoo(cls, name: str, model_path: str, pool_grid: int = 1, **kwargs: Any) -> ImageFeaturizer:
        """A featurizer for the zoo network ``name`` whose ONNX export (at ``pool_grid``) lies at ``model_path``."""
        from featurizers.zoo import Network

        return cls.from_network(Network.parse(name, pool_grid), model_path, **kwargs)

    @classmethod
    def from_network(cls, network: Network, model_path: str, **kwargs: Any) -> ImageFeaturizer:
        """A featurizer running ``network``'s ONNX export at ``model_path``."""
        return cls(
            modelPath=model_path,
            modelName=network.file_stem(),
            featureDim=network.feature_dim,
            preprocessing=network.preprocessing.to_json(),
            **kwargs,
        )

    def _transform(self, dataset: DataFrame) -> DataFrame:
        result = f"__{self.uid}_result"
        if self.getOrDefault(self.engine) == "synapseml":
            staged = self._synapseml(dataset, result)
        else:
            staged = dataset.withColumn(result, self._onnx_udf(dataset.sparkSession)(F.col(self.getInputCol())))
        return unpack_result(staged, result, self.getOutputCol(), self.getOrDefault(self.rejectCol))

    def _onnx_udf(self, spark: SparkSession) -> Any:
        uri = self.getOrDefault(self.modelPath)
        if is_connect(spark):
            sha, network = _shipped_by_uri(uri)
        else:
            sha, model = _broadcast_model(spark, uri)
            network = functools.partial(getattr, model, "value")
        key = (sha, self.getOrDefault(self.numThreads))
        prep = Preprocessing.from_json(self.getOrDefault(self.preprocessing))
        dim = self.getOrDefault(self.featureDim)
        batch = self.getOrDefault(self.batchSize)
        max_pixels = self.getOrDefault(self.maxPixels)
        counter = progress.image_counter(spark)

        @F.pandas_udf(RESULT_SCHEMA)  # type: ignore[call-overload]
        def featurize(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
            task_started()
            session = _session(key, network)
            for series in batches:
                if counter is not None:
                    counter.add(len(series))
                images = series.tolist()
                feats: list[list[float]] = []
                reasons: list[str | None] = []
                notes: list[str | None] = []
                for start in range(0, len(images), batch):
                    f, r, n = featurize_batch(session, images[start : start + batch], prep, dim, max_pixels)
                    feats.extend(float_lists(f))
                    reasons.extend(r)
                    notes.extend(n)
                yield pd.DataFrame({"features": feats, "reject": reasons, "note": notes})

        return featurize

    def _synapseml(self, dataset: DataFrame, result: str) -> DataFrame:
        try:
            from synapse.ml.onnx import ONNXModel
        except ImportError:
            raise EngineError(
                "engine 'synapseml' needs the SynapseML jars on the Spark session: "
                "spark-submit --packages com.microsoft.azure:synapseml_2.12:1.1.0"
            ) from None
        prep = Preprocessing.from_json(self.getOrDefault(self.preprocessing))
        max_pixels = self.getOrDefault(self.maxPixels)
        crop, dim = prep.crop, self.getOrDefault(self.featureDim)
        zeros = np.zeros(3 * crop * crop, dtype=np.float32)

        @F.pandas_udf(_TENSOR)  # type: ignore[call-overload]
        def tensors(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
            task_started()
            for series in batches:
                # A rejected image still needs a tensor for ONNXModel; the mask below zeroes it.
                flat, reasons, notes = per_image(series, lambda b: _flat(prepare_noted(b, prep, max_pixels)), zeros)
                yield pd.DataFrame({"tensor": float_lists(flat), "reject": reasons, "note": notes})

        prepared, tensor, fetched = f"{result}_prep", f"{result}_tensor", f"{result}_out"
        # Flat CHW -> nested [c][h][w], in the JVM: slices of the flat array, no Python lists.
        nested = F.expr(
            f"transform(sequence(0, 2), c -> transform(sequence(0, {crop - 1}), "
            f"h -> slice(`{prepared}`.tensor, c * {crop * crop} + h * {crop} + 1, {crop})))"
        )
        staged = dataset.withColumn(prepared, tensors(F.col(self.getInputCol()))).withColumn(tensor, nested)
        onnx = (
            ONNXModel()
            .setModelLocation(self.getOrDefault(self.modelPath))
            .setFeedDict({INPUT_NAME: tensor})
            .setFetchDict({fetched: OUTPUT_NAME})
            .setMiniBatchSize(self.getOrDefault(self.batchSize))
        )
        reject = F.col(f"{prepared}.reject")
        features = F.when(reject.isNull(), F.col(fetched).cast("array<float>")).otherwise(
            F.array_repeat(F.lit(0.0).cast("float"), dim)
        )
        return (
            onnx.transform(staged)
            .withColumn(
                result,
                F.struct(features.alias("features"), reject.alias("reject"), F.col(f"{prepared}.note").alias("note")),
            )
            .drop(prepared, tensor, fetched)
        )

    def write(self) -> MLWriter:
        return _FeaturizerWriter(self)

    @classmethod
    def read(cls) -> MLReader:
        return _FeaturizerReader(cls)


class _FeaturizerWriter(MLWriter):
    def __init__(self, instance: ImageFeaturizer) -> None:
        super().__init__()
        self.instance = instance

    def saveImpl(self, path: str) -> None:
        spark = self.sparkSession
        data = jvm_files.read_bytes(spark, self.instance.getOrDefault(self.instance.modelPath))
        params = {p.name: v for p, v in self.instance.extractParamMap().items()}
        params["modelPath"] = MODEL_FILE  # relative: resolved against the stage folder on load
        extra = {"modelSha256": hashlib.sha256(data).hexdigest()}  # checked on load
        DefaultParamsWriter.saveMetadata(self.instance, path, self.sc, extraMetadata=extra, paramMap=params)
        jvm_files.write_bytes(spark, f"{path.rstrip('/')}/{MODEL_FILE}", data)


class _FeaturizerReader(MLReader):
    def __init__(self, cls: type[ImageFeaturizer]) -> None:
        super().__init__()
        self.cls = cls

    def load(self, path: str) -> ImageFeaturizer:
        metadata = DefaultParamsReader.loadMetadata(path, self.sc)
        instance = self.cls()
        DefaultParamsReader.getAndSetParams(instance, metadata)
        instance._resetUid(metadata["uid"])
        network = f"{path.rstrip('/')}/{MODEL_FILE}"
        try:
            data = jvm_files.read_bytes(self.sparkSession, network)
        except Exception:
            raise ModelFileError(f"{network}: the saved model's network is missing or unreadable") from None
        expected = metadata.get("modelSha256")
        if expected and hashlib.sha256(data).hexdigest() != expected:
            raise ModelFileError(f"{network}: corrupted (its sha256 differs from the one recorded when it was saved)")
        instance._set(modelPath=network)
        return instance
