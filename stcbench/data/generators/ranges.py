"""Allowed values of the generator parameters, checked before anything is written."""
from __future__ import annotations

import math
from dataclasses import dataclass


def plain(number: float) -> str:
    return f"{int(number)}" if float(number).is_integer() else f"{number:g}"


@dataclass(frozen=True)
class Allowed:
    """An inclusive numeric range (no upper end when `high` is None) and what the parameter means."""

    low: float
    high: float | None = None
    meaning: str = ""

    def admits(self, value: float) -> bool:
        return math.isfinite(value) and value >= self.low and (self.high is None or value <= self.high)

    def __str__(self) -> str:
        span = f"{plain(self.low)}..{plain(self.high)}" if self.high is not None else f">= {plain(self.low)}"
        return f"{span} ({self.meaning})" if self.meaning else span
