"""The dashboard's numbers and its small chart, drawn as inline SVG on the server (no script, CSP-clean)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime
from html import escape

from markupsafe import Markup

from guildgate.store.repos import HourOfRecords


@dataclass(frozen=True, slots=True)
class Bucket:
    start: datetime
    total: int
    succeeded: int
    p50_ms: float | None

    @property
    def rate(self) -> float | None:
        return self.succeeded / self.total if self.total else None


def hourly(hours: list[HourOfRecords]) -> list[Bucket]:
    """The chart's hours (``RecordRepo.per_hour``, oldest first, empty hours included) with their median cost."""
    return [
        Bucket(
            start=h.start,
            total=h.total,
            succeeded=h.succeeded,
            p50_ms=statistics.median(h.costs) if h.costs else None,
        )
        for h in hours
    ]


def summary(buckets: list[Bucket]) -> dict[str, str]:
    total = sum(b.total for b in buckets)
    good = sum(b.succeeded for b in buckets)
    medians = [b.p50_ms for b in buckets if b.p50_ms is not None]
    return {
        "total": str(total),
        "rate": f"{good / total:.0%}" if total else "–",
        "p50": f"{statistics.median(medians):.0f} ms" if medians else "–",
    }


def svg(buckets: list[Bucket], *, label: str) -> Markup:
    """Bars: success rate per hour (0-100 %); line: median latency per hour (scaled to the busiest hour)."""
    width, height, pad = 720, 180, 24
    step = (width - 2 * pad) / max(len(buckets), 1)
    slowest = max((b.p50_ms or 0.0 for b in buckets), default=0.0) or 1.0
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}">',
        f'<line class="axis" x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}"/>',
    ]
    points: list[str] = []
    for i, b in enumerate(buckets):
        x = pad + i * step
        if b.rate is not None:
            bar = (height - 2 * pad) * b.rate
            parts.append(
                f'<rect class="bar" x="{x + 1:.1f}" y="{height - pad - bar:.1f}" width="{max(step - 2, 1):.1f}" '
                f'height="{bar:.1f}"><title>{b.start:%H:00} {b.succeeded}/{b.total}</title></rect>'
            )
        if b.p50_ms is not None:
            y = height - pad - (height - 2 * pad) * (b.p50_ms / slowest)
            points.append(f"{x + step / 2:.1f},{y:.1f}")
        if i % 6 == 0:
            parts.append(f'<text x="{x:.1f}" y="{height - 6}">{b.start:%H:00}</text>')
    if len(points) > 1:
        parts.append(f'<polyline class="line" points="{" ".join(points)}"/>')
    parts.append(f'<text x="{pad}" y="14">100%</text><text x="{width - pad - 90}" y="14">{slowest:.0f} ms max</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - built from numbers and escaped text only
