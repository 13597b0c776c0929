"""The core's tables: one row per zoo model or stage, and the command line's text made of the same rows."""

from __future__ import annotations

from regnet_explore.regnet.design import RegNetStages, generate_stages
from regnet_explore.regnet.report import stage_rows, stages_report, zoo_report, zoo_rows
from regnet_explore.regnet.zoo import ZOO, zoo_params


def test_zoo_rows_and_report():
    rows = zoo_rows()
    assert [r["name"] for r in rows] == list(ZOO) and all(r["matches_pycls"] for r in rows)
    assert [r["name"] for r in zoo_rows("regnety")] == [n for n in ZOO if n.startswith("RegNetY")]
    lines = zoo_report("RegNetX").splitlines()
    assert len(lines) == 2 + 12 and set(lines[1]) == {"-"}
    assert lines[3] == ("RegNetX-400MF   22   24   24.48  2.54   16  [32, 64, 160, 384]       [1, 2, 7, 12]    "
                        "0.398    5.158   3.14  = zoo")


def test_stage_rows_and_report():
    st = generate_stages(zoo_params("RegNetX-400MF"))
    rows = stage_rows(st)
    assert [r["blocks"] for r in rows] == ["0", "1-2", "3-9", "10-21"]
    assert [r["quantized_w"] for r in rows] == [24, 64, 152, 392] and [r["width"] for r in rows] == [32, 64, 160, 384]
    assert stages_report(st).splitlines()[3] == "  3      160      7       16      10         160"
    explicit = stage_rows(RegNetStages((64, 128), (1, 2), (16, 16), (1.0, 1.0)))
    assert [r["quantized_w"] for r in explicit] == [None, None]
