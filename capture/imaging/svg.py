"""The timeline picture: server-rendered SVG, no script. Hover text is each shape's <title>,
which browsers show as a tooltip and screen readers read."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from .timeline import Bar, Mark, ResponsePoint, Scan, Timeline, Window

WIDTH = 960
LEFT = 130  # lane labels
RIGHT = 24
LANE = 34
TOP = 28
NICE_STEPS = (1, 2, 7, 14, 28, 30, 60, 90, 180, 365, 730)

COLOURS = {
    "window": "#dbe7f3",
    "window_edge": "#7a9cc0",
    "treatment": "#3b7d4f",
    "assessment": "#5b4a9b",
    "scan": "#0f6ab4",
    "outside": "#c2410c",
    "axis": "#555",
    "grid": "#e5e5e5",
}
# A timepoint response's box: better responses greener, progression red, the rest grey.
RESPONSE_COLOURS = {"CR": "#166534", "PR": "#15803d", "SD": "#a16207", "PD": "#b91c1c"}


def _step(span: int) -> int:
    return next((s for s in NICE_STEPS if span / s <= 12), NICE_STEPS[-1])


@dataclass
class _Scale:
    """Days from enrolment to x positions, padded on both sides."""

    low: int
    high: int

    @classmethod
    def of(cls, timeline: Timeline) -> _Scale:
        low, high = timeline.day_range()
        pad = max(3, (high - low) // 20)
        return cls(low - pad, high + pad)

    @property
    def span(self) -> int:
        return max(self.high - self.low, 1)

    @property
    def plot(self) -> int:
        return WIDTH - LEFT - RIGHT

    def x(self, day: float) -> float:
        return round(LEFT + (day - self.low) * self.plot / self.span, 1)


def _stack(treatments: list[Bar], high: int) -> tuple[list[tuple[Bar, int, int]], int]:
    """Treatments in rows, so overlapping bars stay readable: [(bar, row, end day)] and the row count."""
    bar_rows: list[int] = []
    placed = []
    for bar in sorted(treatments, key=lambda b: b.start_day):
        end = bar.end_day if bar.end_day is not None else high
        row = next((i for i, last in enumerate(bar_rows) if last < bar.start_day), None)
        if row is None:
            row = len(bar_rows)
            bar_rows.append(end)
        else:
            bar_rows[row] = end
        placed.append((bar, row, end))
    return placed, len(bar_rows)


def render(timeline: Timeline) -> str:
    scale = _Scale.of(timeline)
    placed, rows = _stack(timeline.treatments, scale.high)
    lanes = [("Schedule", 1), ("Treatments", max(1, rows)), ("Assessments", 1), ("Imaging", 1)]
    if timeline.responses:
        lanes.append(("Response", 1))
    tops, y = {}, TOP
    for name, count in lanes:
        tops[name] = y
        y += LANE * count
    axis_y = y + 6
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" viewBox="0 0 {WIDTH} {axis_y + 40}" '
        f'width="100%" role="img" aria-labelledby="timeline-title" font-family="system-ui, sans-serif" '
        f'font-size="12">',
        f'<title id="timeline-title">Timeline of {escape(timeline.subject_id)}: days from enrolment</title>',
    ]
    out += _axis(timeline, scale, axis_y)
    out += [
        f'<text x="8" y="{tops[name] + LANE / 2 + 4}" fill="{COLOURS["axis"]}" font-weight="600">{name}</text>'
        for name, _ in lanes
    ]
    out += [_window(w, scale, tops["Schedule"]) for w in timeline.windows]
    out += [_treatment(bar, scale, tops["Treatments"] + row * LANE, end) for bar, row, end in placed]
    out += [_assessment(mark, scale, tops["Assessments"] + LANE / 2) for mark in timeline.assessments]
    out += [
        _scan(scan, scale, tops["Imaging"] + LANE / 2) for scan in timeline.imaging if scan.day is not None
    ]
    if timeline.responses:
        out += [_response(point, scale, tops["Response"] + LANE / 2) for point in timeline.responses]
    out.append("</svg>")
    return "\n".join(out)


def _axis(timeline: Timeline, scale: _Scale, axis_y: int) -> list[str]:
    """Grid lines every nice step, the axis with its caption, and the dashed line at day 0."""
    x = scale.x
    out = []
    step = _step(scale.span)
    for day in range((scale.low // step) * step, scale.high + 1, step):
        if day < scale.low:
            continue
        out.append(
            f'<line x1="{x(day)}" y1="{TOP}" x2="{x(day)}" y2="{axis_y}" stroke="{COLOURS["grid"]}"/>'
            f'<text x="{x(day)}" y="{axis_y + 16}" text-anchor="middle" fill="{COLOURS["axis"]}">{day}</text>'
        )
    out.append(
        f'<line x1="{LEFT}" y1="{axis_y}" x2="{WIDTH - RIGHT}" y2="{axis_y}" stroke="{COLOURS["axis"]}"/>'
        f'<text x="{LEFT + scale.plot / 2}" y="{axis_y + 34}" text-anchor="middle" fill="{COLOURS["axis"]}">'
        f"Days from enrolment ({escape(timeline.enrollment_date)}"
        f"{', dates shifted' if timeline.dates_shifted else ''})</text>"
        f'<line x1="{x(0)}" y1="{TOP - 6}" x2="{x(0)}" y2="{axis_y}" stroke="{COLOURS["axis"]}" '
        f'stroke-dasharray="3 3"/>'
    )
    return out


def _window(w: Window, scale: _Scale, top: int) -> str:
    x = scale.x
    tip = f"{w.title}: day {w.day}, window {w.start} to {w.end}"
    return (
        f'<g class="window"><title>{escape(tip)}</title>'
        f'<rect x="{x(w.start)}" y="{top + 6}" width="{max(x(w.end) - x(w.start), 2)}" height="{LANE - 12}" '
        f'fill="{COLOURS["window"]}" stroke="{COLOURS["window_edge"]}"/>'
        f'<text x="{x(w.day)}" y="{top + LANE / 2 + 4}" text-anchor="middle">{escape(w.title)}</text></g>'
    )


def _treatment(bar: Bar, scale: _Scale, top: int, end: int) -> str:
    x = scale.x
    until = f"day {bar.end_day} ({bar.end_date})" if bar.end_day is not None else "ongoing"
    tip = f"{bar.label}: day {bar.start_day} ({bar.start_date}) to {until}"
    return (
        f'<g class="treatment"><title>{escape(tip)}</title>'
        f'<rect x="{x(bar.start_day)}" y="{top + 8}" width="{max(x(end) - x(bar.start_day), 3)}" '
        f'height="{LANE - 16}" rx="3" fill="{COLOURS["treatment"]}"/>'
        f'<text x="{x(bar.start_day) + 4}" y="{top + LANE / 2 + 4}" fill="#fff">{escape(bar.label)}</text></g>'
    )


def _assessment(mark: Mark, scale: _Scale, top: float) -> str:
    tip = f"{mark.label}, {mark.item}: day {mark.day} ({mark.date})"
    return (
        f'<circle class="assessment" cx="{scale.x(mark.day)}" cy="{top}" r="6" fill="{COLOURS["assessment"]}">'
        f"<title>{escape(tip)}</title></circle>"
    )


def _scan(scan: Scan, scale: _Scale, top: float) -> str:
    assert scan.day is not None
    cx = scale.x(scan.day)
    where = f"in the {scan.event_title} window" if scan.in_window else "outside every schedule window"
    what = ", ".join(scan.modalities) or "Imaging"
    tip = (
        f"{what} {scan.description}: day {scan.day} ({scan.date}), {where}; "
        f"{scan.series_count} series, {scan.instance_count} images"
    )
    colour = COLOURS["scan"] if scan.in_window else COLOURS["outside"]
    fill = colour if scan.in_window else "#fff"
    return (
        f'<g class="scan{"" if scan.in_window else " outside"}"><title>{escape(tip)}</title>'
        f'<path d="M{cx} {top - 8} L{cx + 8} {top} L{cx} {top + 8} L{cx - 8} {top} Z" fill="{fill}" '
        f'stroke="{colour}" stroke-width="2"/>'
        f'<text x="{cx + 11}" y="{top + 4}" font-size="10" fill="{colour}">{escape("/".join(scan.modalities))}</text></g>'
    )


def _response_tip(point: ResponsePoint) -> str:
    when = f"day {point.day} ({point.date})"
    if point.method == "mrecist":
        change = (
            f"{point.change_from_baseline_pct:+.1f} %" if point.change_from_baseline_pct is not None else ""
        )
        return f"mRECIST {when}: volume {point.volume_mm3} mm3 {change}".strip()
    if point.baseline:
        return f"RECIST 1.1 baseline {when}: sum of diameters {point.sum_mm} mm"
    numbers = [f"sum {point.sum_mm} mm" if point.sum_mm is not None else "sum not evaluable"]
    if point.change_from_baseline_pct is not None:
        numbers.append(f"{point.change_from_baseline_pct:+.1f} % from baseline")
    if point.change_from_nadir_pct is not None:
        numbers.append(f"{point.change_from_nadir_pct:+.1f} % from nadir")
    if point.new_lesions:
        numbers.append("new lesion")
    return f"RECIST 1.1 {when}: {point.overall}; {', '.join(numbers)}"


def _response(point: ResponsePoint, scale: _Scale, top: float) -> str:
    cx = scale.x(point.day)
    if point.method == "mrecist":
        label = (
            f"{point.change_from_baseline_pct:+.0f}%" if point.change_from_baseline_pct is not None else "vol"
        )
    else:
        label = "BL" if point.baseline else point.overall
    colour = RESPONSE_COLOURS.get(point.overall, COLOURS["axis"])
    return (
        f'<g class="response"><title>{escape(_response_tip(point))}</title>'
        f'<rect x="{cx - 14}" y="{top - 9}" width="28" height="18" rx="3" fill="{colour}"/>'
        f'<text x="{cx}" y="{top + 4}" text-anchor="middle" font-size="10" fill="#fff">{escape(label[:6])}</text></g>'
    )
