"""Embedded TaxiBJ: a synthetic city traffic-flow simulator written as the published `dataset.npz`.

A 32x32 city grid with residential districts (periphery) and business districts (centre).
Every 30-minute slot holds two maps: inflow and outflow (taxi counts). On weekdays the
morning peak sends flow out of residential and into business cells, the evening peak the
reverse; a commuter hotspot travels between the districts during the peaks, main roads carry
through traffic, weekends have one broad midday peak, every day has a random demand level,
and counts are Poisson noisy. Values are min-max scaled to [-1, 1] over the whole series and
cut into chronological sliding windows of 4 input + 4 target slots (stride 1).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stcbench.data.taxibj import FILE

from .ranges import Allowed

SLOTS_PER_DAY = 48
GRID = 32


@dataclass
class TaxiBJParams:
    train_days: int = 28
    test_days: int = 7
    peak_count: float = 300.0      # typical flow of a busy cell at rush hour


PRESETS = {"small": {}, "medium": {"train_days": 140, "test_days": 28}}
RANGES = {
    "train_days": Allowed(2, None, "days of training slots; fewer leave no validation windows"),
    "test_days": Allowed(1, None, "days of test slots"),
    "peak_count": Allowed(1, 1e6, "taxis in a busy cell at rush hour"),
}


def param_ranges(params: TaxiBJParams) -> dict[str, Allowed]:
    return RANGES


def gaussian_blobs(rng: np.random.Generator, count: int, centre_range: tuple[float, float],
                   width_range: tuple[float, float], periphery: bool) -> tuple[np.ndarray, np.ndarray]:
    """Sum of `count` Gaussian blobs on the grid and the blobs' centres."""
    yy, xx = np.mgrid[0:GRID, 0:GRID].astype(np.float64)
    total = np.zeros((GRID, GRID))
    centres = []
    for _ in range(count):
        if periphery:
            angle = rng.uniform(0, 2 * np.pi)
            radius = rng.uniform(*centre_range)
            cy, cx = GRID / 2 + radius * np.sin(angle), GRID / 2 + radius * np.cos(angle)
        else:
            cy, cx = GRID / 2 + rng.uniform(-1, 1, 2) * centre_range[1]
        width = rng.uniform(*width_range)
        total += rng.uniform(0.6, 1.0) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * width ** 2))
        centres.append((cy, cx))
    return total / total.max(), np.asarray(centres)


def road_map() -> np.ndarray:
    """Main roads: a grid of avenues every 8 cells and a ring road."""
    roads = np.zeros((GRID, GRID))
    roads[4::8, :] += 1.0
    roads[:, 4::8] += 1.0
    yy, xx = np.mgrid[0:GRID, 0:GRID]
    ring = np.abs(np.hypot(yy - GRID / 2 + 0.5, xx - GRID / 2 + 0.5) - 11.0) < 0.8
    roads[ring] += 1.0
    return np.minimum(roads, 1.5)


def bump(hours: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.exp(-((hours - centre) ** 2) / (2 * width ** 2))


def simulate(params: TaxiBJParams, seed: int) -> np.ndarray:
    """Raw flow counts [slots, 2, 32, 32] (channel 0 inflow, 1 outflow)."""
    rng = np.random.default_rng([seed, 11])
    residential, homes = gaussian_blobs(rng, 4, (9.0, 13.0), (2.5, 4.0), periphery=True)
    business, offices = gaussian_blobs(rng, 3, (0.0, 4.0), (1.5, 3.0), periphery=False)
    roads = road_map()
    days = params.train_days + params.test_days
    slots = days * SLOTS_PER_DAY
    t = np.arange(slots)
    hours = (t % SLOTS_PER_DAY) / 2.0
    day = t // SLOTS_PER_DAY
    weekday = (day % 7) < 5
    demand = np.exp(rng.normal(0.0, 0.12, days))[day]              # weather, events
    morning = np.where(weekday, bump(hours, 8.0, 1.0), 0.0)
    evening = np.where(weekday, bump(hours, 18.0, 1.5), 0.0)
    midday = np.where(weekday, 0.35 * bump(hours, 13.0, 3.0), 0.8 * bump(hours, 14.0, 3.5))
    night = 0.08 + 0.1 * bump(hours, 23.0, 1.5)

    yy, xx = np.mgrid[0:GRID, 0:GRID].astype(np.float64)
    home, office = homes[0], offices[0]
    flows = np.empty((slots, 2, GRID, GRID))
    for k in range(slots):
        # commuter hotspot: home -> office across the morning peak, back in the evening
        progress = np.clip((hours[k] - 6.5) / 3.0, 0, 1) if hours[k] < 13 else \
            1 - np.clip((hours[k] - 16.5) / 3.5, 0, 1)
        cy, cx = home + progress * (office - home)
        wave = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 8.0) * (morning[k] + evening[k])
        base = (0.25 + 0.5 * roads) * (midday[k] + night[k]) + 0.6 * wave
        inflow = base + 1.2 * morning[k] * business + 1.0 * evening[k] * residential \
            + 0.4 * midday[k] * business
        outflow = base + 1.2 * morning[k] * residential + 1.0 * evening[k] * business \
            + 0.4 * midday[k] * business
        flows[k, 0] = inflow * demand[k]
        flows[k, 1] = outflow * demand[k]
    return rng.poisson(flows * params.peak_count).astype(np.float64)


def scale_to_unit_interval(flows: np.ndarray) -> np.ndarray:
    """DeepST min-max scaling to [-1, 1] over the whole series."""
    low, high = flows.min(), flows.max()
    return (2.0 * (flows - low) / (high - low) - 1.0).astype(np.float32)


def sliding_windows(series: np.ndarray, in_len: int = 4, out_len: int = 4) -> tuple[np.ndarray, np.ndarray]:
    n = len(series) - in_len - out_len + 1
    index = np.arange(n)[:, None] + np.arange(in_len + out_len)[None, :]
    windows = series[index]
    return windows[:, :in_len], windows[:, in_len:]


def write(folder: Path, params: TaxiBJParams, seed: int) -> dict:
    if params.train_days < 2 or params.test_days < 1:
        raise ValueError("TaxiBJ generation needs train_days >= 2 and test_days >= 1")
    series = scale_to_unit_interval(simulate(params, seed))
    split = params.train_days * SLOTS_PER_DAY
    x_train, y_train = sliding_windows(series[:split])
    x_test, y_test = sliding_windows(series[split:])
    np.savez_compressed(folder / FILE, X_train=x_train, Y_train=y_train, X_test=x_test, Y_test=y_test)
    return {"train_samples": len(x_train), "test_samples": len(x_test),
            "train_days": params.train_days, "test_days": params.test_days,
            "slot_minutes": 30}
