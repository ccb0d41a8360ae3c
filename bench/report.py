"""The scenarios, their outcomes, and the Markdown table and bar verdicts made from them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench import wrk

LIST_QUERY = "?per_page=50&page=3"

# The bar from the issue, checked against the authenticated upsert on SQLite.
BAR_RATIO = 0.20
BAR_P99_MS = 20.0
BAR_RSS_MB = 80.0
# CPU used by processes other than the server and wrk above which a run is flagged as noisy.
NOISE_CORES = 0.10
CRITERIA = [
    f"authenticated upsert ≥ {BAR_RATIO:.2f} × bare ASGI",
    f"p99 ≤ {BAR_P99_MS:.0f} ms",
    f"server RSS ≤ {BAR_RSS_MB:.0f} MB",
]


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    server: str  # which server group runs it: bare, sqlite, postgres
    method: str
    path: str
    auth: bool
    expect_count: int | None = None


SCENARIOS = [
    Scenario("bare", "bare ASGI (same PUT, fixed body)", "bare", "PUT", "", auth=False),
    Scenario("upsert", "authenticated upsert, SQLite", "sqlite", "PUT", "", auth=True),
    Scenario("list", "list connections page, SQLite", "sqlite", "GET", LIST_QUERY, True, 50),
    Scenario("upsert-pg", "authenticated upsert, PostgreSQL", "postgres", "PUT", "", auth=True),
]
BY_KEY = {s.key: s for s in SCENARIOS}


@dataclass
class Outcome:
    scenario: Scenario
    result: wrk.WrkResult | None = None
    warmup: wrk.WrkResult | None = None
    memory_mb: dict[str, float] = field(default_factory=dict)
    server_cpu: dict[str, float | None] = field(default_factory=dict)
    wrk_cores: float | None = None
    other_cores: float | None = None  # CPU used by neither the server nor wrk, in cores
    ratio: float | None = None
    failure: str = ""  # why the scenario produced no numbers
    skipped: str = ""  # why it was not run

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario.key,
            "title": self.scenario.title,
            "method": self.scenario.method,
            "path": self.scenario.path,
            "result": self.result.as_dict() if self.result else None,
            "warmup": self.warmup.as_dict() if self.warmup else None,
            "rss_mb": self.memory_mb.get("VmRSS"),
            "peak_rss_mb": self.memory_mb.get("VmHWM"),
            "server_cpu": self.server_cpu,
            "wrk_cores": self.wrk_cores,
            "other_cores": self.other_cores,
            "ratio_to_bare": self.ratio,
            "failure": self.failure,
            "skipped": self.skipped,
        }


def describe_errors(r: wrk.WrkResult) -> str:
    parts = []
    if r.non200:
        parts.append(f"{r.non200} non-200 answers, first: {r.first_bad[:200]}")
    socket = {k: r.lua.get(k, 0) for k in ("connect", "read", "write", "timeout")}
    if r.socket_errors:
        detail = ", ".join(f"{k} {v}" for k, v in socket.items() if v)
        parts.append(f"{r.socket_errors} socket errors ({detail}; wrk --timeout 5s)")
    return "; ".join(parts)


def _num(value: float | None, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def render_table(outcomes: list[Outcome]) -> str:
    lines = [
        "| scenario | req/s | p50 ms | p99 ms | RSS MB | × bare ASGI | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for o in outcomes:
        title = o.scenario.title
        if o.result is None:
            why = f"skipped: {o.skipped}" if o.skipped else "FAILED (see below)"
            lines.append(f"| {title} | {why} | | | | | |")
            continue
        r = o.result
        errors = f"**{r.errors}**" if r.errors else "0"
        lines.append(
            f"| {title} | {r.requests_per_s:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} "
            f"| {_num(o.memory_mb.get('VmRSS'), '.0f')} | {_num(o.ratio, '.2f')} | {errors} |"
        )
    return "\n".join(lines)


def evaluate_bar(outcomes: list[Outcome]) -> list[tuple[str, str, str]]:
    """(criterion, measured, PASS/FAIL/not measured) for the issue's bar."""
    upsert = next((o for o in outcomes if o.scenario.key == "upsert"), None)
    r = upsert.result if upsert else None
    if upsert is None or r is None:
        return [(c, "–", "not measured") for c in CRITERIA]
    valid = r.errors == 0
    rss = upsert.memory_mb.get("VmRSS")
    checks: list[tuple[str, float | None, Callable[[float], bool], str]] = [
        (CRITERIA[0], upsert.ratio, lambda v: v >= BAR_RATIO, "{:.2f} ×"),
        (CRITERIA[1], r.p99_ms, lambda v: v <= BAR_P99_MS, "{:.2f} ms"),
        (CRITERIA[2], rss, lambda v: v <= BAR_RSS_MB, "{:.0f} MB"),
    ]
    rows = []
    for criterion, value, ok, fmt in checks:
        if value is None:
            rows.append((criterion, "–", "not measured"))
            continue
        verdict = "PASS" if ok(value) and valid else "FAIL"
        if not valid:
            verdict += f" ({r.errors} errors)"
        rows.append((criterion, fmt.format(value), verdict))
    return rows


def cpu_ratio(outcome: Outcome, bare: Outcome | None) -> float | None:
    """× bare ASGI by server CPU per request: steadier than req/s when wrk or a neighbour
    takes CPU time from the server."""
    if bare is None:
        return None
    mine, ceiling = outcome.server_cpu.get("us_per_request"), bare.server_cpu.get("us_per_request")
    return ceiling / mine if mine and ceiling else None


def render_bar(rows: list[tuple[str, str, str]], outcomes: list[Outcome]) -> str:
    lines = [
        'The bar (from the issue): "authenticated upsert ≥ 0.20 × bare ASGI, p99 ≤ 20 ms, '
        'server RSS ≤ 80 MB", checked on the SQLite upsert row.',
        "",
        "| criterion | measured | verdict |",
        "|---|---:|---|",
    ]
    lines += [f"| {criterion} | {value} | **{verdict}** |" for criterion, value, verdict in rows]
    bare = next((o for o in outcomes if o.scenario.key == "bare" and o.result), None)
    costs = [
        f"{o.scenario.title} {o.server_cpu['us_per_request']:.0f} µs"
        + (f" ({ratio:.2f} ×)" if (ratio := cpu_ratio(o, bare)) and o is not bare else "")
        for o in outcomes
        if o.result and o.server_cpu.get("us_per_request")
    ]
    if costs:
        lines += ["", "Server CPU per request (× bare ASGI by CPU): " + "; ".join(costs) + "."]
    return "\n".join(lines)


def render_notes(outcomes: list[Outcome]) -> str:
    notes = []
    for o in outcomes:
        # PostgreSQL's own backends count as "other" on its row, so only flag the others.
        if o.other_cores and o.other_cores > NOISE_CORES and o.scenario.server != "postgres":
            notes.append(
                f"- **{o.scenario.title}**: other processes used {o.other_cores:.2f} cores "
                "during the run; the machine was not quiet, so this row is unreliable"
            )
        if o.failure:
            first = o.failure.strip().splitlines()[0]
            notes.append(f"- **{o.scenario.title}** failed: `{first}`")
        elif o.result and o.result.errors:
            notes.append(f"- **{o.scenario.title}**: {describe_errors(o.result)}")
    return ("Problems in this run:\n\n" + "\n".join(notes) + "\n\n") if notes else ""
