"""The timeline picture: server-rendered SVG, no script. Hover text is each shape's <title>,
which browsers show as a tooltip and screen readers read."""

from __future__ import annotations

from html import escape

from .timeline import Timeline

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


def _step(span: int) -> int:
    return next((s for s in NICE_STEPS if span / s <= 12), NICE_STEPS[-1])


def render(timeline: Timeline) -> str:
    low, high = timeline.day_range()
    pad = max(3, (high - low) // 20)
    low, high = low - pad, high + pad
    span = max(high - low, 1)
    plot = WIDTH - LEFT - RIGHT

    def x(day: float) -> float:
        return round(LEFT + (day - low) * plot / span, 1)

    # Treatments stack in rows, so overlapping bars stay readable.
    bar_rows: list[int] = []
    placed = []
    for bar in sorted(timeline.treatments, key=lambda b: b.start_day):
        end = bar.end_day if bar.end_day is not None else high
        row = next((i for i, last in enumerate(bar_rows) if last < bar.start_day), None)
        if row is None:
            row = len(bar_rows)
            bar_rows.append(end)
        else:
            bar_rows[row] = end
        placed.append((bar, row, end))
    lanes = [("Schedule", 1), ("Treatments", max(1, len(bar_rows))), ("Assessments", 1), ("Imaging", 1)]
    tops, y = {}, TOP
    for name, rows in lanes:
        tops[name] = y
        y += LANE * rows
    axis_y = y + 6
    height = axis_y + 40

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" viewBox="0 0 {WIDTH} {height}" '
        f'width="100%" role="img" aria-labelledby="timeline-title" font-family="system-ui, sans-serif" '
        f'font-size="12">',
        f'<title id="timeline-title">Timeline of {escape(timeline.subject_id)}: days from enrolment</title>',
    ]
    step = _step(span)
    first = (low // step) * step
    for day in range(first, high + 1, step):
        if day < low:
            continue
        out.append(
            f'<line x1="{x(day)}" y1="{TOP}" x2="{x(day)}" y2="{axis_y}" stroke="{COLOURS["grid"]}"/>'
            f'<text x="{x(day)}" y="{axis_y + 16}" text-anchor="middle" fill="{COLOURS["axis"]}">{day}</text>'
        )
    out.append(
        f'<line x1="{LEFT}" y1="{axis_y}" x2="{WIDTH - RIGHT}" y2="{axis_y}" stroke="{COLOURS["axis"]}"/>'
        f'<text x="{LEFT + plot / 2}" y="{axis_y + 34}" text-anchor="middle" fill="{COLOURS["axis"]}">'
        f"Days from enrolment ({escape(timeline.enrollment_date)}"
        f"{', dates shifted' if timeline.dates_shifted else ''})</text>"
        f'<line x1="{x(0)}" y1="{TOP - 6}" x2="{x(0)}" y2="{axis_y}" stroke="{COLOURS["axis"]}" '
        f'stroke-dasharray="3 3"/>'
    )
    for name, _rows in lanes:
        out.append(
            f'<text x="8" y="{tops[name] + LANE / 2 + 4}" fill="{COLOURS["axis"]}" font-weight="600">{name}</text>'
        )

    top = tops["Schedule"]
    for w in timeline.windows:
        tip = f"{w.title}: day {w.day}, window {w.start} to {w.end}"
        out.append(
            f'<g class="window"><title>{escape(tip)}</title>'
            f'<rect x="{x(w.start)}" y="{top + 6}" width="{max(x(w.end) - x(w.start), 2)}" height="{LANE - 12}" '
            f'fill="{COLOURS["window"]}" stroke="{COLOURS["window_edge"]}"/>'
            f'<text x="{x(w.day)}" y="{top + LANE / 2 + 4}" text-anchor="middle">{escape(w.title)}</text></g>'
        )

    for bar, row, end in placed:
        top = tops["Treatments"] + row * LANE
        until = f"day {bar.end_day} ({bar.end_date})" if bar.end_day is not None else "ongoing"
        tip = f"{bar.label}: day {bar.start_day} ({bar.start_date}) to {until}"
        out.append(
            f'<g class="treatment"><title>{escape(tip)}</title>'
            f'<rect x="{x(bar.start_day)}" y="{top + 8}" width="{max(x(end) - x(bar.start_day), 3)}" '
            f'height="{LANE - 16}" rx="3" fill="{COLOURS["treatment"]}"/>'
            f'<text x="{x(bar.start_day) + 4}" y="{top + LANE / 2 + 4}" fill="#fff">{escape(bar.label)}</text></g>'
        )

    top = tops["Assessments"] + LANE / 2
    for mark in timeline.assessments:
        tip = f"{mark.label}, {mark.item}: day {mark.day} ({mark.date})"
        out.append(
            f'<circle class="assessment" cx="{x(mark.day)}" cy="{top}" r="6" fill="{COLOURS["assessment"]}">'
            f"<title>{escape(tip)}</title></circle>"
        )

    top = tops["Imaging"] + LANE / 2
    for scan in timeline.imaging:
        if scan.day is None:
            continue
        cx = x(scan.day)
        where = f"in the {scan.event_title} window" if scan.in_window else "outside every schedule window"
        what = ", ".join(scan.modalities) or "Imaging"
        tip = (
            f"{what} {scan.description}: day {scan.day} ({scan.date}), {where}; "
            f"{scan.series_count} series, {scan.instance_count} images"
        )
        colour = COLOURS["scan"] if scan.in_window else COLOURS["outside"]
        fill = colour if scan.in_window else "#fff"
        out.append(
            f'<g class="scan{"" if scan.in_window else " outside"}"><title>{escape(tip)}</title>'
            f'<path d="M{cx} {top - 8} L{cx + 8} {top} L{cx} {top + 8} L{cx - 8} {top} Z" fill="{fill}" '
            f'stroke="{colour}" stroke-width="2"/>'
            f'<text x="{cx + 11}" y="{top + 4}" font-size="10" fill="{colour}">{escape("/".join(scan.modalities))}</text></g>'
        )
    out.append("</svg>")
    return "\n".join(out)
