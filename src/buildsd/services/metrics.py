"""Counters and histograms of this process, rendered in Prometheus' text format."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

# Seconds; builds take seconds to tens of minutes, queue waits milliseconds to minutes.
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 3600)
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300)


@dataclass
class Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.buckets)

    def observe(self, value: float) -> None:
        self.total += value
        self.count += 1
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1

    def render(self, name: str, help_text: str) -> list[str]:
        lines = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
        lines += [
            f'{name}_bucket{{le="{bound:g}"}} {n}'
            for bound, n in zip(self.buckets, self.counts, strict=True)
        ]
        lines += [
            f'{name}_bucket{{le="+Inf"}} {self.count}',
            f"{name}_sum {self.total:.6f}",
            f"{name}_count {self.count}",
        ]
        return lines


class Metrics:
    """What this process counted since it started (each replica exposes its own)."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, int]] = Counter()
        self.builds_finished: Counter[str] = Counter()
        self.build_duration = Histogram(DURATION_BUCKETS)
        self.queue_wait = Histogram(WAIT_BUCKETS)

    def render(self, gauges: dict[str, tuple[str, float]]) -> str:
        lines = [
            "# HELP buildsd_http_requests_total HTTP requests answered, by operation and status",
            "# TYPE buildsd_http_requests_total counter",
        ]
        lines += [
            f'buildsd_http_requests_total{{operation="{op}",status="{status}"}} {n}'
            for (op, status), n in sorted(self.requests.items())
        ]
        lines += [
            "# HELP buildsd_builds_finished_total Builds this process stopped, by outcome",
            "# TYPE buildsd_builds_finished_total counter",
        ]
        lines += [
            f'buildsd_builds_finished_total{{outcome="{outcome}"}} {n}'
            for outcome, n in sorted(self.builds_finished.items())
        ]
        lines += self.build_duration.render(
            "buildsd_build_duration_seconds", "Time from running to stopped"
        )
        lines += self.queue_wait.render(
            "buildsd_build_queue_wait_seconds", "Time from queued to claimed by a runner"
        )
        for name, (help_text, value) in gauges.items():
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value:g}"]
        return "\n".join(lines) + "\n"
