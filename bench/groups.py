"""Run each server group's scenarios: start its server, set it up, measure, stop it."""

from __future__ import annotations

import argparse
import functools
import http.client
import time
import traceback
from typing import Any

from bench import builds, sandbox, scripts, servers, webhooks, wrk
from bench.client import BUILDS, Client
from bench.machine import busy_cpu_seconds, load_cpu_seconds
from bench.report import Outcome, describe_errors

REPOS = 10_000
# The order the groups run in (the table keeps the order of report.SCENARIOS).
ORDER = ("bare", "sqlite", "postgres", "builds", "scripts", "runner", "webhooks", "sandbox")
# What a set-up or a measurement may raise that fails one scenario, not the whole run.
FAILURES = (servers.ServerError, wrk.WrkError, OSError, http.client.HTTPException)


class Meter:
    """CPU of the server, of its build processes, of the load side and of everything else."""

    def __init__(self, server: servers.Server) -> None:
        self.server = server
        self.start = self._read()

    def _read(self) -> tuple[float, ...]:
        return (
            self.server.cpu_seconds(),
            self.server.cpu_seconds(children=True),
            load_cpu_seconds(),
            busy_cpu_seconds(),
            time.monotonic(),
        )

    def stop(self, outcome: Outcome, requests: int | None = None) -> None:
        server, builds_cpu, load, machine, elapsed = (
            b - a for a, b in zip(self.start, self._read(), strict=True)
        )
        # Where a row stands regardless of how wrk shares the CPU: server CPU per request. And
        # whatever else ran meanwhile (another test suite, PostgreSQL for its row), in cores.
        outcome.server_cpu = {"cores": round(server / elapsed, 3)}
        if requests is not None:
            outcome.server_cpu["us_per_request"] = (
                round(server / requests * 1e6, 1) if requests else None
            )
        if builds_cpu:
            outcome.server_cpu["build_processes_cores"] = round(builds_cpu / elapsed, 3)
        outcome.wrk_cores = round(load / elapsed, 3)
        other = machine - server - builds_cpu - load
        outcome.other_cores = round(max(0.0, other) / elapsed, 3)
        outcome.memory_mb = self.server.memory_mb()


def measure(
    server: servers.Server,
    outcome: Outcome,
    args: argparse.Namespace,
    context: dict[str, str],
    token: str = servers.TOKEN,
) -> None:
    """Warm up and load one wrk scenario, after checking it answers what it should."""
    scenario = outcome.scenario
    path = scenario.path.format(**context)
    if not path.startswith("/client/"):
        path = BUILDS + path
    servers.probe(server, "/readyz", auth=False)
    if scenario.builds:
        builds.check_list(server, builds.TAG_LIST[scenario.builds], scenario.builds)
    elif scenario.method == "GET":
        servers.probe(
            server, path, auth=scenario.auth, expect_count=scenario.expect_count, token=token
        )
    body = f"@{scripts.bundle_file()}" if scenario.bundle else scenario.body

    def load(seconds: float) -> wrk.WrkResult:
        return wrk.run(
            server.base_url + path,
            method=scenario.method,
            token=token if scenario.auth else None,
            repos=REPOS,
            duration=seconds,
            connections=args.connections,
            threads=args.threads,
            body=body,
            content_type=scripts.CONTENT_TYPE if scenario.bundle else "application/json",
        )

    if args.warmup > 0:
        print(f"  {scenario.key}: warm-up {args.warmup:g} s", flush=True)
        outcome.warmup = load(args.warmup)
        if outcome.warmup.errors:
            print(f"  {scenario.key}: warm-up had {outcome.warmup.errors} errors", flush=True)
    print(f"  {scenario.key}: measuring {args.duration:g} s", flush=True)
    meter = Meter(server)
    outcome.result = r = load(args.duration)
    meter.stop(outcome, r.requests)
    print(
        f"  {scenario.key}: {r.requests_per_s:,.0f} req/s, p50 {r.p50_ms:.2f} ms, "
        f"p99 {r.p99_ms:.2f} ms, RSS {outcome.memory_mb.get('VmRSS', 0):.0f} MB, "
        f"server CPU {outcome.server_cpu['us_per_request']} µs/request, "
        f"other processes {outcome.other_cores:.2f} cores, "
        f"errors {r.errors}" + (f" ({describe_errors(r)})" if r.errors else ""),
        flush=True,
    )


def _measure_each(
    server: servers.Server,
    outcomes: list[Outcome],
    args: argparse.Namespace,
    context: dict[str, str],
) -> None:
    for outcome in outcomes:
        try:
            measure(server, outcome, args, context)
        except FAILURES as exc:
            _failed(outcome, exc, server)


def _failed(outcome: Outcome, exc: BaseException, server: servers.Server | None) -> None:
    detail = "".join(traceback.format_exception_only(exc)).strip()
    if server is not None:
        detail += f"\n--- server log ---\n{server.log_tail()}"
    outcome.failure = detail
    print(f"  {outcome.scenario.key}: FAILED: {detail}", flush=True)


def _slots(outcomes: list[Outcome]) -> int:
    """The runner slots the group's server gets: its scenarios must agree on them."""
    wanted = {o.scenario.runner_slots for o in outcomes}
    if len(wanted) != 1:
        raise ValueError(f"scenarios of one server disagree on runner slots: {sorted(wanted)}")
    return wanted.pop()


def run_group(
    group: str, outcomes: list[Outcome], args: argparse.Namespace, context: dict[str, Any]
) -> None:
    """Start the group's server once (twice for builds) and run its scenarios on it, in order."""
    if group == "builds":
        _run_builds(outcomes, args)
    elif group == "scripts":
        _run_scripts(outcomes, args)
    elif group == "runner":
        _run_runner(outcomes)
    elif group == "webhooks":
        for outcome in outcomes:
            _run_webhooks(outcome)
    elif group == "sandbox":
        for outcome in outcomes:
            _run_sandbox(outcome)
    elif group == "postgres":
        if args.skip_postgres:
            for outcome in outcomes:
                outcome.skipped = "--skip-postgres"
            return
        version = servers.postgres_version()
        if version is None:
            for outcome in outcomes:
                outcome.skipped = f"PostgreSQL not reachable at {servers.PG_ADMIN_URL}"
            print("  skipping the PostgreSQL scenario", flush=True)
            return
        context["postgresql"] = version
        with servers.postgres_database() as url:
            print(f"  created database {url.rsplit('/', 1)[1]}", flush=True)
            _run_on(group, outcomes, args, "buildsd", url)
    else:
        _run_on(group, outcomes, args, "bare" if group == "bare" else "buildsd", None)


def _run_on(
    group: str,
    outcomes: list[Outcome],
    args: argparse.Namespace,
    kind: str,
    database_url: str | None,
) -> None:
    slots = _slots(outcomes)
    with servers.running(group, kind, database_url, runner_slots=slots) as server:
        print(f"  {group}: pid {server.process.pid} on {server.base_url}", flush=True)
        if kind == "buildsd":
            seconds = servers.preload(server, REPOS)
            print(f"  {group}: pre-loaded {REPOS:,} repositories in {seconds:.1f} s", flush=True)
        _measure_each(server, outcomes, args, {})


def _run_builds(outcomes: list[Outcome], args: argparse.Namespace) -> None:
    """POST build and the build lists, on a server without a runner (builds stay queued).

    The lists' Workers get one build each over HTTP; with the server stopped, that build is
    replaced by 1,000 / 100,000 rows written straight into its SQLite file; then the server
    starts again on the same data and is loaded.
    """
    lists = [o for o in outcomes if o.scenario.builds]
    others = [o for o in outcomes if not o.scenario.builds]
    with servers.scratch("builds") as workdir:
        start = functools.partial(
            servers.running, "builds", "buildsd", runner_slots=_slots(outcomes), workdir=workdir
        )
        with start() as server:
            print(f"  builds: pid {server.process.pid} on {server.base_url}", flush=True)
            with Client(server) as client:
                setup = builds.Setup(client)
                context = {"trigger_uuid": setup.trigger(builds.TAG_CREATE)}
                for outcome in lists:
                    setup.build(setup.trigger(builds.TAG_LIST[outcome.scenario.builds]))
            if not lists:
                _measure_each(server, others, args, context)
                return
        database = workdir / "data" / "buildsd.sqlite3"
        seeded: dict[str, float] = {}
        for outcome in lists:
            count = outcome.scenario.builds
            seconds = builds.seed_builds(database, builds.TAG_LIST[count], count)
            seeded[str(count)] = round(seconds, 2)
            print(f"  builds: seeded {count:,} builds in {seconds:.1f} s", flush=True)
        for outcome in lists:
            outcome.setup["seeded"] = seeded
        with start() as server:
            print(f"  builds: restarted, pid {server.process.pid} on {server.base_url}", flush=True)
            # The lists first: POST build then adds builds (to another Worker) as it is loaded.
            _measure_each(server, lists + others, args, context)


def _run_scripts(outcomes: list[Outcome], args: argparse.Namespace) -> None:
    """The scripts list page at 10 and at 10,000 Workers (two accounts of one database), then
    the 1 MiB upload, on a server without a runner.

    Each account gets its Workers by small uploads over HTTP; with the server stopped, the
    second account's one Worker is copied into 10,000 straight into its SQLite file; then the
    server starts again on the same data and is loaded.
    """
    lists = [o for o in outcomes if o.scenario.key.startswith("script-list")]
    with servers.scratch("scripts") as workdir:
        data = workdir / "data"
        start = functools.partial(
            servers.running, "scripts", "buildsd", runner_slots=_slots(outcomes), workdir=workdir
        )
        context, tokens = {"account_10k": ""}, {}
        if lists:
            with start() as server:
                print(f"  scripts: pid {server.process.pid} on {server.base_url}", flush=True)
                account, token = scripts.second_account(data)
                context["account_10k"], tokens["script-list-10k"] = account, token
                with Client(server) as client:
                    names = [f"listed-{n:02d}" for n in range(scripts.LIST_SMALL)]
                    scripts.upload_small(client, servers.ACCOUNT_ID, names)
                with Client(server, token=token) as client:
                    scripts.upload_small(client, account, ["seeded-00000"])
            seconds = scripts.seed_workers(data / "buildsd.sqlite3", account, scripts.LIST_LARGE)
            print(f"  scripts: seeded {scripts.LIST_LARGE:,} Workers in {seconds:.1f} s")
            for outcome in lists:
                outcome.setup["seeded_workers_s"] = round(seconds, 2)
        with start() as server:
            print(f"  scripts: pid {server.process.pid} on {server.base_url}", flush=True)
            # The lists first: the upload adds a Worker to the first account.
            for outcome in lists + [o for o in outcomes if o not in lists]:
                key = outcome.scenario.key
                token = tokens.get(key, servers.TOKEN)
                try:
                    with Client(server, token=token) as client:
                        if key == "script-upload":
                            scripts.check_upload(client)
                        else:
                            large = key == "script-list-10k"
                            account = context["account_10k"] if large else servers.ACCOUNT_ID
                            count = scripts.LIST_LARGE if large else scripts.LIST_SMALL
                            scripts.check_list(client, account, count)
                    measure(server, outcome, args, context, token)
                except FAILURES as exc:
                    _failed(outcome, exc, server)


def _run_runner(outcomes: list[Outcome]) -> None:
    """Queue latency and log ingest, on a server whose in-process runner clones a local repo."""
    with servers.scratch("runner") as workdir:
        builds.make_git_repo(workdir)
        env = {"BUILDSD_GIT_URL_GITHUB": builds.git_url_template(workdir)}
        with servers.running(
            "runner", "buildsd", runner_slots=_slots(outcomes), env=env, workdir=workdir
        ) as server:
            print(f"  runner: pid {server.process.pid} on {server.base_url}", flush=True)
            with Client(server) as client:
                setup = builds.Setup(client)
                triggers = {
                    "queue-latency": setup.trigger(builds.TAG_QUEUE),
                    "log-ingest": setup.trigger(builds.TAG_LOGS, f"seq 1 {builds.LOG_LINES}"),
                }
            for outcome in outcomes:
                key = outcome.scenario.key
                print(f"  {key}: measuring", flush=True)
                try:
                    meter = Meter(server)
                    if key == "queue-latency":
                        outcome.figures = builds.queue_latency(server, triggers[key])
                    else:
                        outcome.figures = builds.log_ingest(server, triggers[key])
                    meter.stop(outcome)
                except FAILURES as exc:
                    _failed(outcome, exc, server)
                    continue
                print(f"  {key}: {_summary(outcome)}", flush=True)


def _run_webhooks(outcome: Outcome) -> None:
    """The bursts against the bare ASGI app (the scale), then against buildsd on SQLite with a
    GitHub webhook secret and one trigger on the repository the deliveries push to."""
    key = outcome.scenario.key
    with servers.running("webhooks-bare", "bare") as bare:
        print(f"  {key}: bare ASGI, pid {bare.process.pid} on {bare.base_url}", flush=True)
        try:
            baseline = webhooks.baseline(bare)
        except FAILURES as exc:
            _failed(outcome, exc, bare)
            return
    print(
        f"  {key}: bare ASGI ack p50 {baseline['bare_p50_ms']:.1f} / "
        f"p99 {baseline['bare_p99_ms']:.1f} ms, errors {baseline['bare_errors']}",
        flush=True,
    )
    env = {"BUILDSD_GITHUB_WEBHOOK_SECRET": webhooks.SECRET}
    slots = outcome.scenario.runner_slots
    with servers.running("webhooks", "buildsd", runner_slots=slots, env=env) as server:
        print(f"  {key}: buildsd, pid {server.process.pid} on {server.base_url}", flush=True)
        try:
            with Client(server) as client:
                builds.Setup(client).trigger(builds.TAG_WEBHOOKS)
            print(f"  {key}: measuring", flush=True)
            meter = Meter(server)
            figures = webhooks.ack_latency(server, builds.TAG_WEBHOOKS)
            # Server CPU per delivery: its answer, its matching, and the benchmark's polls.
            meter.stop(outcome, figures["deliveries"] + figures["redelivered"])
        except FAILURES as exc:
            _failed(outcome, exc, server)
            return
    problems = [f"bare ASGI: {p}" for p in baseline.pop("bare_problems")] + figures["problems"]
    outcome.figures = {**baseline, **figures, "errors": len(problems), "problems": problems}
    print(f"  {key}: {_summary(outcome)}", flush=True)


def _run_sandbox(outcome: Outcome) -> None:
    """Two servers on one repository, one sandboxed (the default) and one BUILDSD_SANDBOX=off,
    and bare clones beside them, all in the same run."""
    with servers.scratch("sandbox") as workdir:
        builds.make_git_repo(workdir)
        git = {"BUILDSD_GIT_URL_GITHUB": builds.git_url_template(workdir)}
        on, off = workdir / "on", workdir / "off"
        on.mkdir()
        off.mkdir()
        try:
            with (
                servers.running("sandbox-on", "buildsd", env=git, workdir=on) as sandboxed,
                servers.running(
                    "sandbox-off", "buildsd", env={**git, "BUILDSD_SANDBOX": "off"}, workdir=off
                ) as unsandboxed,
            ):
                pids = f"{sandboxed.process.pid} (bwrap), {unsandboxed.process.pid} (off)"
                print(f"  sandbox: measuring on pids {pids}", flush=True)
                outcome.figures = sandbox.measure(sandboxed, unsandboxed, workdir)
        except FAILURES as exc:
            _failed(outcome, exc, None)
            return
    print(f"  sandbox: {_summary(outcome)}", flush=True)


def _summary(outcome: Outcome) -> str:
    f = outcome.figures
    if outcome.scenario.key == "queue-latency" and "running_p99_ms" in f:
        text = (
            f"POST → running p50 {f['running_p50_ms']:.1f} / p99 {f['running_p99_ms']:.1f} ms, "
            f"POST → initializing p50 {f['initializing_p50_ms']:.1f} / "
            f"p99 {f['initializing_p99_ms']:.1f} ms"
        )
    elif outcome.scenario.key == "webhooks" and "ack_p99_ms" in f:
        text = (
            f"ack p50 {f['ack_p50_ms']:.1f} / p99 {f['ack_p99_ms']:.1f} ms (bare ASGI "
            f"{f['bare_p50_ms']:.1f} / {f['bare_p99_ms']:.1f} ms), delivery → build queued p50 "
            f"{f['matched_p50_ms']:.1f} / p99 {f['matched_p99_ms']:.1f} ms, {f['builds']:,} "
            f"builds, {f['redelivered_duplicates']} of {f['redelivered']} redeliveries duplicate"
        )
    elif outcome.scenario.key == "sandbox" and "sandboxed_p50_ms" in f:
        text = (
            f"median sandboxed {f['sandboxed_p50_ms']:.1f} ms, off {f['unsandboxed_p50_ms']:.1f} "
            f"ms, bare {f['bare_p50_ms']:.1f} ms: the sandbox adds "
            f"{f['sandbox_overhead_ms']:.1f} ms"
        )
    elif outcome.scenario.key == "log-ingest" and "read_lines" in f:
        text = (
            f"{f.get('lines_per_s') or 0:,} lines/s, read back {f['read_lines']:,} lines in "
            f"{f['read_s']:.2f} s"
        )
    else:
        text = "no figures"
    return (
        f"{text}, RSS {outcome.memory_mb.get('VmRSS', 0):.0f} MB, other processes "
        f"{outcome.other_cores or 0:.2f} cores, errors {outcome.errors}"
        + (f" ({'; '.join(f.get('problems', []))[:500]})" if outcome.errors else "")
    )
