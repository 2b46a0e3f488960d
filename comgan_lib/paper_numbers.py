"""The paper's Tables 1-4 as printed (Sec. 4.3: Tables 1-3, FID and IS; Sec. 4.4: Table 4, IoU and
Dice; protocol in Sec. 4.1), transcribed in ``comgan_lib/paper_numbers.yaml``. No equations: this is
the paper's side of every comparison; ``comgan_lib.paper_tables`` puts our runs' numbers beside it.

Usage::

    from comgan_lib.paper_numbers import load_paper_numbers, paper_dataset

    paper = load_paper_numbers()
    paper.get("table4", "DS-ComGAN", "cub", "iou").value       # 60.7, as printed
    paper.get("table1", "DS-ComGAN", "cub", "is").std          # 0.47, the number after the ±
    paper_dataset("Stanford-Cars")                              # "stanford_cars"

Every printed cell is a ``PaperEntry`` that knows its table, row (method) and column (dataset,
metric); a cell the paper leaves empty has ``value`` None and ``missing`` (the paper's mark and
what it means). ``parse_paper_numbers`` checks the data file's shape and refuses a malformed one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

PAPER_TABLES = ("table1", "table2", "table3", "table4")
PAPER_FID_SAMPLES = 20_000  # generated samples per FID / IS in the paper (Sec. 4.1)


@dataclass(frozen=True)
class PaperEntry:
    """One printed cell: ``value`` (None where the paper leaves the cell empty) and, for IS,
    the ``std`` printed after the ±; ``missing`` says what the empty cell's mark means."""

    table: str
    method: str
    dataset: str
    metric: str
    value: float | None
    std: float | None = None
    missing: str | None = None

    def text(self) -> str | float:
        """The cell for a table: the number, or the paper's mark for an empty cell."""
        if self.value is None:
            return self.missing or "empty in the paper"
        return self.value


@dataclass(frozen=True)
class Column:
    key: str  # our data.kind name
    label: str
    printed: str
    group: str | None = None


@dataclass(frozen=True)
class PaperRow:
    table: str
    method: str
    key: str
    printed: str
    ref: int | None
    marks: tuple[str, ...]
    supervision: str | None
    derived: bool
    values: Mapping[tuple[str, str], PaperEntry]


@dataclass(frozen=True)
class PaperTable:
    name: str
    number: int
    title: str
    caption: str
    protocol: str
    metrics: tuple[str, ...]
    missing: str | None
    columns: tuple[Column, ...]
    rows: tuple[PaperRow, ...]

    def row(self, method: str) -> PaperRow:
        """A row by its method name as transcribed, its printed label or its key."""
        for r in self.rows:
            if method in (r.method, r.key, r.printed):
                return r
        raise KeyError(f"{self.name}: no row {method!r}; rows: {[r.method for r in self.rows]}")

    def column(self, dataset: str) -> Column:
        for c in self.columns:
            if c.key == dataset:
                return c
        raise KeyError(f"{self.name}: no column {dataset!r}")

    @property
    def datasets(self) -> tuple[str, ...]:
        return tuple(c.key for c in self.columns)


@dataclass(frozen=True)
class PaperNumbers:
    source: str
    tables: Mapping[str, PaperTable]

    def get(self, table: str, method: str, dataset: str, metric: str) -> PaperEntry:
        return self.tables[table].row(method).values[(dataset, metric)]

    def entries(self) -> Iterable[PaperEntry]:
        for t in self.tables.values():
            for r in t.rows:
                yield from r.values.values()

    @property
    def datasets(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for t in self.tables.values():
            seen.update(dict.fromkeys(t.datasets))
        return tuple(seen)

    def dataset_label(self, key: str) -> str:
        for t in self.tables.values():
            for c in t.columns:
                if c.key == key:
                    return c.label
        return key


@lru_cache(maxsize=1)
def load_paper_numbers() -> PaperNumbers:
    """The paper's Tables 1-4 from ``comgan_lib/paper_numbers.yaml``, checked for shape."""
    text = resources.files("comgan_lib").joinpath("paper_numbers.yaml").read_text("utf-8")
    return parse_paper_numbers(yaml.safe_load(text))


def parse_paper_numbers(raw: Mapping[str, Any]) -> PaperNumbers:
    tables = {}
    for name, t in raw["tables"].items():
        metrics = tuple(t["metrics"])
        columns = tuple(
            Column(c["key"], c["label"], c.get("printed", c["label"]), c.get("group"))
            for c in t["columns"]
        )
        keys = {c.key for c in columns}
        rows = []
        for r in t["rows"]:
            method = r["method"]
            if set(r["values"]) != keys:
                raise ValueError(
                    f"paper_numbers.yaml {name}/{method}: columns {sorted(r['values'])}, "
                    f"expected {sorted(keys)}"
                )
            values = {}
            for dataset, cell in r["values"].items():
                unknown = set(cell) - set(metrics) - {f"{m}_std" for m in metrics}
                if unknown or not set(metrics) <= set(cell):
                    raise ValueError(
                        f"paper_numbers.yaml {name}/{method}/{dataset}: keys {sorted(cell)}, "
                        f"expected {list(metrics)} (and optional *_std)"
                    )
                for metric in metrics:
                    value = cell[metric]
                    values[(dataset, metric)] = PaperEntry(
                        table=name,
                        method=method,
                        dataset=dataset,
                        metric=metric,
                        value=None if value is None else float(value),
                        std=cell.get(f"{metric}_std"),
                        missing=t.get("missing") if value is None else None,
                    )
            rows.append(
                PaperRow(
                    table=name,
                    method=method,
                    key=r.get("key", method),
                    printed=r.get("printed", method),
                    ref=r.get("ref"),
                    marks=tuple(r.get("marks", ())),
                    supervision=r.get("supervision"),
                    derived=bool(r.get("derived", False)),
                    values=values,
                )
            )
        tables[name] = PaperTable(
            name=name,
            number=int(t["number"]),
            title=t["title"],
            caption=" ".join(t["caption"].split()),
            protocol=" ".join(t["protocol"].split()),
            metrics=metrics,
            missing=t.get("missing"),
            columns=columns,
            rows=tuple(rows),
        )
    return PaperNumbers(source=" ".join(raw["source"].split()), tables=tables)


# Dataset names as the paper's columns know them.

_ALIASES = {
    "cub": "cub",
    "cub200": "cub",
    "cub2002011": "cub",
    "birds": "cub",
    "fs100": "fs100",
    "stanfordcars": "stanford_cars",
    "cars": "stanford_cars",
    "stanforddogs": "stanford_dogs",
    "dogs": "stanford_dogs",
    "flowers": "flowers",
    "flowers102": "flowers",
    "oxfordflowers": "flowers",
    "clevr6": "clevr6",
    "clevr": "clevr6",
}


def paper_dataset(name: str | None) -> str | None:
    """The paper dataset a name stands for ("Stanford-Cars", "stanford_cars", "cars"), or None."""
    if not name:
        return None
    return _ALIASES.get(re.sub(r"[^a-z0-9]", "", str(name).lower()))
