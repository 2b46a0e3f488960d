"""The manifest's machine description: CPU model and ISA, to compare timings across hosts."""

import torch

from comgan_lib import runtime


def test_cpu_model_name_reads_the_first_model_line(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nvendor_id\t: X\nmodel name\t: Test CPU 9000\nmodel name\t: other\n"
    )
    assert runtime.cpu_model_name(info) == "Test CPU 9000"


def test_cpu_model_name_without_cpuinfo_is_none(tmp_path):
    name = runtime.cpu_model_name(tmp_path / "missing")
    assert name is None


def test_cpu_description_names_model_isa_cores_and_threads():
    text = runtime.device_description(torch.device("cpu"))
    assert text.startswith("cpu: ")
    assert runtime.cpu_capability() in text
    assert f"{torch.get_num_threads()} torch threads" in text
    model = runtime.cpu_model_name()
    if model is not None:
        assert model in text
