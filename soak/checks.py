"""The invariants a run must keep, checked in the database and the markers the builds left."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from dataclasses import dataclass, field

from soak.client import Stats
from soak.cluster import TOKEN, WEBHOOK_SECRET, Cluster
from soak.db import query
from soak.ledger import Ledger, forms


@dataclass
class Check:
    name: str
    held: bool
    detail: str
    examples: list[str] = field(default_factory=list)


def _when(text: str | None) -> float | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def one_connection_per_repository(cluster: Cluster, ledger: Ledger) -> Check:
    dups = query(
        cluster,
        "SELECT account_id, provider_type, repo_id, COUNT(*) FROM "
        "repo_connections GROUP BY account_id, provider_type, repo_id "
        "HAVING COUNT(*) > 1",
    )
    split = {repo: uuids for repo, uuids in ledger.connections.items() if len(uuids) > 1}
    puts = sum(len(bodies) for bodies in ledger.connection_bodies.values())
    examples = [f"duplicate rows {row}" for row in dups]
    examples += [f"repo {repo} answered with uuids {sorted(u)}" for repo, u in split.items()]
    return Check(
        "one connection per (account, provider_type, repo_id)",
        not dups and not split,
        f"{len(ledger.connections)} repositories, {puts} PUTs sent; {len(dups)} duplicated, "
        f"{len(split)} answered with more than one uuid",
        examples,
    )


def builds_table(cluster: Cluster) -> dict[str, tuple[str, str | None, str | None, str | None]]:
    rows = query(
        cluster, "SELECT build_uuid, status, build_outcome, running_on, stopped_on FROM builds"
    )
    return {str(r[0]): (str(r[1]), r[2], r[3], r[4]) for r in rows}


def no_build_started_twice(cluster: Cluster, builds: dict, notes: list[str]) -> Check:
    """Each start of a build (deploy) command left <build_uuid>.<pid>(.deploy): at most one of
    each per build, exactly one of each per success."""
    starts: dict[str, Counter[str]] = {"build": Counter(), "deploy": Counter()}
    started_at: dict[tuple[str, str], float] = {}
    for marker in cluster.markers():
        step = "deploy" if marker.name.endswith(".deploy") else "build"
        build_uuid = marker.name.split(".")[0]
        starts[step][build_uuid] += 1
        started_at[step, build_uuid] = marker.stat().st_mtime
    examples, twice, unstarted = [], 0, 0
    for step, counts in starts.items():
        for build_uuid, n in counts.items():
            if n > 1 or build_uuid not in builds:
                twice += 1
                examples.append(
                    f"{step} command of {build_uuid} started {n} times "
                    f"({'unknown build' if build_uuid not in builds else 'twice'})"
                )
        for build_uuid, row in builds.items():
            if row[1] == "success" and counts[build_uuid] != 1:
                unstarted += 1
                examples.append(f"{build_uuid} succeeded with {counts[build_uuid]} {step} starts")
    _late_starts(builds, started_at, notes)
    return Check(
        "no build started twice",
        not examples,
        f"{sum(starts['build'].values())} build and {sum(starts['deploy'].values())} deploy "
        f"command starts over {len(starts['build'])} builds; {twice} started twice, "
        f"{unstarted} successes without exactly one start of each",
        examples[:10],
    )


def _late_starts(builds: dict, started_at: dict[tuple[str, str], float], notes: list[str]) -> None:
    """Commands that started after their build had already stopped (cancelled, terminated)."""
    late: Counter[str] = Counter()
    first: dict[str, str] = {}
    for (step, build_uuid), when in sorted(started_at.items()):
        _, outcome, running_on, stopped_on = builds.get(build_uuid, ("?", None, None, None))
        stopped = _when(stopped_on)
        if stopped is not None and when > stopped + 0.01:
            key = f"{step} command of a {outcome} build"
            late[key] += 1
            first.setdefault(
                key,
                f"{build_uuid}: started {when - stopped:.2f} s after its "
                f"stopped_on {stopped_on} (running_on {running_on})",
            )
    for key, n in late.most_common():
        notes.append(f"{n}× a {key} started after the build had stopped, e.g. {first[key]}")


def every_build_settled(builds: dict) -> tuple[Check, Counter[str]]:
    by_status = Counter(b[0] for b in builds.values())
    stuck = [u for u, b in builds.items() if b[0] in ("initializing", "running")]
    outcomes = Counter(b[1] or b[0] for b in builds.values())
    return Check(
        "every build stopped or still queued (none stuck initializing/running)",
        not stuck,
        f"{len(builds)} builds: " + ", ".join(f"{n} {s}" for s, n in sorted(by_status.items())),
        [f"{u} still {builds[u][0]}" for u in stuck[:10]],
    ), outcomes


def logs_gapless(cluster: Cluster) -> tuple[Check, dict[str, int]]:
    rows = query(
        cluster,
        "SELECT build_uuid, MIN(seq), MAX(seq), COUNT(*) FROM build_log_lines GROUP BY build_uuid",
    )
    gaps = [r for r in rows if not (r[1] == 1 and r[2] == r[3])]
    lines = sum(int(r[3]) for r in rows)
    return Check(
        "log sequences gapless (seq 1..N per build)",
        not gaps,
        f"{lines} lines over {len(rows)} builds; {len(gaps)} with a gap",
        [f"{r[0]}: seq {r[1]}..{r[2]} but {r[3]} lines" for r in gaps[:10]],
    ), {str(r[0]): int(r[3]) for r in rows}


def no_secret_shown(cluster: Cluster, ledger: Ledger, stats: Stats) -> Check:
    """Secret forms in stored log lines, responses, process logs; secrets stored encrypted."""
    secret_forms = ledger.secret_forms()
    lines = [str(r[0]) for r in query(cluster, "SELECT line FROM build_log_lines")]
    in_logs = [line for line in lines if any(form in line for form in secret_forms)]
    masked = sum(1 for line in lines if "********" in line)
    process_forms = secret_forms | forms(TOKEN) | forms(WEBHOOK_SECRET)
    in_process_logs = []
    for proc in cluster.procs:
        text = proc.log_path.read_text(errors="replace")
        in_process_logs += [f"{proc.name} log" for form in process_forms if form in text][:1]
    plain = set(ledger.secrets)
    stored = query(cluster, "SELECT value FROM environment_variables WHERE is_secret")
    stored += query(cluster, "SELECT build_token_secret FROM build_tokens")
    at_rest = [row for row in stored if str(row[0]) in plain]
    examples = [f"build log line: {line[:120]}" for line in in_logs[:5]]
    examples += in_process_logs + stats.leaks[:5]
    examples += [f"{len(at_rest)} secret(s) stored in plain text"] if at_rest else []
    return Check(
        "no secret in a build log, a response or a process log (and none stored in plain text)",
        not (in_logs or in_process_logs or stats.leaks or at_rest),
        f"{len(ledger.secrets)} secrets in {len(secret_forms)} forms; {len(lines)} log lines "
        f"({masked} masked), {stats.responses_scanned} responses, {len(cluster.procs)} process "
        f"logs scanned; {len(in_logs)} + {len(stats.leaks)} + {len(in_process_logs)} leaks",
        examples,
    )


def deliveries_matched_once(cluster: Cluster, ledger: Ledger) -> Check:
    """Every acknowledged accepted delivery matched, once: its builds are exactly the pushes'."""
    rows = query(cluster, "SELECT delivery_uuid, status, processed_on FROM webhook_deliveries")
    stored = {str(r[0]): (str(r[1]), r[2]) for r in rows}
    decided: Counter[str] = Counter()
    for (decisions,) in query(cluster, "SELECT decisions FROM webhook_matches"):
        for decision in json.loads(decisions):
            if decision.get("build_uuid"):
                decided[decision["build_uuid"]] += 1
    pushes = {
        str(r[0])
        for r in query(
            cluster, "SELECT build_uuid FROM builds WHERE build_trigger_source = 'push_event'"
        )
    }
    missing = [u for u in ledger.deliveries if u not in stored]
    unmatched = [u for u, (status, done) in stored.items() if status == "accepted" and not done]
    twice = [u for u, n in decided.items() if n > 1]
    orphans = pushes - set(decided)
    examples = [f"acknowledged delivery {u} not stored" for u in missing[:5]]
    examples += [f"delivery {u} never matched" for u in unmatched[:5]]
    examples += [f"build {u} in {decided[u]} decisions" for u in twice[:5]]
    examples += [f"push build {u} in no decision" for u in sorted(orphans)[:5]]
    statuses = Counter(d.status for d in ledger.deliveries.values())
    return Check(
        "webhook deliveries stored and matched exactly once",
        not (missing or unmatched or twice or orphans or set(decided) - pushes),
        f"{len(ledger.deliveries)} acknowledged ("
        + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
        + f"); {len(pushes)} push builds, {sum(decided.values())} decisions naming a build",
        examples,
    )


def no_server_error(stats: Stats) -> Check:
    return Check(
        "no 5xx answer",
        not stats.server_errors,
        f"{sum(stats.requests.values())} requests, {len(stats.server_errors)} answered 5xx",
        stats.server_errors[:10],
    )
