"""Logging set-up: one JSON object per line (or plain text), for every logger of the process."""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

import msgspec

from buildsd import clock

# Attributes every LogRecord has; anything else was passed with `extra=` and is a field.
# (uvicorn adds color_message, the same text with terminal colour codes.)
_STANDARD = set(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return msgspec.json.encode(line, enc_hook=str).decode()


class AccessLog:
    """The lines written on every request (its access line, a build's state changes), encoded
    once; every log line is written in batches by the loop.

    Through `logging`, an access line cost ~40 µs (record, caller lookup, formatter, a flush per
    line): a fifth of a request. Here it costs ~2 µs. Other log lines still go through `logging`
    but reach `write` (BatchedHandler), which spares each its own write and flush. Lines reach
    the stream within 50 ms; outside an event loop they are written at once.
    """

    FLUSH_SECONDS = 0.05

    def __init__(self, stream: IO[bytes] | None, *, json: bool = True) -> None:
        self.stream = stream  # None: nothing is written (not set up)
        self.enabled = stream is not None  # access lines on (level info or below)
        self.json = json
        self._pending: list[bytes] = []
        self._encoder = msgspec.json.Encoder(enc_hook=str)

    def emit(self, message: str, fields: dict[str, Any], logger: str = "buildsd.access") -> None:
        """An info line of `logger`, in the shape JsonFormatter gives (or as text)."""
        if not self.enabled:
            return
        now = clock.now()
        if self.json:
            head = {"time": now, "level": "info", "logger": logger, "message": message}
            self.write(self._encoder.encode({**head, **fields}))
        else:
            pairs = " ".join(f"{k}={v}" for k, v in fields.items())
            self.write(f"{now} INFO {logger}: {message} {pairs}".encode())

    def build_state(self, build_uuid: str, account_id: str, status: str, **fields: object) -> None:
        """One line per build state change, written as access lines are: through `logging`
        each cost 8 % of a POST build's instructions."""
        self.emit(
            f"build {build_uuid} {status}",
            {"build_uuid": build_uuid, "account": account_id, "status": status, **fields},
            logger="buildsd.builds",
        )

    def write(self, line: bytes, *, now: bool = False) -> None:
        if self.stream is None:
            return
        self._pending.append(line)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a thread or a command without a loop
            now = True
        if now:
            self.flush()
            return
        if len(self._pending) == 1:
            loop.call_later(self.FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        if self._pending and self.stream is not None:
            lines, self._pending = self._pending, []
            self.stream.write(b"\n".join(lines) + b"\n")
            self.stream.flush()


class BatchedHandler(logging.Handler):
    """buildsd's own info lines go out with the access lines' batches; the rest at once (a
    warning should not wait, and uvicorn's last lines come after the loop has stopped)."""

    def __init__(self, access_log: AccessLog) -> None:
        super().__init__()
        self.access_log = access_log

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record).encode("utf-8", "backslashreplace")
            if record.levelno <= logging.INFO and record.name.startswith("buildsd."):
                self.access_log.write(line)
            else:
                self.access_log.write(line, now=True)
        except Exception:
            self.handleError(record)


def configure(level: str, fmt: str) -> AccessLog:
    """Route every logger (uvicorn's too) through one handler on stderr; the writer of the
    lines written on every request, for the composition root to hand to the services.

    `auto` is JSON for machines and text for a person at a terminal.
    """
    # Nothing here uses the caller's file, thread or process names: skip computing them.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    as_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    access_log = AccessLog(sys.stderr.buffer, json=as_json)
    atexit.register(access_log.flush)  # what a stopping loop left pending
    access_log.enabled = logging.getLevelName(level.upper()) <= logging.INFO
    handler = BatchedHandler(access_log)
    if as_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # httpx logs every request at info: the sender's to the forges, which the outbox records
    # already (GET …/forge_updates), one line per update of every build. Its warnings stay.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
    return access_log
