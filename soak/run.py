"""`make soak`: chaos under load on PostgreSQL and SQLite; writes docs/reliability.md."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from soak import report, scenario
from soak.cluster import PG_ADMIN_URL, postgres_reachable

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "docs" / "reliability.md"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m soak.run", description=__doc__)
    parser.add_argument("--duration", type=float, default=60, help="seconds of load per database")
    parser.add_argument("--clients", type=int, default=6, help="concurrent client tasks")
    parser.add_argument("--max-requests", type=int, default=100_000, help="per database")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--postgres-only", action="store_true", help="skip the SQLite run")
    only.add_argument("--sqlite-only", action="store_true", help="skip the PostgreSQL run")
    parser.add_argument("--report", type=Path, default=REPORT, help="Markdown page to write")
    parser.add_argument("--keep-temp", action="store_true", help="keep logs and data dirs")
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.clients < 1 or args.max_requests < 1:
        parser.error("--duration > 0, --clients ≥ 1, --max-requests ≥ 1")
    return args


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # outside the event loop, SIGTERM cleans up as Ctrl-C does


async def _cancellable(backend: str, args: argparse.Namespace, seed: int) -> scenario.RunResult:
    """The run, cancelled (so cleaned up) by SIGTERM as asyncio.run cancels it on Ctrl-C."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await scenario.run(
            backend,
            duration=args.duration,
            clients=args.clients,
            seed=seed,
            max_requests=args.max_requests,
            keep=args.keep_temp,
        )
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        signal.signal(signal.SIGTERM, _terminate)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    seed = args.seed if args.seed is not None else random.randrange(10**6)
    print(f"soak: {args.duration:.0f} s per database, {args.clients} clients, seed {seed}")
    backends = [] if args.sqlite_only else ["postgresql"]
    backends += [] if args.postgres_only else ["sqlite"]
    runs, skipped, failed = [], [], False
    for backend in backends:
        if backend == "postgresql" and (why := postgres_reachable()) is not None:
            message = f"skipped: PostgreSQL is not reachable at {PG_ADMIN_URL} ({why})"
            print(f"postgresql: {message}", flush=True)
            skipped.append(f"postgresql\n\n{message}")
            continue
        print(f"== {backend}: starting", flush=True)
        try:
            run = asyncio.run(_cancellable(backend, args, seed))
        except (KeyboardInterrupt, asyncio.CancelledError):
            print("soak: interrupted; processes stopped, temporary data removed", flush=True)
            return 130
        except Exception:
            traceback.print_exc()
            skipped.append(f"{backend}\n\nThe run failed:\n\n```\n{traceback.format_exc()}```")
            failed = True
            continue
        print(report.summary(run), flush=True)
        runs.append(run)
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    args.report.write_text(report.render(date, seed, runs, skipped))
    print(f"soak: wrote {args.report}", flush=True)
    clean = runs and not failed and all(run.held for run in runs)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
