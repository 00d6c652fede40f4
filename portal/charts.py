"""A server-rendered SVG line chart (no chart library, no inline script)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class LineChart:
    width: int
    height: int
    points: str
    area: str
    y_labels: list[tuple[float, int]]  # (y position, value in minor units)
    x_labels: list[tuple[float, str, str]]  # (x position, text, text-anchor)
    zero_y: float


# The room a "02 Dec" label needs at 11 px (its width and a half, plus a gap): a middle-anchored
# label must be this far left of the end-anchored last one.
LABEL_GAP = 64


def line_chart(series: list[tuple[date, int]], width: int = 640, height: int = 180) -> LineChart:
    pad_left, pad_bottom, pad_top = 70, 20, 10
    values = [value for _, value in series] or [0]
    low, high = min(min(values), 0), max(max(values), 0)
    span = (high - low) or 1
    plot_w, plot_h = width - pad_left - 5, height - pad_bottom - pad_top

    def x(i: int) -> float:
        return pad_left + plot_w * i / max(len(series) - 1, 1)

    def y(value: int) -> float:
        return pad_top + plot_h * (high - value) / span

    coords = [(round(x(i), 1), round(y(v), 1)) for i, (_, v) in enumerate(series)]
    points = " ".join(f"{cx},{cy}" for cx, cy in coords)
    zero = round(y(0), 1)
    area = f"{coords[0][0]},{zero} {points} {coords[-1][0]},{zero}" if coords else ""
    steps = [series[i] for i in range(0, len(series), max(len(series) // 4, 1))]
    x_labels = [
        # The last label is anchored at its end so it is not clipped at the right edge.
        (
            round(x(series.index(s)), 1),
            s[0].strftime("%d %b"),
            "end" if s is series[-1] else "middle",
        )
        for s in steps
    ]
    if series and steps[-1] is not series[-1]:
        last_x = round(x(len(series) - 1), 1)
        # A step label too close to the end-anchored last one would print over it.
        x_labels = [label for label in x_labels if label[0] <= last_x - LABEL_GAP]
        x_labels.append((last_x, series[-1][0].strftime("%d %b"), "end"))
    y_labels = [(round(y(v), 1), v) for v in sorted({high, low, (high + low) // 2})]
    return LineChart(width, height, points, area, y_labels, x_labels, zero)


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    bars: list[tuple[float, float, float, float, str, int]]  # x, y, width, height, day, value
    y_labels: list[tuple[float, int]]  # (y position, value)
    x_labels: list[tuple[float, str, str]]  # (x position, text, text-anchor)
    base_y: float


def bar_chart(series: list[tuple[date, int]], width: int = 640, height: int = 160) -> BarChart:
    """One bar per day (counts, never negative), labelled like the line chart."""
    pad_left, pad_bottom, pad_top = 40, 20, 10
    plot_w, plot_h = width - pad_left - 5, height - pad_bottom - pad_top
    high = max([value for _, value in series] + [1])
    slot = plot_w / max(len(series), 1)
    bar_w = round(max(slot * 0.7, 1), 1)
    base = pad_top + plot_h

    def x(i: int) -> float:
        return pad_left + slot * i + (slot - bar_w) / 2

    bars = []
    for i, (day, value) in enumerate(series):
        h = round(plot_h * max(value, 0) / high, 1)
        bars.append((round(x(i), 1), round(base - h, 1), bar_w, h, day.strftime("%d %b"), value))
    x_labels: list[tuple[float, str, str]] = []
    if series:
        step = max(len(series) // 4, 1)
        last_x = round(x(len(series) - 1) + bar_w, 1)
        for i in range(0, len(series), step):
            centre = round(x(i) + bar_w / 2, 1)
            anchor = "start" if i == 0 else "middle"
            if i != len(series) - 1 and centre <= last_x - LABEL_GAP:
                x_labels.append(
                    (centre if i else round(x(i), 1), series[i][0].strftime("%d %b"), anchor)
                )
        x_labels.append((last_x, series[-1][0].strftime("%d %b"), "end"))
    y_labels = [(round(base - plot_h * v / high, 1), v) for v in sorted({0, high})]
    return BarChart(width, height, bars, y_labels, x_labels, base)
