# Two commands do everything on a fresh machine: `make train` and `make test`.
# Both start with `install`, which creates .venv and reuses it while the install is current.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Runs and outputs of the main job (git-ignored).
RUNS := runs

.PHONY: install train test test-sync test-notebooks test-notebooks-other-cpu notebooks test-pytest bench clean-notebooks repro app serve image

install: $(STAMP)

# Re-installs only when setup.py or settings.ini changed since the last install.
$(STAMP): setup.py settings.ini
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e ".[all,dev]"
	touch $(STAMP)

# The main job (the CNN on the built-in dataset), then the real-music model (the feature MLP, and the pretrained musicnn
# tagger whose weights are fetched once from PyPI's musicnn wheel), all exported to ONNX in models/; the real-music
# model is registered in MLflow's local registry as genre-classifier, for `make serve`. The notebook's output (one line
# per epoch) streams to the terminal as it runs.
train: install
	mkdir -p $(RUNS) models
	$(BIN)/papermill nbs/03_train.ipynb $(RUNS)/03_train.ipynb -p model resnet18 --no-progress-bar --stdout-file /dev/stdout
	$(BIN)/pipeline export --model resnet18 --output models/resnet18.onnx
	$(BIN)/pipeline train-using-audio-features
	$(BIN)/pipeline export --model feature_mlp --output models/gtzan_features_mlp.onnx
	$(BIN)/pipeline build-real-music-model --models_dir models
	$(BIN)/pipeline register-model

test: install test-sync test-notebooks test-pytest

# The package must be what nbdev_export makes of the notebooks, and the notebooks must be clean.
test-sync: install
	$(BIN)/python -m pytest -q tests/test_sync.py

# Every notebook executed (cells flagged `slow` left out, as nbdev_test does) and its outputs compared with the committed ones.
test-notebooks: install
	$(BIN)/python tests/notebooks.py check

# The same check with another CPU's arithmetic, before saving notebooks: outputs saved on one CPU must hold on the others
# (CI machines differ). torch limited to AVX2 with one thread, then to no vector unit at all with two: on an AVX-512 or AMX
# machine the first computes as an AVX2-only one does, and on an AVX2-only machine the second still computes otherwise.
test-notebooks-other-cpu: install
	ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 OMP_NUM_THREADS=1 $(BIN)/python tests/notebooks.py check
	ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 OMP_NUM_THREADS=2 $(BIN)/python tests/notebooks.py check

# After changing code: export, execute every notebook and save its outputs (tables, figures) into it, clean; then commit.
notebooks: install
	$(BIN)/nbdev_export
	$(BIN)/python tests/notebooks.py save

test-pytest: install
	$(BIN)/python -m pytest -q tests --ignore=tests/test_sync.py

# Export and clean after editing notebooks, before committing.
clean-notebooks: install
	$(BIN)/nbdev_export && $(BIN)/nbdev_clean

# The DVC pipeline (dvc.yaml, params.yaml): re-run what is out of date, then show its metrics. Its stages call
# `pipeline` and `papermill`, so .venv/bin goes first on PATH.
repro: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro
	$(BIN)/dvc metrics show

# The web demo on http://127.0.0.1:7860 (after `make train`), and the registered model over HTTP on 127.0.0.1:5001.
app: install
	$(BIN)/pipeline app

serve: install
	$(BIN)/pipeline serve

# The container images (Dockerfile; README.md, "The container"): predict (inference) and dl_pipelines (training), with
# docker where its daemon answers, else podman, and a stand-in for python:3.11-slim where it cannot be pulled. The AWS
# files in ~/.aws, where there are any, are the build's secrets for `dvc pull`. Each build prints its time and size.
IMAGE ?= genre-classification
comma := ,
AWS_SECRETS := $(foreach f,config credentials,$(if $(wildcard $(HOME)/.aws/$(f)),--secret id=aws_$(f)$(comma)src=$(HOME)/.aws/$(f)))

image:
	.ci/image build predict $(IMAGE):predict
	.ci/image build dl_pipelines $(IMAGE):dl_pipelines $(AWS_SECRETS)

# Speed and accuracy figures (printed, not asserted; tests/test_benchmarks.py runs each at a tiny size): about 25 minutes on 2 cores.
# On a GPU machine, benchmarks/gpu.py (about 5 minutes) prints the GPU tables of README's Performance section.
bench: install
	$(BIN)/python benchmarks/data_steps.py
	$(BIN)/python benchmarks/features.py
	$(BIN)/python benchmarks/training.py
	$(BIN)/python benchmarks/main_job.py
	$(BIN)/python benchmarks/predict.py
	$(BIN)/python benchmarks/predict_command.py
	$(BIN)/python benchmarks/batch.py
	$(BIN)/python benchmarks/serve.py
	$(BIN)/python benchmarks/own_labels.py
