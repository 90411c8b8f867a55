# 两条命令 / two commands:  make lab  (安装并打开课程的第一课 0.1)   make test  (安装并运行全部测试)
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install lab test lint bench clean notebooks

# torch's pin, read from requirements.txt (the one place it is written).
TORCH_PIN := $(shell grep -E '^torch==' requirements.txt)
# On Linux, PyPI's torch is the CUDA build (several GB of nvidia-* wheels). PyTorch's own CPU
# wheel index, as pytorch.org documents it, has the ~190 MB CPU build. For a CUDA build:
#   make install TORCH_INDEX=https://download.pytorch.org/whl/cu128
# Behind a mirror: make install PIP_INDEX_URL=<mirror>/simple (pip reads it from the environment;
# make exports command-line variables to its recipes) and TORCH_INDEX=<the mirror's torch CPU index>.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu

# A venv with the pinned requirements; redone when requirements.txt or pyproject.toml change.
# Linux: torch first, from TORCH_INDEX; where that index cannot be reached (offline mirror,
# firewall) pip fails fast and the next line installs torch from the usual index instead.
# The requirements line then finds torch already satisfied (2.13.0+cpu satisfies ==2.13.0).
# The Python check comes first, so that a too-old Python is never reported as a network problem.
$(STAMP): requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "❌ 找不到 $(PYTHON)：请先安装 Python 3.11 或更新的版本（见 README），或用 make lab PYTHON=python3.12 指定。"; exit 1; }
	@$(PYTHON) diy/classroom/python_support.py
	$(PYTHON) -m venv $(VENV)
ifeq ($(shell uname -s),Linux)
	$(BIN)/python -m pip install --quiet --timeout 10 --retries 0 \
		--index-url $(TORCH_INDEX) "$(TORCH_PIN)" \
	|| echo "提示：没能从 $(TORCH_INDEX) 安装 $(TORCH_PIN)（连不上，或那里没有这个 Python / 平台的文件），改从默认的包索引安装（Linux 上是约 5 GB 的 CUDA 版，能用，只是大；见 README「安装的大小与 torch 的来源」）"
endif
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $(STAMP)

install: $(STAMP)

# Opens the course's first lesson (the first entry of the registry, diy/classroom/course.py).
# make lab BACKBONE=path/to/DIYModel.py[:Class]: the whole course on the learner's own backbone
# (DIY_BACKBONE, absolute so that every notebook's folder finds it), checked against the
# contract first (python -m diy.classroom.doctor --backbone; a required item that fails stops here),
# opened at step 1's first lesson: with a backbone of one's own, step 0 is done.
# The path made absolute by hand: $(abspath) splits a path with spaces into words. As given when
# it starts with / or ~ (the course expands ~), else under the folder make runs in.
BACKBONE_PATH = $(if $(filter /% ~%,$(firstword $(BACKBONE))),$(BACKBONE),$(CURDIR)/$(BACKBONE))
BACKBONE_ENV = $(if $(BACKBONE),DIY_BACKBONE="$(BACKBONE_PATH)")
lab: $(STAMP)
	$(if $(BACKBONE),$(BIN)/python -m diy.classroom.doctor --backbone "$(BACKBONE_PATH)")
	$(BACKBONE_ENV) $(BIN)/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) \
		--LabApp.default_url=/lab/tree/notebooks/$$($(BIN)/python -m diy.classroom.course --first $(if $(BACKBONE),1)).ipynb

# Lint, then unit tests and every notebook under strict nbval (options in pyproject.toml).
# pytest exits 5 when it collected no test, and make treats any non-zero exit as a failure.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_vs_transformers.py
	$(BIN)/python benchmarks/bench_training.py
	$(BIN)/python benchmarks/bench_generation.py
	$(BIN)/python benchmarks/bench_pretrain.py

clean:
	rm -rf $(VENV)

# Course authors: rebuild notebooks/ and solutions/ from tools/lessons/ (fresh kernels, outputs saved).
notebooks: $(STAMP)
	$(BIN)/python -m tools.notebook_builder
