# Run `make help` for the targets. Offline? Set VGG16_IMAGENET_WEIGHTS and MOBILENETV2_IMAGENET_WEIGHTS first (README).
.DEFAULT_GOAL := help
VENV := .venv
BIN := $(VENV)/bin
TENSORFLOW := $(if $(shell command -v nvidia-smi 2>/dev/null),tensorflow[and-cuda]==2.21.0,tensorflow-cpu==2.21.0)
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: help setup setup-extras demo repro report test lint predict export benchmark clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

$(BIN)/dvc: requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt "$(TENSORFLOW)"
	$(BIN)/pip install -q --no-deps -e .
	touch $@

setup: $(BIN)/dvc ## Create .venv with everything installed (TensorFlow for the GPU when there is one)

setup-extras: setup ## Add the optional engines (OpenVINO with NNCF for int8, ONNX Runtime), the Ray runner and ONNX export
	$(BIN)/pip install -q -r requirements-extras.txt

demo: setup ## Set up, then run the whole pipeline on the bundled digits (1,797 real scans) in demo/ and print the report
	python -m pipeline.demo demo
	@cat demo/reports/report.md

repro: setup ## Rebuild whatever params.yaml or the code changed (dvc repro)
	dvc repro

report: repro ## Bring everything up to date, print reports/report.md and where its one-page HTML is
	@cat reports/report.md
	@echo "The report as one page, figures included: $(abspath reports/report.html)"

test: setup ## Run the test suite (real-data tests need VGG16_IMAGENET_WEIGHTS and PIPELINE_TEST_DATASETS)
	python -m pytest -q -p no:cacheprovider

lint: setup ## Check the code with ruff (its settings: pyproject.toml)
	ruff check pipeline tests benchmarks

predict: setup ## Label images with the report's chosen row: make predict IMAGES=folder_or_files [MODEL=models/x.model]
	python -m pipeline.predict $(IMAGES) $(if $(MODEL),--model $(MODEL))

# What exporting needs of the extras (not OpenVINO or Ray), at their tested versions
ONNX_EXPORT = $(shell grep -oE '^(onnx|onnxruntime|tf2onnx|skl2onnx)==[^ ]+' requirements-extras.txt)

export: setup ## Write the report's chosen row as one ONNX file: make export [OUT=models/chosen.onnx]
	$(BIN)/pip install -q $(ONNX_EXPORT)
	python -m pipeline.export $(if $(OUT),--out $(OUT))

benchmark: setup ## Benchmark datasets by path: make benchmark DATASETS="dir1 dir2" (hours on a CPU; not a test)
	python -m pipeline.benchmark $(DATASETS)

# What the stages write (pipeline/paths.py), and `make demo`'s project. In a git checkout `clean` leaves
# whatever git tracks: metrics and predictions a project commits for `dvc metrics diff`, as DVC suggests.
OUTPUTS := data/manifest.csv data/skipped.csv data/duplicates.csv features cache models results reports demo

clean: ## Remove the pipeline's outputs that git does not track (never your images)
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then git clean -fdx -- $(OUTPUTS); else rm -rf $(OUTPUTS); fi
