"""Inline SVG line and scatter charts, so that the HTML report needs no script, font or network."""

from __future__ import annotations

import math
from dataclasses import dataclass

from markupsafe import Markup

WIDTH, HEIGHT = 620, 320
LEFT, RIGHT, TOP, BOTTOM = 62, 170, 34, 50
MAX_LEGEND = (HEIGHT - TOP - BOTTOM) // 18
PALETTE = ("#0969da", "#cf222e", "#1a7f37", "#8250df", "#bc4c00", "#1b7c83", "#bf3989", "#57606a")


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str


@dataclass(frozen=True)
class Series:
    name: str
    points: tuple[Point, ...]


@dataclass(frozen=True)
class Axis:
    lo: float
    hi: float
    ticks: tuple[float, ...]


def nice_step(span: float, count: int) -> float:
    """A 1-2-5 step giving about `count` intervals over `span`."""
    raw = span / max(count, 1)
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def nice_axis(values: list[float], count: int = 5, *, from_zero: bool = False) -> Axis:
    lo, hi = min(values), max(values)
    if from_zero:
        lo = min(lo, 0.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 1, hi + 1
    step = nice_step(hi - lo, count)
    start, end = math.floor(lo / step) * step, math.ceil(hi / step) * step
    ticks = tuple(start + i * step for i in range(round((end - start) / step) + 1))
    return Axis(start, end, ticks)


def tick_label(value: float) -> str:
    return f"{value:.0f}" if abs(value - round(value)) < 1e-9 else f"{value:.2g}"


class Plot:
    """Maps data to the plot area and collects SVG elements (Markup, so every text in them is escaped)."""

    def __init__(self, x: Axis, y: Axis) -> None:
        self.x, self.y = x, y
        self.parts: list[Markup] = []

    def px(self, value: float) -> float:
        return LEFT + (value - self.x.lo) / (self.x.hi - self.x.lo) * (WIDTH - LEFT - RIGHT)

    def py(self, value: float) -> float:
        return HEIGHT - BOTTOM - (value - self.y.lo) / (self.y.hi - self.y.lo) * (HEIGHT - TOP - BOTTOM)

    def line(self, css: str, x1: float, y1: float, x2: float, y2: float) -> None:
        template = Markup('<line class="{}" x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}"/>')
        self.parts.append(template.format(css, x1, y1, x2, y2))

    def text(self, x: float, y: float, content: str, anchor: str = "middle", rotate: bool = False) -> None:
        transform = Markup(' transform="rotate(-90 {:.1f} {:.1f})"').format(x, y) if rotate else ""
        template = Markup('<text x="{:.1f}" y="{:.1f}" text-anchor="{}"{}>{}</text>')
        self.parts.append(template.format(x, y, anchor, transform, content))

    def add(self, template: Markup, *args: object) -> None:
        """Append `template` (a literal) filled with `args`, each of which is escaped."""
        self.parts.append(template.format(*args))


def _axes(plot: Plot, x_label: str, y_label: str, x_tick_labels: dict[float, str] | None) -> None:
    bottom, right = HEIGHT - BOTTOM, WIDTH - RIGHT
    for tick in plot.y.ticks:
        y = plot.py(tick)
        plot.line("grid", LEFT, y, right, y)
        plot.text(LEFT - 6, y + 4, tick_label(tick), "end")
    for tick in plot.x.ticks:
        x = plot.px(tick)
        label = x_tick_labels.get(tick, "") if x_tick_labels is not None else tick_label(tick)
        plot.line("axis", x, bottom, x, bottom + 4)
        plot.text(x, bottom + 17, label)
    plot.line("axis", LEFT, bottom, right, bottom)
    plot.line("axis", LEFT, TOP, LEFT, bottom)
    plot.text((LEFT + right) / 2, HEIGHT - 10, x_label)
    plot.text(16, (TOP + bottom) / 2, y_label, rotate=True)


def _series(plot: Plot, series: Series, color: str, lines: bool) -> None:
    points = sorted(series.points, key=lambda p: p.x)
    if lines and len(points) > 1:
        path = " ".join(f"{plot.px(p.x):.1f},{plot.py(p.y):.1f}" for p in points)
        plot.add(Markup('<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>'), color, path)
    for p in points:
        plot.add(
            Markup('<circle cx="{:.1f}" cy="{:.1f}" r="4" fill="{}"><title>{}</title></circle>'),
            plot.px(p.x),
            plot.py(p.y),
            color,
            p.label,
        )


def _legend(plot: Plot, series: list[Series]) -> None:
    x = WIDTH - RIGHT + 14
    shown = series if len(series) <= MAX_LEGEND else series[: MAX_LEGEND - 1]
    for index, item in enumerate(shown):
        y = TOP + 6 + index * 18
        color = PALETTE[index % len(PALETTE)]
        plot.add(Markup('<rect x="{}" y="{}" width="10" height="10" fill="{}"/>'), x, y - 9, color)
        plot.text(x + 16, y, item.name[:22], "start")
    if len(shown) < len(series):
        plot.text(x, TOP + 6 + len(shown) * 18, f"+{len(series) - len(shown)} more (hover points)", "start")


def line_chart(
    title: str,
    x_label: str,
    y_label: str,
    series: list[Series],
    *,
    x_categories: list[str] | None = None,
    lines: bool = True,
) -> Markup | None:
    """An SVG chart of the series, or None when they hold no point.

    With `x_categories`, x values are indexes into it and the axis shows the names.
    """
    series = [s for s in series if s.points]
    if not series:
        return None
    xs = [p.x for s in series for p in s.points]
    ys = [p.y for s in series for p in s.points]
    if x_categories is not None:
        x_axis = Axis(-0.5, len(x_categories) - 0.5, tuple(float(i) for i in range(len(x_categories))))
        tick_names: dict[float, str] | None = {float(i): name for i, name in enumerate(x_categories)}
    else:
        x_axis, tick_names = nice_axis(xs), None
    plot = Plot(x_axis, nice_axis(ys, from_zero=True))
    _axes(plot, x_label, y_label, tick_names)
    for index, item in enumerate(series):
        _series(plot, item, PALETTE[index % len(PALETTE)], lines)
    _legend(plot, series)
    template = Markup('<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="{}"><title>{}</title>{}</svg>')
    return template.format(WIDTH, HEIGHT, title, title, Markup("").join(plot.parts))
