"""The Workers scripts bar (a 1 MiB upload against the bare app reading it, the scripts list at
10 and at 10,000 Workers) and its details."""

from __future__ import annotations

from bench import scripts
from bench.report import Outcome, cpu_spread, measured, verdict

UPLOAD_TIMES = 3.0  # a 1 MiB upload costs at most this many times the bare app reading it
LIST_SPREAD = 0.20  # the list page at 10,000 Workers within this of the page at 10

HEADLINE = (
    'The Workers scripts bar (from the issue): "a 1 MiB upload costs ≤ 3 × a bare ASGI app '
    "reading the same body (same run); the list page costs the same at 10 and at 10,000 Workers "
    '(within 20 %)". Cost is server CPU per request; req/s alongside.'
)

Row = tuple[str, str, str]


def _cpu(outcome: Outcome | None) -> float | None:
    return outcome.server_cpu.get("us_per_request") if outcome else None


def evaluate(outcomes: list[Outcome]) -> list[Row]:
    """(criterion, measured, PASS/FAIL/not measured) for the scripts bar."""
    rows: list[Row] = []
    bare, upload = measured(outcomes, "bare-upload"), measured(outcomes, "script-upload")
    criterion = f"1 MiB upload ≤ {UPLOAD_TIMES:.0f} × bare ASGI reading it (CPU; req/s)"
    mine, base = _cpu(upload), _cpu(bare)
    if bare and upload and bare.result and upload.result and mine and base:
        slower = bare.result.requests_per_s / upload.result.requests_per_s
        shown = f"{mine / base:.2f} × ({slower:.2f} ×)"
        rows.append((criterion, shown, verdict(mine / base <= UPLOAD_TIMES, bare, upload)))
    else:
        rows.append((criterion, "–", "not measured"))

    small, large = measured(outcomes, "script-list-10"), measured(outcomes, "script-list-10k")
    criterion = f"list page at 10,000 ÷ at 10 Workers within ±{LIST_SPREAD:.0%} (CPU; req/s)"
    cost = cpu_spread(small, large)
    if small and large and small.result and large.result and cost is not None:
        speed = large.result.requests_per_s / small.result.requests_per_s
        ok = abs(cost - 1) <= LIST_SPREAD
        rows.append((criterion, f"{cost:.2f} × ({speed:.2f} ×)", verdict(ok, small, large)))
    else:
        rows.append((criterion, "–", "not measured"))
    return rows


def render(rows: list[Row], outcomes: list[Outcome]) -> str:
    lines = [HEADLINE, "", "| criterion | measured | verdict |", "|---|---:|---|"]
    lines += [f"| {criterion} | {value} | **{verdict}** |" for criterion, value, verdict in rows]
    costs = [
        f"{o.scenario.title} {o.server_cpu['us_per_request']:.0f} µs"
        for key in ("bare-upload", "script-upload", "script-list-10", "script-list-10k")
        if (o := measured(outcomes, key)) and o.server_cpu.get("us_per_request")
    ]
    if costs:
        lines += ["", "- Server CPU per request: " + "; ".join(costs) + "."]
    seeded = next(
        (o.setup["seeded_workers_s"] for o in outcomes if o.setup.get("seeded_workers_s")), None
    )
    if seeded is not None:
        lines.append(
            f"- {scripts.LIST_LARGE:,} Workers seeded straight into the SQLite file before the "
            f"server started, in {seeded:.1f} s."
        )
    return "\n".join(lines)
