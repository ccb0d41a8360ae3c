"""The rules and the transaction boundary: one class per resource, built once per process."""

from __future__ import annotations

from buildsd import crypto
from buildsd.config import Settings
from buildsd.db import Database
from buildsd.logs import AccessLog
from buildsd.services.administration import Administration
from buildsd.services.audit import AuditLog
from buildsd.services.autofill import ConfigAutofill
from buildsd.services.build_tokens import BuildTokens
from buildsd.services.builds import Builds
from buildsd.services.deploy_hooks import DeployHooks
from buildsd.services.deployments import Deployments
from buildsd.services.emulation import Emulation
from buildsd.services.event_subscriptions import EventSubscriptions
from buildsd.services.grants import Grants
from buildsd.services.health import Health
from buildsd.services.identity import Identity
from buildsd.services.log_stream import LogStreams
from buildsd.services.metrics import Metrics
from buildsd.services.outbox import Outbox
from buildsd.services.previews import Previews
from buildsd.services.repo_connections import RepoConnections
from buildsd.services.runs import Runs
from buildsd.services.sandboxing import Confinement
from buildsd.services.scripts import Scripts
from buildsd.services.secret_keys import SecretKeys
from buildsd.services.seeding import Seeder
from buildsd.services.triggers import Triggers
from buildsd.services.webhook_secrets import WebhookSecrets
from buildsd.services.webhooks import Webhooks
from buildsd.services.worker_builds import WorkerBuilds
from buildsd.services.workers import Workers


class Services:
    """Every service of one process, sharing one Database."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        schema_head: str,
        sandbox: Confinement,
        access_log: AccessLog,
    ) -> None:
        self.settings = settings
        self.access_log = access_log  # access lines and build states (logs.configure)
        self.db = db
        self.sandbox = sandbox
        self.identity = Identity(db, settings)
        self.admin = Administration(db, settings, self.identity)
        self.grants = Grants(db, settings)
        self.repo_connections = RepoConnections(db, self.grants)
        self.config_autofill = ConfigAutofill(db, settings, self.grants, sandbox)
        self.health = Health(db, schema_head, sandbox)
        cipher = crypto.Cipher(crypto.load_key(settings.secret_key, settings.data_path))
        self.cipher = cipher  # also seals the dashboard's session cookie
        self.build_tokens = BuildTokens(db, cipher)
        self.triggers = Triggers(db, cipher, settings.data_path / "cache")
        self.secret_keys = SecretKeys(db)
        self.metrics = Metrics()
        self.runs = Runs(db, settings, self.build_tokens, self.triggers, self.metrics, access_log)
        self.builds = Builds(db, settings, access_log, on_queued=self.runs.notify)
        self.log_streams = LogStreams(self.builds)  # one reader per watched build
        self.deploy_hooks = DeployHooks(db, self.builds)
        self.webhook_secrets = WebhookSecrets(db, settings, cipher)
        self.previews = Previews(db, settings, self.triggers, self.builds)
        self.webhooks = Webhooks(
            db, settings, self.builds, self.grants, self.webhook_secrets, self.previews
        )
        self.worker_builds = WorkerBuilds(db, self.triggers, self.grants)
        self.workers = Workers(db)
        self.scripts = Scripts(db)
        self.deployments = Deployments(db, self.scripts)
        self.audit = AuditLog(db)
        self.event_subscriptions = EventSubscriptions(db, settings, cipher)
        self.outbox = Outbox(db, settings, cipher, self.event_subscriptions)
        # Empty unless the control API is on.
        self.emulation = Emulation(db, self.identity, self.admin, self.grants)
        self.emulation.seeder = Seeder(
            self.admin, self.repo_connections, self.build_tokens, self.triggers, self.builds
        )

    async def open(self) -> None:
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()
