import pytest

from stcbench.reports.published import OPENSTL_ANCHORS, STC_TABLES, anchors_for


def test_all_paper_tables_present():
    assert set(STC_TABLES) == {"2", "3", "4", "5", "6", "7", "11"}


@pytest.mark.parametrize("table, row, column, value", [
    ("2", "STC-LIF", "mse", 47.0),
    ("2", "Vanilla LIF", "ssim", 0.640),
    ("2", "TCLIF", "mae", 257.9),
    ("3", "GLIF", "mse", 62.9),
    ("3", "STC-LIF", "ssim", 0.973),
    ("4", "STC-LIF", "frame4", 63.0),
    ("4", "LM-H", "frame1", 59.7),
    ("5", "TCLIF", "psnr40", 20.0),
    ("5", "STC-LIF", "ssim20", 0.822),
    ("6", "STC-LM-H", "MMNIST mse", 45.9),
    ("6", "STC-PLIF", "KTH psnr40", 22.32),
    ("6", "STC-LM-H", "TaxiBJ mse", 54.6),
    ("7", "STC-LIF w/o TC", "flops", 70.398),
    ("7", "STC-LIF", "params", 3.922),
    ("7", "STC-LIF w/o SC", "mse", 58.3),
    ("11", "STC-LIF, global convolution", "params", 13.138),
    ("11", "STC-LIF, only self-connection", "mae", 177.6),
])
def test_spot_values(table, row, column, value):
    assert STC_TABLES[table].row(row).values[column] == value


def test_every_row_has_every_column():
    for table in STC_TABLES.values():
        keys = {c.key for c in table.columns}
        for row in table.rows:
            assert set(row.values) == keys, (table.key, row.label)


def test_units_and_locations():
    taxibj_mse = STC_TABLES["3"].columns[0]
    assert taxibj_mse.scale == 100.0 and taxibj_mse.metric == "mse" and taxibj_mse.dataset == "taxibj"
    frame3 = STC_TABLES["4"].columns[2]
    assert (frame3.frame, frame3.scale) == (2, 100.0)
    long_ssim = STC_TABLES["5"].columns[2]
    assert (long_ssim.split, long_ssim.metric) == ("test_long", "ssim")
    assert STC_TABLES["6"].datasets == ("mmnist", "taxibj", "kth")
    params = STC_TABLES["7"].columns[2]
    assert params.split is None and params.scale == 1e-6


def test_row_options_for_ablations():
    assert STC_TABLES["11"].row("STC-LIF, global convolution").options == {"circuit_groups": 1}
    assert STC_TABLES["11"].row("STC-LIF, only self-connection").options == {"circuit_groups": "self"}
    assert STC_TABLES["7"].row("STC-LIF").options == {}


def test_openstl_convlstm_anchors():
    mmnist = anchors_for("mmnist", "convlstm")
    assert {a.epochs: a.values["mse"] for a in mmnist} == {200: 29.80, 2000: 22.41}
    (taxibj,) = anchors_for("taxibj", "convlstm")
    assert taxibj.values["mse"] == pytest.approx(33.58)      # OpenSTL prints 0.3358 unscaled
    (kth,) = anchors_for("kth", "convlstm")
    assert (kth.values["ssim"], kth.values["psnr"], kth.params_m) == (0.8977, 26.99, 14.9)
    assert all(a.source for a in OPENSTL_ANCHORS)
