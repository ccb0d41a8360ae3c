"""What the services need of the build sandbox: runner/sandbox.py, given by the composition root."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class Confinement(Protocol):
    def mode(self) -> str:
        """ "bwrap", "off" (chosen) or "unavailable" (auto, and bubblewrap does not work)."""
        ...

    def refusal(self, several_accounts: bool) -> str | None:
        """Why nothing may run unconfined (with more than one account, or at all), or None."""
        ...

    def unreachable(self, path: Path) -> str | None:
        """Why a sandboxed command could not be given `path`, or None."""
        ...

    def clone_command(self, url: str, scratch: Path, branch: str) -> tuple[list[str], str]:
        """The argv of a shallow clone of `url` at `branch` into `scratch`/repo, run as a
        build's clone is, and the HOME it must be given."""
        ...
