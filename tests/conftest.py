"""Shared test set-up: keep Jupyter, IPython, matplotlib and torch caches out of the home folder.

The variables are set before any test runs, so kernels started by papermill inherit them.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_CACHE_ROOT = Path(tempfile.mkdtemp(prefix="comgan-test-home-"))
CACHE_VARIABLES = {
    "JUPYTER_CONFIG_DIR": "jupyter-config",
    "JUPYTER_RUNTIME_DIR": "jupyter-runtime",
    "JUPYTER_DATA_DIR": "jupyter-data",
    "IPYTHONDIR": "ipython",
    "MPLCONFIGDIR": "matplotlib",
    "TORCH_HOME": "torch",
    "XDG_CACHE_HOME": "cache",
}
for _name, _sub in CACHE_VARIABLES.items():
    os.environ[_name] = str(_CACHE_ROOT / _sub)
    (_CACHE_ROOT / _sub).mkdir(parents=True, exist_ok=True)
os.environ["JUPYTER_PLATFORM_DIRS"] = "1"  # silences a deprecation warning of jupyter_core


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def cache_root() -> Path:
    return _CACHE_ROOT
