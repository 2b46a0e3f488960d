"""Keep committed notebooks clean: no outputs, no execution counts, no run metadata.

Usage::

    python -m comgan_lib.notebook_hygiene check notebooks   # exit 1 listing dirty notebooks
    python -m comgan_lib.notebook_hygiene strip notebooks   # clean them in place
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

_RUN_METADATA = ("papermill", "execution", "widgets")


def dirty_reasons(nb) -> list[str]:
    """Why a notebook is not clean (empty list when it is)."""
    reasons = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            reasons.append(f"cell {i} has outputs")
        if cell.get("execution_count") is not None:
            reasons.append(f"cell {i} has an execution count")
        if any(k in cell.metadata for k in _RUN_METADATA):
            reasons.append(f"cell {i} has run metadata")
    if any(k in nb.metadata for k in _RUN_METADATA):
        reasons.append("notebook has run metadata")
    return reasons


def strip(nb):
    """Remove outputs, execution counts and run metadata, in place; returns the notebook."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        for key in _RUN_METADATA:
            cell.metadata.pop(key, None)
    for key in _RUN_METADATA:
        nb.metadata.pop(key, None)
    return nb


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] not in ("check", "strip"):
        print(__doc__.strip().splitlines()[-2].strip(), file=sys.stderr)
        print("usage: python -m comgan_lib.notebook_hygiene {check,strip} FOLDER", file=sys.stderr)
        return 2
    action, folder = argv
    paths = sorted(Path(folder).glob("*.ipynb"))
    dirty = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        reasons = dirty_reasons(nb)
        if not reasons:
            continue
        if action == "strip":
            nbformat.write(strip(nb), path)
            print(f"stripped {path}")
        else:
            dirty.append(f"{path}: {'; '.join(reasons[:3])}")
    if dirty:
        print("notebooks carry outputs (run `make strip`):\n  " + "\n  ".join(dirty))
        return 1
    print(f"{len(paths)} notebooks clean" if action == "check" else "done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
