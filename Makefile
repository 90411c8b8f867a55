# 两条命令 / two commands:  make lab  (安装并打开课程 1.1)   make test  (安装并运行全部测试)
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install lab test lint bench clean notebooks

# A venv with the pinned requirements; redone when requirements.txt or pyproject.toml change.
$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $(STAMP)

install: $(STAMP)

lab: $(STAMP)
	$(BIN)/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) \
		--LabApp.default_url=/lab/tree/notebooks/step1_1_lm_head.ipynb

# Lint, then unit tests and every notebook under strict nbval (options in pyproject.toml).
# pytest exits 5 when it collected no test, and make treats any non-zero exit as a failure.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_vs_transformers.py

clean:
	rm -rf $(VENV)

# Course authors: rebuild notebooks/ and solutions/ from tools/lessons/ (fresh kernels, outputs saved).
notebooks: $(STAMP)
	$(BIN)/python -m tools.notebook_builder
