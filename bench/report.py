"""The scenarios, their outcomes, and the Markdown table and bar verdicts made from them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from bench import builds, scripts, webhooks, wrk
from bench.servers import ACCOUNT_ID

LIST_QUERY = "?per_page=50&page=3"
CONNECTIONS = "/repos/connections"

# The bar from the issue, checked against the authenticated upsert on SQLite.
BAR_RATIO = 0.20
BAR_P99_MS = 20.0
BAR_RSS_MB = 80.0
# CPU used by processes other than the server and wrk above which a run is flagged as noisy.
NOISE_CORES = 0.10
# The server groups whose rows the first bar's CPU line lists (the builds bar lists its own).
FIRST_BAR = ("bare", "sqlite", "postgres")
CRITERIA = [
    f"authenticated upsert ≥ {BAR_RATIO:.2f} × bare ASGI",
    f"p99 ≤ {BAR_P99_MS:.0f} ms",
    f"server RSS ≤ {BAR_RSS_MB:.0f} MB",
]


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    server: str  # which server group runs it: bare, sqlite, postgres, builds, runner, webhooks
    method: str = "GET"
    # Under /client/v4/accounts/{id}/builds (but the webhooks' intake and paths that start
    # with /client/); "{trigger_uuid}" and the like are filled in by the group's set-up.
    path: str = ""
    auth: bool = True
    expect_count: int | None = None
    body: str | None = None  # a fixed JSON body for POST scenarios
    select: str = ""  # its --scenarios key when several rows share one (build-list)
    runner_slots: int = 2  # BUILDSD_RUNNER_SLOTS of the server it runs on (0 = builds stay queued)
    builds: int = 0  # a build list scenario: how many builds its Worker has
    wrk: bool = True  # loaded with wrk; False: a measurement of its own (bench/builds.py)
    bundle: bool = False  # sends the 1 MiB Worker upload (bench/scripts.py) as its body
    baseline: str = "bare"  # the row its × bare ASGI divides by (same run)

    @property
    def selector(self) -> str:
        return self.select or self.key


_LIST_1K, _LIST_100K = (builds.list_path(builds.TAG_LIST[n]) for n in (1_000, 100_000))
_WEBHOOKS = (
    f"webhook ack, {webhooks.BURSTS} bursts of {webhooks.BURST} concurrent deliveries (SQLite)"
)
_UPLOAD = f"{scripts.scripts_path(ACCOUNT_ID)}/{scripts.UPLOAD_NAME}"
SCENARIOS = [
    Scenario("bare", "bare ASGI (same PUT, fixed body)", "bare", "PUT", CONNECTIONS, auth=False),
    Scenario("upsert", "authenticated upsert, SQLite", "sqlite", "PUT", CONNECTIONS),
    Scenario("list", "list connections page, SQLite", "sqlite", "GET", CONNECTIONS + LIST_QUERY,
             expect_count=50),
    Scenario("upsert-pg", "authenticated upsert, PostgreSQL", "postgres", "PUT", CONNECTIONS),
    Scenario("build-create", "POST build (queued), SQLite", "builds", "POST",
             "/triggers/{trigger_uuid}/builds", body='{"branch":"main"}', runner_slots=0),
    Scenario("build-list-1k", "build list page, Worker with 1k builds", "builds", "GET",
             _LIST_1K, expect_count=50, select="build-list", runner_slots=0, builds=1_000),
    Scenario("build-list-100k", "build list page, Worker with 100k builds", "builds", "GET",
             _LIST_100K, expect_count=50, select="build-list", runner_slots=0, builds=100_000),
    Scenario("queue-latency", "queue latency", "runner", wrk=False),
    Scenario("log-ingest", "log ingest", "runner", wrk=False),
    Scenario("webhooks", _WEBHOOKS, "webhooks", "POST", "/webhooks/github", runner_slots=0,
             wrk=False),
    Scenario("sandbox", "trivial build, POST → seen stopped", "sandbox", wrk=False),
    Scenario("bare-upload", "bare ASGI reading the same 1 MiB upload", "bare", "PUT", _UPLOAD,
             auth=False, select="script-upload", bundle=True, baseline="bare-upload"),
    Scenario("script-upload", "script upload, 1 MiB bundle, SQLite", "scripts", "PUT", _UPLOAD,
             select="script-upload", runner_slots=0, bundle=True, baseline="bare-upload"),
    Scenario("script-list-10", "scripts list page, account with 10 Workers", "scripts", "GET",
             scripts.list_path(ACCOUNT_ID), expect_count=scripts.LIST_PAGE, select="script-list",
             runner_slots=0),
    Scenario("script-list-10k", "scripts list page, account with 10,000 Workers", "scripts",
             "GET", scripts.list_path("{account_10k}"), expect_count=scripts.LIST_PAGE,
             select="script-list", runner_slots=0),
]  # fmt: skip
BY_KEY = {s.key: s for s in SCENARIOS}
# What --scenarios takes: build-list selects both of its rows, script-upload the upload and
# its bare ASGI baseline, script-list both list rows.
SELECTORS = list(dict.fromkeys(s.selector for s in SCENARIOS))


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
    figures: dict[str, Any] = field(default_factory=dict)  # a non-wrk scenario's results
    setup: dict[str, Any] = field(default_factory=dict)  # facts about its set-up (seeding)
    failure: str = ""  # why the scenario produced no numbers
    skipped: str = ""  # why it was not run

    @property
    def measured(self) -> bool:
        return self.result is not None or bool(self.figures)

    @property
    def errors(self) -> int:
        """Non-200 answers and socket errors (wrk), or failed builds and lost lines (figures)."""
        if self.result is not None:
            return self.result.errors
        return int(self.figures.get("errors", 0))

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
            "figures": self.figures or None,
            "setup": self.setup or None,
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
        if not o.measured:
            why = f"skipped: {o.skipped}" if o.skipped else "FAILED (see below)"
            lines.append(f"| {title} | {why} | | | | | |")
            continue
        errors = f"**{o.errors}**" if o.errors else "0"
        rss = _num(o.memory_mb.get("VmRSS"), ".0f")
        if o.result is not None:
            r = o.result
            lines.append(
                f"| {title} | {r.requests_per_s:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} "
                f"| {rss} | {_num(o.ratio, '.2f')} | {errors} |"
            )
            continue
        for row in _figure_rows(o):
            own_rss = rss if row.rss is None else row.rss
            own_errors = (
                errors if row.errors is None else f"**{row.errors}**" if row.errors else "0"
            )
            lines.append(
                f"| {row.label} | {row.rate} | {row.p50} | {row.p99} | {own_rss} | – "
                f"| {own_errors} |"
            )
    return "\n".join(lines)


class FigureRow(NamedTuple):
    """A table row of a scenario measured without wrk; rss/errors: the row's own (not the
    scenario server's), e.g. the bare ASGI baseline measured alongside the webhooks."""

    label: str
    rate: str
    p50: str
    p99: str
    rss: str | None = None
    errors: int | None = None


def _figure_rows(o: Outcome) -> list[FigureRow]:
    """(scenario, rate, p50, p99) rows for a scenario measured without wrk."""
    f = o.figures
    if o.scenario.key == "webhooks":
        return _webhook_rows(f)
    if o.scenario.key == "queue-latency":
        n = f"{f.get('builds', 0)} builds"
        return [
            FigureRow(
                f"queue latency, POST answered → seen running ({n}, SQLite)",
                "–",
                _num(f.get("running_p50_ms"), ".1f"),
                _num(f.get("running_p99_ms"), ".1f"),
            ),
            FigureRow(
                f"queue latency, POST answered → seen initializing ({n}, SQLite)",
                "–",
                _num(f.get("initializing_p50_ms"), ".1f"),
                _num(f.get("initializing_p99_ms"), ".1f"),
            ),
        ]
    if o.scenario.key == "log-ingest":
        rate = f.get("lines_per_s")
        return [
            FigureRow(
                f"log ingest, {f.get('lines', 0):,} lines running → stopped (SQLite)",
                "–" if rate is None else f"{rate:,.0f} lines/s",
                "–",
                "–",
            )
        ]
    if o.scenario.key == "sandbox":
        n = f"{f.get('builds', 0)} builds each, SQLite"
        rows = [
            ("sandboxed (bwrap)", "sandboxed"),
            ("BUILDSD_SANDBOX=off", "unsandboxed"),
            ("bare `git clone` + `sh -c`, no server", "bare"),
        ]
        return [
            FigureRow(
                f"{o.scenario.title}, {label} ({n})",
                "–",
                _num(f.get(f"{kind}_p50_ms"), ".1f"),
                "–",
            )
            for label, kind in rows
        ]
    return [FigureRow(o.scenario.title, "–", "–", "–")]


def _webhook_rows(f: dict[str, Any]) -> list[FigureRow]:
    """Ack latency, the server's delivery → build queued, and the bare ASGI baseline burst."""
    # The scenario's errors count the baseline's too (any makes the run invalid); not here.
    own = int(f.get("errors", 0)) - int(f.get("bare_errors", 0))
    rows = [
        FigureRow(
            _WEBHOOKS,
            "–",
            _num(f.get("ack_p50_ms"), ".1f"),
            _num(f.get("ack_p99_ms"), ".1f"),
            errors=own,
        ),
        FigureRow(
            "webhook delivery → build queued (server's record)",
            "–",
            _num(f.get("matched_p50_ms"), ".1f"),
            _num(f.get("matched_p99_ms"), ".1f"),
            errors=own,
        ),
    ]
    if "bare_p99_ms" in f:
        rows.append(
            FigureRow(
                "bare ASGI, the same bursts (fixed body)",
                "–",
                _num(f.get("bare_p50_ms"), ".1f"),
                _num(f.get("bare_p99_ms"), ".1f"),
                rss=_num(f.get("bare_rss_mb"), ".0f"),
                errors=int(f.get("bare_errors", 0)),
            )
        )
    return rows


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


def measured(outcomes: list[Outcome], key: str) -> Outcome | None:
    """The scenario's outcome, if it produced numbers (the bars' look-up)."""
    return next((o for o in outcomes if o.scenario.key == key and o.measured), None)


def verdict(ok: bool, *sources: Outcome) -> str:
    """A bar row's verdict: FAIL whenever its scenarios had errors, whatever the numbers."""
    errors = sum(o.errors for o in sources)
    if errors:
        return f"FAIL ({errors} errors)"
    return "PASS" if ok else "FAIL"


def cpu_spread(small: Outcome | None, large: Outcome | None) -> float | None:
    """Server CPU per request of a list page at the large size ÷ at the small one."""
    if small is None or large is None:
        return None
    a, b = small.server_cpu.get("us_per_request"), large.server_cpu.get("us_per_request")
    return b / a if a and b else None


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
        if o.result
        and o.server_cpu.get("us_per_request")
        and o.scenario.server in FIRST_BAR
        and o.scenario.baseline == "bare"
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
        elif o.errors:
            problems = "; ".join(str(p) for p in o.figures.get("problems", []))
            notes.append(f"- **{o.scenario.title}**: {o.errors} errors: {problems[:500]}")
    return ("Problems in this run:\n\n" + "\n".join(notes) + "\n\n") if notes else ""
