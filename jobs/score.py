"""spark-submit entry point: batch-score a tile set with a saved model.

    spark-submit jobs/score.py --output_model_name aid_demo --tiles /data/new_tiles --top_k 3
    spark-submit jobs/score.py --output_model_name aid_demo --scenes '/data/naip/2020/*.tif'

Storage → tile rows → saved PipelineModel → predictions → storage. Executors write their own
partitions of ``predictions/<output_model_name>/<run_id>/`` as Parquet, one row per tile: see
:mod:`jobs.predictions.tables`, plus ``tile`` (file name), ``top_k`` (labels with probabilities),
``model``, ``model_version`` (the training run) and ``run_id``; ``_SUCCESS``, written last,
says the run is complete. No prediction passes through the driver.

For schedules: ``--incremental`` scores only tiles that no completed run of this model has
scored (an interrupted run is simply run again); a lock file ``predictions/<model>/_LOCK``
keeps two runs from overlapping (exit code 3 while another holds it); exit codes are 0 done,
2 bad input, 3 locked, 1 anything else. ``--smooth 3x3`` adds ``smoothed_label`` (see
:mod:`jobs.predictions.smoothing`).

Under Spark Connect (``SPARK_REMOTE=sc://host:15002``), tiles and scenes are scored with the
model rebuilt from its saved files (:mod:`jobs.classifiers.connect`); the same tables and maps come out.

``--scenes URI`` scores georeferenced scenes instead (GeoTIFF/COG, any CRS): windows cut on
the executors, one row per window in the same table (plus ``scene_id``, ``row``, ``col``),
and land-use maps per scene under ``maps/<model>/<run_id>/``; see :mod:`jobs.workflows.score_scenes`.
"""

from __future__ import annotations

import sys

from jobs import config
from jobs.workflows import command
from jobs.workflows.score import JOB, score


def parse_args(argv: list[str] | None = None) -> config.ScoreConfig:
    return config.parse(config.ScoreConfig, argv, __doc__)


def main(argv: list[str] | None = None) -> int:
    return command.main(JOB, parse_args, score, argv)


if __name__ == "__main__":
    sys.exit(main())
