"""The paper's Tables 1-4 as data: the transcription in comgan_lib/paper_numbers.yaml, checked
against the paper's own claims, and the parser that refuses a malformed file."""

from __future__ import annotations

import pytest

from comgan_lib import paper_tables as pt
from comgan_lib.paper_numbers import load_paper_numbers, paper_dataset, parse_paper_numbers


@pytest.fixture(scope="module")
def paper():
    return load_paper_numbers()


def test_the_data_file_has_the_four_tables_with_every_row_and_column(paper):
    assert list(paper.tables) == ["table1", "table2", "table3", "table4"]
    shape = {name: (len(t.rows), t.datasets, t.metrics) for name, t in paper.tables.items()}
    assert shape["table1"] == (9, ("cub", "fs100", "stanford_cars"), ("fid", "is"))
    assert shape["table2"] == (5, ("cub",), ("fid", "is"))
    assert shape["table3"] == (4, ("stanford_dogs", "flowers", "clevr6"), ("fid", "is"))
    assert shape["table4"] == (
        10,
        ("cub", "stanford_dogs", "stanford_cars", "flowers", "clevr6"),
        ("iou", "dice"),
    )
    methods = [r.method for r in paper.tables["table4"].rows]
    assert methods[0] == "W-Net" and methods[-1] == "DS-ComGAN" and "PerturbGAN" in methods
    assert len(list(paper.entries())) == 9 * 6 + 5 * 2 + 4 * 6 + 10 * 10
    entry = paper.get("table3", "FineGAN", "flowers", "fid")
    assert (entry.table, entry.method, entry.dataset, entry.metric) == (
        "table3",
        "FineGAN",
        "flowers",
        "fid",
    )


def test_values_as_printed_in_the_paper(paper):
    get = paper.get
    assert get("table4", "DS-ComGAN", "cub", "iou").value == 60.7
    assert get("table4", "DS-ComGAN", "cub", "dice").value == 71.3
    assert get("table4", "DRC", "clevr6", "iou").value == 84.7
    assert get("table4", "IEM+SegNet", "flowers", "dice").value == 84.6
    assert get("table4", "DS-ComGAN", "flowers", "dice").value == 83.1
    is_ = get("table1", "DS-ComGAN", "cub", "is")
    assert (is_.value, is_.std) == (4.79, 0.47)
    assert get("table1", "DS-ComGAN", "cub", "fid").value == 16.26
    cars = get("table1", "SSC-GAN", "stanford_cars", "is")
    assert (cars.value, cars.std) == (3.10, 0.03)
    assert get("table1", "EnhancedTGAN", "stanford_cars", "fid").value == 105.20
    assert get("table3", "DS-ComGAN", "clevr6", "fid").value == 77.08
    assert get("table2", pt.ROW_SIMPLEGAN, "cub", "fid").value == 89.87
    assert get("table2", "+ L_info-based Reg.", "cub", "fid").value == 17.32


def test_empty_cells_are_null_with_the_papers_mark(paper):
    redo = paper.get("table4", "ReDO", "flowers", "dice")
    assert redo.value is None and redo.missing.startswith("- (not reported")
    assert paper.get("table4", "ReDO", "flowers", "iou").value == 76.4
    perturb = [paper.get("table4", "PerturbGAN", d, m).value for d, m in _cells("table4")]
    assert perturb.count(None) == 9 and perturb[0] == 38.0
    clevr = paper.get("table3", "SSC-GAN", "clevr6", "is")
    assert clevr.value is None and clevr.missing.startswith("\\ (not applicable")
    assert clevr.text().startswith("\\")


def _cells(table):
    t = load_paper_numbers().tables[table]
    return [(d, m) for d in t.datasets for m in t.metrics]


def test_the_transcription_agrees_with_the_papers_own_claims(paper):
    # Table 2's improvement is its baseline minus its last variant; its last row is Table 1's CUB.
    t2 = {r.key: r for r in paper.tables["table2"].rows}
    assert list(t2) == [*pt.TABLE2_ROWS, pt.ROW_IMPROVEMENT]
    first, last = t2[pt.ROW_SIMPLEGAN].values, t2[pt.ROW_DS_COMGAN].values
    improvement = t2[pt.ROW_IMPROVEMENT].values
    assert first[("cub", "fid")].value - last[("cub", "fid")].value == pytest.approx(
        improvement[("cub", "fid")].value
    )
    assert last[("cub", "is")].value - first[("cub", "is")].value == pytest.approx(
        improvement[("cub", "is")].value
    )
    for metric in ("fid", "is"):
        assert last[("cub", metric)].value == paper.get("table1", "DS-ComGAN", "cub", metric).value
    # Bold in the paper: DS-ComGAN has the best FID of Table 1 and the best IoU of Table 4
    # everywhere; its Dice is best everywhere but Flowers (IEM+SegNet).
    for dataset in paper.tables["table1"].datasets:
        fids = {r.method: r.values[(dataset, "fid")].value for r in paper.tables["table1"].rows}
        assert min(fids, key=fids.get) == "DS-ComGAN"
    t4 = paper.tables["table4"]
    for dataset in t4.datasets:
        for metric in ("iou", "dice"):
            scores = {r.method: r.values[(dataset, metric)].value or 0 for r in t4.rows}
            best = max(scores, key=scores.get)
            expected = "IEM+SegNet" if (dataset, metric) == ("flowers", "dice") else "DS-ComGAN"
            assert best == expected, (dataset, metric)


def test_a_malformed_data_file_is_refused():
    raw = {
        "source": "x",
        "tables": {
            "t": {
                "number": 1,
                "title": "t",
                "caption": "c",
                "protocol": "p",
                "metrics": ["fid"],
                "columns": [{"key": "cub", "label": "CUB"}],
                "rows": [{"method": "m", "values": {"cub": {"fdi": 1.0}}}],
            }
        },
    }
    with pytest.raises(ValueError, match="t/m/cub"):
        parse_paper_numbers(raw)


def test_paper_dataset_reads_the_names_people_use():
    assert paper_dataset("Stanford-Cars") == paper_dataset("cars") == "stanford_cars"
    assert paper_dataset("CUB_200_2011") == "cub" and paper_dataset("Oxford Flowers") == "flowers"
    assert paper_dataset("synthetic") is None and paper_dataset(None) is None
