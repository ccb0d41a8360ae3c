"""The webhooks bar (ack p99 under bursts of concurrent deliveries, nothing lost or duplicated)."""

from __future__ import annotations

from typing import Any

from bench.report import Outcome
from bench.webhooks import BURST, BURSTS, SETTLE_POLL_S

ACK_P99_MS = 50.0

HEADLINE = (
    f'The webhooks bar (from the issue): "ack p99 ≤ {ACK_P99_MS:.0f} ms on SQLite, nothing lost '
    f'or duplicated", checked on {BURSTS} bursts of {BURST} concurrent signed GitHub push '
    "deliveries, each on its own connection."
)
CRITERIA = (
    f"ack p99 ≤ {ACK_P99_MS:.0f} ms under {BURST} concurrent deliveries",
    "same bursts against bare ASGI, for scale (buildsd p99 ÷ bare p99)",
    f"nothing lost or duplicated ({BURSTS * BURST:,} deliveries → {BURSTS * BURST:,} builds; "
    f"{BURST} redeliveries → 0 builds)",
    "delivery → build queued p99 (server's record)",
)
INFO = "info"

Row = tuple[str, str, str]


def _find(outcomes: list[Outcome]) -> Outcome | None:
    return next((o for o in outcomes if o.scenario.key == "webhooks" and o.measured), None)


def evaluate(outcomes: list[Outcome]) -> list[Row]:
    """(criterion, measured, PASS/FAIL/info/not measured) for the webhooks bar."""
    found = _find(outcomes)
    f = found.figures if found else {}
    if "ack_p99_ms" not in f:
        return [(criterion, "–", "not measured") for criterion in CRITERIA]
    own = int(f.get("errors", 0)) - int(f.get("bare_errors", 0))
    p99 = float(f["ack_p99_ms"])
    rows: list[Row] = []
    if own:
        rows.append((CRITERIA[0], f"{p99:.1f} ms", f"FAIL ({own} errors)"))
    else:
        rows.append((CRITERIA[0], f"{p99:.1f} ms", "PASS" if p99 <= ACK_P99_MS else "FAIL"))
    bare = f.get("bare_p99_ms")
    if bare:
        rows.append((CRITERIA[1], f"{bare:.1f} ms ({p99 / bare:.1f} ×)", INFO))
    else:
        rows.append((CRITERIA[1], "–", "not measured"))
    shown = (
        f"{f['builds']:,} builds; {f['redelivered_duplicates']} of {f['redelivered']} "
        "redeliveries duplicate"
    )
    rows.append((CRITERIA[2], shown, "FAIL" if own else "PASS"))
    rows.append((CRITERIA[3], f"{f['matched_p99_ms']:.1f} ms", INFO))
    return rows


def render(rows: list[Row], outcomes: list[Outcome]) -> str:
    lines = [HEADLINE, "", "| criterion | measured | verdict |", "|---|---:|---|"]
    lines += [
        f"| {criterion} | {value} | {verdict if verdict == INFO else f'**{verdict}**'} |"
        for criterion, value, verdict in rows
    ]
    found = _find(outcomes)
    if found and "ack_p99_ms" in found.figures:
        lines += ["", *_details(found)]
    return "\n".join(lines)


def _details(outcome: Outcome) -> list[str]:
    f = outcome.figures
    out = [
        f"- Ack p99 of each burst: {_ms(f['burst_p99_ms'])} ms, max {f['ack_max_ms']:.1f} ms "
        f"over all {f['deliveries']:,}; bare ASGI {_ms(f.get('bare_burst_p99_ms', []))} ms, "
        f"max {_num(f.get('bare_max_ms'))} ms. The redelivered burst: p99 "
        f"{f['redelivery_p99_ms']:.1f} ms.",
        f"- Matching: after each burst's last answer the server had matched the burst in "
        f"{' / '.join(f'{s:.2f}' for s in f['settle_s'])} s (seen by polling the delivery "
        f"list's count every {SETTLE_POLL_S * 1000:.0f} ms); delivery → build queued as the "
        f"server recorded it (received_on → processed_on, ms resolution): p50 "
        f"{f['matched_p50_ms']:.1f} / p99 {f['matched_p99_ms']:.1f} ms.",
    ]
    cpu = outcome.server_cpu.get("us_per_request")
    if cpu:
        bare = f.get("bare_us_per_delivery")
        scale = f" (bare ASGI {bare:.0f} µs, {cpu / bare:.1f} ×)" if bare else ""
        out.append(
            f"- Server CPU per delivery: {cpu:.0f} µs{scale}, counting its answer, its matching "
            f"and the benchmark's polls; RSS {_num(outcome.memory_mb.get('VmRSS'), '.0f')} MB "
            f"after the run (bare ASGI {_num(f.get('bare_rss_mb'), '.0f')} MB)."
        )
    return out


def _ms(values: list[Any]) -> str:
    return " / ".join(f"{v:.1f}" for v in values) or "–"


def _num(value: float | None, fmt: str = ".1f") -> str:
    return "–" if value is None else format(value, fmt)
