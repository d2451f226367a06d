"""spark-submit entry point: fine-tune a zoo backbone with TorchDistributor, then train as jobs/train.py does.

    spark-submit jobs/finetune.py --data ROOT [--epochs 15 --num_processes 2 --use_gpu …]

Names of the labelled images are listed and split on Spark exactly as ``jobs/train.py`` splits
them (same seed, same split). ``num_processes`` torch processes (DDP: gloo on CPU, NCCL on GPU)
are started by Spark's own ``TorchDistributor``, on the driver's machine under a ``local``
master and as barrier tasks on the executors otherwise; each reads its own shard of the
training images from the data root. The epoch with the best validation accuracy is kept,
exported to ONNX like a zoo network (its model card says how it was made), and becomes the
featurizer of an ordinary train run: the saved PipelineModel, scoring, scene maps and the run
history treat it like any other.
"""

from __future__ import annotations

import sys

from jobs import config
from jobs.workflows import command
from jobs.workflows.finetune import JOB, finetune


def parse_args(argv: list[str] | None = None) -> config.FinetuneConfig:
    return config.parse(config.FinetuneConfig, argv, __doc__)


def main(argv: list[str] | None = None) -> int:
    return command.main(JOB, parse_args, finetune, argv)


if __name__ == "__main__":
    sys.exit(main())
