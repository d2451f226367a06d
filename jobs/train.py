"""spark-submit entry point: featurize labelled images, train a classifier, evaluate, save.

    spark-submit jobs/train.py --conf conf/mnist_demo.toml [--flag value …]
    spark-submit jobs/train.py --dataset aerial --data ROOT   # <label>/ folders: the aerial recipe

Storage → image rows → CNN features → classifier → test predictions and metrics → storage.
The saved PipelineModel (``trainedmodels/<output_model_name>/``) holds every stage a scoring job
needs: the featurizer with its ONNX network, the label indexer, the classifier, the label
decoder and the reject mask. The run's ``metrics.json`` and test predictions go to
``runs/<run_id>/``. One JSON line on stdout sums the run up (jobs/workflows/train.py).
"""

from __future__ import annotations

import sys

from jobs import config
from jobs.workflows import command
from jobs.workflows.finetune import train_or_finetune
from jobs.workflows.train import JOB, train

__all__ = ["main", "parse_args", "train"]  # train: the workflow itself, for notebooks and tests


def parse_args(argv: list[str] | None = None) -> config.TrainConfig:
    return config.parse(config.TrainConfig, argv, __doc__)


def main(argv: list[str] | None = None) -> int:
    return command.main(JOB, parse_args, train_or_finetune, argv)


if __name__ == "__main__":
    sys.exit(main())
