"""Published numbers, transcribed as data (the STC-LIF paper and OpenSTL anchors).

Units follow the sources (metrics.md):
* Moving MNIST MSE / MAE: per-frame **sums** over the 64x64 pixels (not per-pixel means);
* TaxiBJ MSE is the per-frame sum **x100**; TaxiBJ MAE is the unscaled per-frame sum;
* SSIM uses data_range 2.0 (scikit-image <= 0.19 semantics); PSNR is the mean per-frame PSNR (dB);
* Parameters in millions, FLOPs in G multiply-accumulates (fvcore / thop counting).

Each `Column` names where our value lives in a run's metrics.json, so the same table
definition regenerates our numbers next to the published ones.
"""
from __future__ import annotations

from dataclasses import dataclass, field

STC = "Wang & Yu, ICML 2024 (STC-LIF), Table {n}"
OSTL = "OpenSTL model zoo (NeurIPS 2023 D&B), docs/en/model_zoos, March 2024 snapshot"

MMNIST_UNITS = "per-frame sum over 64x64 pixels, pixels in [0,1]"
TAXIBJ_UNITS = "per-frame sum over 2x32x32, x100"


@dataclass(frozen=True)
class Column:
    """One published quantity and where ours lives in metrics.json.

    `split` is the metrics.json block ("test", "test_long") or None for top-level keys
    ("params", "flops"); `frame` selects one entry of `per_frame[metric]`; our raw value is
    multiplied by `scale` to get the published unit."""

    key: str
    label: str
    dataset: str
    metric: str
    split: str | None = "test"
    scale: float = 1.0
    frame: int | None = None
    higher_is_better: bool = False
    decimals: int = 1
    units: str = ""


@dataclass(frozen=True)
class Row:
    """One published row: a cell (canonical registry name) and the cell options a run must have."""

    label: str
    cell: str
    values: dict[str, float]
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class PublishedTable:
    key: str
    title: str
    source: str
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    notes: str = ""

    @property
    def datasets(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.dataset for c in self.columns))

    def row(self, label: str) -> Row:
        for row in self.rows:
            if row.label == label:
                return row
        raise KeyError(f"table {self.key} has no row {label!r}")


# --- columns ---------------------------------------------------------------------------
def mmnist_cols(prefix: str = "") -> tuple[Column, ...]:
    return (
        Column(f"{prefix}mse", f"{prefix}MSE", "mmnist", "mse", units=MMNIST_UNITS),
        Column(f"{prefix}mae", f"{prefix}MAE", "mmnist", "mae", units=MMNIST_UNITS),
        Column(f"{prefix}ssim", f"{prefix}SSIM", "mmnist", "ssim", higher_is_better=True, decimals=3),
    )


def taxibj_cols(prefix: str = "") -> tuple[Column, ...]:
    return (
        Column(f"{prefix}mse", f"{prefix}MSE x100", "taxibj", "mse", scale=100.0, units=TAXIBJ_UNITS),
        Column(f"{prefix}mae", f"{prefix}MAE", "taxibj", "mae", units="per-frame sum over 2x32x32"),
        Column(f"{prefix}ssim", f"{prefix}SSIM", "taxibj", "ssim", higher_is_better=True, decimals=3),
    )


def kth_cols(prefix: str = "") -> tuple[Column, ...]:
    return (
        Column(f"{prefix}ssim20", f"{prefix}10->20 SSIM", "kth", "ssim", higher_is_better=True, decimals=3),
        Column(f"{prefix}psnr20", f"{prefix}10->20 PSNR", "kth", "psnr", higher_is_better=True, decimals=2,
               units="dB"),
        Column(f"{prefix}ssim40", f"{prefix}10->40 SSIM", "kth", "ssim", split="test_long",
               higher_is_better=True, decimals=3),
        Column(f"{prefix}psnr40", f"{prefix}10->40 PSNR", "kth", "psnr", split="test_long",
               higher_is_better=True, decimals=2, units="dB"),
    )


PARAMS = Column("params", "Params (M)", "mmnist", "params", split=None, scale=1e-6, decimals=3)
FLOPS = Column("flops", "FLOPs (G)", "mmnist", "flops", split=None, scale=1e-9, decimals=3,
               units="G multiply-accumulates for one 20-frame sequence (fvcore counting)")

BASELINE_LABELS = ("Vanilla LIF", "PLIF", "GLIF", "TCLIF", "LM-H", "STC-LIF")
BASELINE_CELLS = ("lif", "plif", "glif", "tclif", "lmh", "stclif")


def _rows(cols: tuple[Column, ...], values: dict[str, tuple[float, ...]], labels=BASELINE_LABELS,
          cells=BASELINE_CELLS) -> tuple[Row, ...]:
    return tuple(Row(label, cell, dict(zip((c.key for c in cols), values[label])))
                 for label, cell in zip(labels, cells))


# --- STC-LIF paper tables ------------------------------------------------------------------
TABLE2 = PublishedTable(
    "2", "Moving MNIST 10->10", STC.format(n=2), mmnist_cols(),
    _rows(mmnist_cols(), {
        "Vanilla LIF": (102.8, 246.2, 0.640), "PLIF": (99.2, 233.3, 0.691),
        "GLIF": (79.7, 225.3, 0.685), "TCLIF": (105.1, 257.9, 0.634),
        "LM-H": (93.2, 244.5, 0.661), "STC-LIF": (47.0, 136.4, 0.863),
    }),
    notes="MSE/MAE: per-frame sums over 4096 pixels; 500 epochs; best epoch selected on the test set.",
)

TABLE3 = PublishedTable(
    "3", "TaxiBJ 4->4", STC.format(n=3), taxibj_cols(),
    _rows(taxibj_cols(), {
        "Vanilla LIF": (70.4, 22.1, 0.966), "PLIF": (70.8, 21.9, 0.967),
        "GLIF": (62.9, 20.6, 0.971), "TCLIF": (59.2, 19.3, 0.973),
        "LM-H": (63.3, 20.1, 0.971), "STC-LIF": (56.4, 19.5, 0.973),
    }),
    notes="MSE x100 (per-frame sum); 200 epochs.",
)

TABLE4_COLS = tuple(Column(f"frame{i + 1}", f"Frame{i + 1}", "taxibj", "mse", scale=100.0, frame=i,
                           units=TAXIBJ_UNITS) for i in range(4))
TABLE4 = PublishedTable(
    "4", "TaxiBJ per-frame MSE x100", STC.format(n=4), TABLE4_COLS,
    _rows(TABLE4_COLS, {
        "Vanilla LIF": (66.7, 68.1, 68.5, 78.5), "PLIF": (66.8, 66.9, 71.5, 78.0),
        "GLIF": (55.3, 60.5, 65.5, 78.4), "TCLIF": (49.0, 56.8, 62.2, 69.2),
        "LM-H": (59.7, 62.5, 64.4, 67.6), "STC-LIF": (48.1, 54.8, 58.9, 63.0),
    }),
)

TABLE5 = PublishedTable(
    "5", "KTH (trained 10->20; 10->40 by extended rollout)", STC.format(n=5), kth_cols(),
    _rows(kth_cols(), {
        "Vanilla LIF": (0.767, 21.62, 0.754, 20.89), "PLIF": (0.796, 21.79, 0.785, 21.17),
        "GLIF": (0.805, 22.41, 0.795, 21.90), "TCLIF": (0.786, 22.08, 0.746, 20.0),
        "LM-H": (0.710, 17.13, 0.708, 16.91), "STC-LIF": (0.822, 23.14, 0.815, 22.63),
    }),
    notes="10->40 is the 10->20 model rolled out for 40 frames (metrics.json 'test_long').",
)

TABLE6_COLS = mmnist_cols("MMNIST ") + taxibj_cols("TaxiBJ ") + kth_cols("KTH ")
TABLE6 = PublishedTable(
    "6", "Enhanced models (spatio-temporal circuit around PLIF and LM-H)", STC.format(n=6), TABLE6_COLS,
    _rows(TABLE6_COLS, {
        "PLIF": (99.2, 233.3, 0.691, 70.8, 21.9, 0.967, 0.796, 21.79, 0.785, 21.17),
        "STC-PLIF": (48.4, 139.4, 0.860, 58.6, 20.0, 0.972, 0.819, 23.02, 0.806, 22.32),
        "LM-H": (93.2, 244.5, 0.661, 63.3, 20.1, 0.971, 0.710, 17.13, 0.708, 16.91),
        "STC-LM-H": (45.9, 125.8, 0.881, 54.6, 19.3, 0.975, 0.827, 23.16, 0.818, 22.61),
    }, labels=("PLIF", "STC-PLIF", "LM-H", "STC-LM-H"), cells=("plif", "stcplif", "lmh", "stclmh")),
)

TABLE7_COLS = mmnist_cols()[:2] + (PARAMS, FLOPS)
TABLE7 = PublishedTable(
    "7", "Ablation of the spatio-temporal circuit (Moving MNIST)", STC.format(n=7), TABLE7_COLS,
    (
        Row("Vanilla LIF (Baseline)", "lif", {"mse": 102.8, "mae": 246.2, "params": 3.305, "flops": 64.346}),
        Row("STC-LIF w/o TC", "stclif", {"mse": 62.5, "mae": 168.1, "params": 3.614, "flops": 70.398},
            options={"temporal_circuit": False}),
        Row("STC-LIF w/o SC", "stclif", {"mse": 58.3, "mae": 163.8, "params": 3.614, "flops": 70.398},
            options={"spatial_circuit": False}),
        Row("STC-LIF", "stclif", {"mse": 47.0, "mae": 136.4, "params": 3.922, "flops": 76.449}),
    ),
    notes="TC = temporal circuit (history gate conv_h), SC = spatial circuit (input gate conv_v). "
          "FLOPs are multiply-accumulates for one sequence (19 steps, batch 1).",
)

TABLE11_COLS = mmnist_cols()[:2] + (PARAMS,)
TABLE11 = PublishedTable(
    "11", "Circuit connectivity (Moving MNIST)", STC.format(n=11), TABLE11_COLS,
    (
        Row("Vanilla LIF", "lif", {"mse": 102.8, "mae": 246.2, "params": 3.305}),
        Row("STC-LIF, only self-connection", "stclif", {"mse": 64.5, "mae": 177.6, "params": 6.451},
            options={"circuit_groups": "self"}),
        Row("STC-LIF, group convolution (groups=16)", "stclif", {"mse": 47.0, "mae": 136.4, "params": 3.922},
            options={"circuit_groups": 16}),
        Row("STC-LIF, global convolution", "stclif", {"mse": 38.5, "mae": 108.1, "params": 13.138},
            options={"circuit_groups": 1}),
    ),
    notes="13.138M = LIF + 6 dense 256x256x5x5 circuit convs with GroupNorm (cell option circuit_groups: 1). "
          "6.451M for 'only self-connection' = LIF + 6 x 524,288: one weight and one bias per neuron "
          "(256x32x32) per gate, no GroupNorm (cell option circuit_groups: self, 6,450,688 parameters; "
          "circuit_groups: self_channel is a per-channel 1x1 weight with GroupNorm, 3.310M).",
)

STC_TABLES: dict[str, PublishedTable] = {t.key: t for t in
                                         (TABLE2, TABLE3, TABLE4, TABLE5, TABLE6, TABLE7, TABLE11)}
TABLE_KEYS = tuple(STC_TABLES)

# --- OpenSTL non-spiking anchors (ConvLSTM rows and a few others) ------------------------------
ANCHOR_COLS = {
    "mmnist": (Column("mse", "MSE", "mmnist", "mse", units=MMNIST_UNITS),
               Column("mae", "MAE", "mmnist", "mae"),
               Column("ssim", "SSIM", "mmnist", "ssim", higher_is_better=True, decimals=4),
               Column("psnr", "PSNR", "mmnist", "psnr", higher_is_better=True, decimals=2)),
    "taxibj": (Column("mse", "MSE x100", "taxibj", "mse", scale=100.0, units=TAXIBJ_UNITS),
               Column("mae", "MAE", "taxibj", "mae", decimals=2),
               Column("ssim", "SSIM", "taxibj", "ssim", higher_is_better=True, decimals=4),
               Column("psnr", "PSNR", "taxibj", "psnr", higher_is_better=True, decimals=2)),
    "kth": (Column("mse", "MSE", "kth", "mse", decimals=2),
            Column("mae", "MAE", "kth", "mae"),
            Column("ssim", "SSIM", "kth", "ssim", higher_is_better=True, decimals=4),
            Column("psnr", "PSNR", "kth", "psnr", higher_is_better=True, decimals=2)),
}


@dataclass(frozen=True)
class Anchor:
    """An OpenSTL (non-spiking) result; `values` use the keys of ANCHOR_COLS[dataset]."""

    method: str
    cell: str | None          # our cell name when we implement the method
    dataset: str
    epochs: int
    params_m: float
    flops_g: float
    values: dict[str, float]
    source: str = OSTL


OPENSTL_ANCHORS: tuple[Anchor, ...] = (
    Anchor("ConvLSTM-S", "convlstm", "mmnist", 200, 15.0, 56.8,
           {"mse": 29.80, "mae": 90.64, "ssim": 0.9288, "psnr": 22.10}),
    Anchor("ConvLSTM-S", "convlstm", "mmnist", 2000, 15.0, 56.8,
           {"mse": 22.41, "mae": 73.07, "ssim": 0.9480, "psnr": 23.54}),
    Anchor("PredRNN", None, "mmnist", 200, 23.8, 116.0,
           {"mse": 23.97, "mae": 72.82, "ssim": 0.9462, "psnr": 23.28}),
    Anchor("PhyDNet", None, "mmnist", 200, 3.1, 15.3,
           {"mse": 28.19, "mae": 78.64, "ssim": 0.9374, "psnr": 22.62}),
    Anchor("TAU", None, "mmnist", 200, 44.7, 16.0,
           {"mse": 24.60, "mae": 71.93, "ssim": 0.9454, "psnr": 23.19}),
    # TaxiBJ: OpenSTL prints the unscaled per-frame-sum MSE (0.3358); stored x100 here.
    Anchor("ConvLSTM-S", "convlstm", "taxibj", 50, 14.98, 20.74,
           {"mse": 33.58, "mae": 15.32, "ssim": 0.9836, "psnr": 39.45}),
    Anchor("PredRNN", None, "taxibj", 50, 23.66, 42.40,
           {"mse": 31.94, "mae": 15.31, "ssim": 0.9838, "psnr": 39.51}),
    Anchor("TAU", None, "taxibj", 50, 9.55, 2.49,
           {"mse": 31.08, "mae": 14.93, "ssim": 0.9848, "psnr": 39.74}),
    Anchor("ConvLSTM-S", "convlstm", "kth", 100, 14.9, 1368.0,
           {"mse": 47.65, "mae": 445.5, "ssim": 0.8977, "psnr": 26.99}),
    Anchor("PredRNN", None, "kth", 100, 23.6, 2800.0,
           {"mse": 41.07, "mae": 380.6, "ssim": 0.9097, "psnr": 27.95}),
    Anchor("TAU", None, "kth", 100, 15.0, 73.8,
           {"mse": 45.32, "mae": 421.7, "ssim": 0.9086, "psnr": 27.10}),
)


def anchors_for(dataset: str, cell: str | None = None) -> list[Anchor]:
    return [a for a in OPENSTL_ANCHORS if a.dataset == dataset and (cell is None or a.cell == cell)]
