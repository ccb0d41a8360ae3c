"""Real git repositories for tests: a bare one the runner clones by file://, and a work tree."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Ada Lovelace",
    "GIT_AUTHOR_EMAIL": "ada@example.com",
    "GIT_COMMITTER_NAME": "Ada Lovelace",
    "GIT_COMMITTER_EMAIL": "ada@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": "/tmp",
    "PATH": "/usr/local/bin:/usr/bin:/bin",
}


@dataclass
class Repo:
    """A bare repository (what the runner clones) and a work tree to commit from."""

    bare: Path
    work: Path

    def git(self, *args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(self.work), *args],
            env=GIT_ENV,
            check=True,
            capture_output=True,
            text=True,
        )
        return done.stdout.strip()

    def commit(self, files: dict[str, str], message: str, branch: str = "main") -> str:
        self.git("checkout", "-q", "-B", branch)
        for name, content in files.items():
            path = self.work / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
            if name.endswith(".sh"):
                path.chmod(0o755)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        self.git("push", "-q", "origin", branch)
        return self.git("rev-parse", "HEAD")


def make_repo(tmp_path: Path) -> Repo:
    """octo-org/my-worker.git under tmp_path/git, with one commit on main."""
    bare = tmp_path / "git" / "octo-org" / "my-worker.git"
    work = tmp_path / "work"
    bare.parent.mkdir(parents=True)
    subprocess.run(
        ["git", "init", "-q", "--bare", "-b", "main", str(bare)], env=GIT_ENV, check=True
    )
    subprocess.run(
        ["git", "clone", "-q", str(bare), str(work)], env=GIT_ENV, check=True, capture_output=True
    )
    made = Repo(bare, work)
    made.commit({"README.md": "hello\n"}, "Initial commit")
    return made
