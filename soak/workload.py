"""The writes of the workload, each acknowledged one recorded in the ledger with what it wrote."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from soak.client import Api
from soak.cluster import WEBHOOK_SECRET, Cluster
from soak.ledger import BuildRecord, DeliveryRecord, Ledger, TriggerRecord

REPOS = ["7001", "7002", "7003"]  # connections the clients' triggers build from
HOOK_REPO = "7100"  # the repository webhook deliveries name
HOOK_TAG = secrets.token_hex(16)  # the Worker of the two push triggers
TRIGGER_FIELDS = ("trigger_name", "build_command", "deploy_command", "build_caching_enabled")
MAX_TRIGGERS_PER_TASK = 3


# Where each start of a command leaves a marker: the trigger's build cache (caching is always on
# here), the one place a sandboxed build may write that outlives the build. mktemp, not $$: every
# sandbox has a PID namespace of its own, so two starts could share a pid.
MARKERS = '"$npm_config_cache/../soak-markers"'


def build_command(salt: int) -> str:
    """Leaves one marker per start, prints the secrets (masking must hide them), sleeps <1 s."""
    return (
        f"echo start; mkdir -p {MARKERS}; "
        f"mktemp {MARKERS}/$WORKERS_CI_BUILD_UUID.XXXXXXXX >/dev/null; "
        'echo "secret=$SOAK_SECRET token=$CLOUDFLARE_API_TOKEN"; '
        'printf %s "$SOAK_SECRET" | base64; '
        f"sleep 0.$(( ($$ + {salt}) % 9 + 1 )); echo end"
    )


def deploy_command() -> str:
    """Leaves <build_uuid>.<random>.deploy: a deploy must not run twice, nor after a cancel."""
    return (
        f"echo deployed; mkdir -p {MARKERS}; "
        f"mktemp --suffix=.deploy {MARKERS}/$WORKERS_CI_BUILD_UUID.XXXXXXXX >/dev/null"
    )


@dataclass
class Workload:
    api: Api
    cluster: Cluster
    ledger: Ledger
    rng: random.Random
    secret_value: str  # the value of every trigger's secret variable SOAK_SECRET
    max_requests: int
    build_cap: int  # unfinished builds the clients allow themselves (keeps the queue short)

    def budget_left(self) -> bool:
        return sum(self.api.stats.requests.values()) < self.max_requests

    # --- setup ---------------------------------------------------------------------------------

    async def setup(self) -> None:
        """Tokens, connections, and (when the endpoint exists) the two push triggers."""
        probe = await self.api.call(
            "webhook probe",
            "POST",
            "/webhooks/github",
            content=b"{}",
            ok=(401, 503),
            quiet=(404, 405),
        )
        self.ledger.webhooks = probe is not None and probe.status_code == 401
        for _ in range(2):
            await self.create_token()
        for repo in [*REPOS, HOOK_REPO]:
            await self.upsert_connection(repo)
        if self.ledger.webhooks:
            for name, includes in (("hook-all", ["*"]), ("hook-src", ["src/*"])):
                await self.create_trigger(-1, HOOK_TAG, repo=HOOK_REPO, name=name, paths=includes)

    # --- the writes ----------------------------------------------------------------------------

    async def create_token(self) -> None:
        secret = "soakbuildtoken" + secrets.token_hex(16)
        self.ledger.secrets.append(secret)  # scanned for in every response from now on
        body = {
            "build_token_name": f"soak-{len(self.ledger.tokens)}",
            "build_token_secret": secret,
            "cloudflare_token_id": secrets.token_hex(16),
        }
        made = await self.api.result("create token", "POST", "/tokens", json=body)
        if made is not None:
            self.ledger.tokens[made["build_token_uuid"]] = secret

    def connection_body(self, repo: str) -> dict[str, str]:
        return {
            "provider_account_id": self.rng.choice(["41", "42", "43"]),
            "provider_account_name": "octo-org",
            "provider_type": "github",
            "repo_id": repo,
            "repo_name": "my-worker",
        }

    async def upsert_connection(self, repo: str, op: str = "upsert connection") -> None:
        body = self.connection_body(repo)
        self.ledger.connection_bodies.setdefault(repo, []).append(body)
        made = await self.api.result(op, "PUT", "/repos/connections", json=body)
        if made is not None:
            self.ledger.connections.setdefault(repo, set()).add(made["repo_connection_uuid"])

    async def concurrent_upserts(self, task: int) -> None:
        """Four PUTs of one repository at once, spread over the servers: one row, one uuid."""
        fresh = self.rng.random() < 0.6
        repo = f"9{task}{self.rng.randrange(10**6)}" if fresh else self.rng.choice(REPOS)
        await asyncio.gather(
            *(self.upsert_connection(repo, "upsert connection (concurrent)") for _ in range(4))
        )

    async def create_trigger(
        self, owner: int, tag: str, *, repo: str | None = None, name: str = "", paths: Any = None
    ) -> None:
        repo = repo or self.rng.choice(REPOS)
        if not self.ledger.connections.get(repo) or not self.ledger.tokens:
            return
        body = {
            "external_script_id": tag,
            "repo_connection_uuid": sorted(self.ledger.connections[repo])[0],
            "build_token_uuid": self.rng.choice(sorted(self.ledger.tokens)),
            "trigger_name": name or f"soak-{owner}-{self.rng.randrange(10**6)}",
            "branch_includes": ["main"],
            "path_includes": paths or ["*"],
            "build_command": build_command(self.rng.randrange(9)),
            "deploy_command": deploy_command(),
        }
        made = await self.api.result("create trigger", "POST", "/triggers", json=body)
        if made is None:
            return
        fields = {key: made[key] for key in TRIGGER_FIELDS}
        self.ledger.triggers[made["trigger_uuid"]] = TriggerRecord(owner, fields, [])
        self.ledger.worker_tags.add(tag)
        await self.set_variables(made["trigger_uuid"], first=True)

    async def patch_trigger(self, trigger_uuid: str) -> None:
        record = self.ledger.triggers[trigger_uuid]
        changes = {
            "trigger_name": f"soak-{record.owner}-{self.rng.randrange(10**6)}",
            "build_command": build_command(self.rng.randrange(9)),
            "build_caching_enabled": True,  # where the markers go (MARKERS)
        }
        path = f"/triggers/{trigger_uuid}"
        if await self.api.result("patch trigger", "PATCH", path, json=changes) is None:
            record.candidates.append({**record.fields, **changes})
        else:
            record.fields.update(changes)
            record.candidates.clear()

    async def set_variables(self, trigger_uuid: str, first: bool = False) -> None:
        record = self.ledger.triggers[trigger_uuid]
        changes: dict[str, Any] = {"SOAK_SECRET": {"value": self.secret_value, "is_secret": True}}
        if not first:
            key = f"PLAIN_{self.rng.randrange(4)}"
            deleting = key in record.variables and self.rng.random() < 0.3
            changes[key] = None if deleting else {"value": secrets.token_hex(4)}
        if self.rng.random() < 0.3 and all(v is not None for v in changes.values()):
            body: Any = {
                "variables": [  # the guide's list form
                    {
                        "key": k,
                        "value": v["value"],
                        "type": "secret" if v.get("is_secret") else "text",
                    }
                    for k, v in changes.items()
                ]
            }
        else:
            body = changes
        path = f"/triggers/{trigger_uuid}/environment_variables"
        if await self.api.result("set variables", "PATCH", path, json=body) is None:
            record.variables_uncertain = True
            return
        for key, value in changes.items():
            if value is None:
                record.variables.pop(key, None)
            else:
                secret = bool(value.get("is_secret"))
                record.variables[key] = (None if secret else value["value"], secret)

    async def start_build(self, trigger_uuid: str) -> None:
        body: dict[str, str] = {"branch": "main"}
        if self.rng.random() < 0.3:
            body["commit_hash"] = self.cluster.commit
        path = f"/triggers/{trigger_uuid}/builds"
        made = await self.api.result("start build", "POST", path, json=body)
        if made is not None:
            self.ledger.builds[made["build_uuid"]] = BuildRecord(trigger_uuid, "manual")

    async def cancel_build(self) -> None:
        unfinished = [u for u, b in self.ledger.builds.items() if b.status != "stopped"]
        pool = unfinished if unfinished and self.rng.random() < 0.6 else list(self.ledger.builds)
        if not pool:
            return
        build_uuid = self.rng.choice(pool)
        path = f"/builds/{build_uuid}/cancel"
        answer = await self.api.result("cancel build", "PUT", path)
        if answer is not None:
            self.ledger.builds[build_uuid].cancels.append(answer["build_outcome"])

    async def deliver(self, redeliver: bool = False) -> None:
        """A signed GitHub push; sometimes one delivery twice at once (a redelivery race)."""
        repo = HOOK_REPO if self.rng.random() < 0.85 else str(self.rng.randrange(10**8))
        commit = {
            "id": self.cluster.commit,
            "message": "soak push",
            "author": {"name": "Soak"},
            "added": [],
            "removed": [],
            "modified": [self.rng.choice(["README.md", "src/index.js"])],
        }
        payload = {
            "ref": "refs/heads/main",
            "before": "0" * 40,
            "after": self.cluster.commit,
            "repository": {"id": int(repo), "full_name": "octo-org/my-worker"},
            "commits": [commit],
            "head_commit": commit,
            "pusher": {"name": "soak"},
        }
        raw = json.dumps(payload).encode()
        digest = hmac.new(WEBHOOK_SECRET.encode(), raw, hashlib.sha256).hexdigest()
        delivery_id = str(uuid.uuid4())
        headers = {
            "Content-Type": "application/json",
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": delivery_id,
            "X-Hub-Signature-256": f"sha256={digest}",
        }

        async def send() -> None:
            reply = await self.api.call(
                "webhook delivery", "POST", "/webhooks/github", content=raw, headers=headers
            )
            if reply is not None:
                ack = reply.json()["result"]
                self.ledger.deliveries[ack["delivery_uuid"]] = DeliveryRecord(
                    delivery_id, ack["status"], repo
                )

        await asyncio.gather(*(send() for _ in range(2 if redeliver else 1)))
