# ComGAN workbook. Targets create the local virtual environment .venv on first use.
#   make reproduce                     whole workbook on the embedded default dataset
#   make test                          lint, notebook hygiene, test suite
#   make run PARAMS=params/<file>.yaml [SET="train.steps=200 ..."] [ONLY=00_data,...]
#   make lab                           JupyterLab on notebooks/
#   make strip                         remove outputs from the committed notebooks

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PARAMS ?= params/synthetic.yaml
SET ?=
ONLY ?=

RUN_ARGS := $(foreach s,$(SET),--set $(s)) $(if $(ONLY),--only $(ONLY),)

.PHONY: setup reproduce run test lint lab strip clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (comgan)" > /dev/null
	touch $(STAMP)

setup: $(STAMP)

reproduce: $(STAMP)
	$(BIN)/python -m comgan_lib.run params/synthetic.yaml

run: $(STAMP)
	$(BIN)/python -m comgan_lib.run $(PARAMS) $(RUN_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check comgan_lib tests
	$(BIN)/ruff format --check comgan_lib tests
	$(BIN)/python -m comgan_lib.notebook_hygiene check notebooks

test: lint
	$(BIN)/python -m pytest

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root,)

strip: $(STAMP)
	$(BIN)/python -m comgan_lib.notebook_hygiene strip notebooks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
