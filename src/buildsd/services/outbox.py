"""The outbox (D29): forge credentials, queuing a build's change in its own transaction, and
the claims, retries with backoff and give-ups of the senders that deliver them."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from buildsd import clock
from buildsd.config import Settings
from buildsd.crypto import Cipher, is_rsa_private_key
from buildsd.db import Connection, Database, Row
from buildsd.errors import InvalidRequestBody, NotFound
from buildsd.services.event_subscriptions import EventSubscriptions
from buildsd.store import accounts, builds, outbox, workers
from buildsd.wire import ForgeUpdate

FORGES = ("github", "gitlab", "gitea")
# The API a forge speaks for each provider type a connection can have; Gitea and Forgejo are
# connected as `github` (services/webhook_events.py) and speak their own status API.
_PROVIDER_TYPES = {"github": "github", "gitlab": "gitlab", "gitea": "github"}
_DEFAULT_API = {"github": "https://api.github.com", "gitlab": "https://gitlab.com/api/v4"}
_URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")
PRUNE_BATCH = 500  # rows one pruning transaction deletes: short, beside the builds' own
DAY_MS = 86_400_000
_NUMBER = re.compile(r"^[1-9][0-9]{0,19}$")


@dataclass(frozen=True)
class Delivery:
    """One claimed update and what sending it needs, the token decrypted."""

    row: Row
    api_url: str
    token: str  # with app_id: the GitHub App's private key (PEM)
    script: str  # the Worker's name, or its tag if it has none
    comment_id: str | None  # the build's PR/MR comment an earlier update made
    app_id: str | None = None  # a GitHub App: check runs instead of commit statuses
    installation_id: str | None = None  # None: the repository's installation is asked for
    check_run_id: str | None = None  # the build's check run an earlier update made

    @property
    def id(self) -> int:
        return int(self.row["id"])


@dataclass(frozen=True)
class Sent:
    """What a forge made that later updates of the build edit in place."""

    comment_id: str | None = None
    check_run_id: str | None = None


@dataclass(frozen=True)
class Outcome:
    """A send's end, recorded with the sender's next claim: `sent` when delivered, else the
    error and whether retrying can help."""

    delivery: Delivery
    sent: Sent | None = None
    error: str = ""
    permanent: bool = False


@dataclass(frozen=True)
class _Target:
    api_url: str
    secret: str
    app_id: str | None = None
    installation_id: str | None = None


def _after(seconds: float) -> str:
    return clock.format_epoch_ms(int((clock.parse(clock.now()).timestamp() + seconds) * 1000))


def backoff(settings: Settings, attempts: int) -> float:
    """Seconds before attempt `attempts + 1`: exponential, capped, with jitter (down to half)
    so the updates of many builds failing together do not come back together."""
    ceiling: float = min(
        settings.outbox_backoff_cap_seconds,
        settings.outbox_backoff_seconds * 2.0 ** min(attempts - 1, 30),
    )
    return ceiling * random.uniform(0.5, 1.0)


class Outbox:
    def __init__(
        self, db: Database, settings: Settings, cipher: Cipher, subscriptions: EventSubscriptions
    ) -> None:
        self._db = db
        self._settings = settings
        self._cipher = cipher
        self._subscriptions = subscriptions

    # --- credentials (`buildsd forge set|show|unset`) ----------------------------------------

    async def set_credential(
        self, account_id: str, forge: str, token: str, api_url: str | None
    ) -> str:
        """Store the account's token for `forge` (encrypted); returns the provider type it
        serves. A second one for the same provider type replaces the first."""
        if forge not in FORGES:
            raise InvalidRequestBody(f"forge must be one of {', '.join(FORGES)}")
        url = (api_url or _DEFAULT_API.get(forge, "")).rstrip("/")
        if not _URL.match(url):
            raise InvalidRequestBody("the API URL must be an http(s) URL (Gitea has no default)")
        if not token.strip():
            raise InvalidRequestBody("the token must not be empty")
        provider_type = _PROVIDER_TYPES[forge]
        await self._put(account_id, provider_type, forge, url, token.strip())
        return provider_type

    async def set_app(
        self,
        account_id: str,
        app_id: str,
        private_key: str,
        installation_id: str | None,
        api_url: str | None,
    ) -> str:
        """Store the account's GitHub App (its private key encrypted) as its GitHub credential:
        check runs, which GitHub lets only Apps write, instead of commit statuses."""
        url = (api_url or _DEFAULT_API["github"]).rstrip("/")
        if not _URL.match(url):
            raise InvalidRequestBody("the API URL must be an http(s) URL")
        if not _NUMBER.match(app_id):
            raise InvalidRequestBody("the App ID must be a number")
        if installation_id is not None and not _NUMBER.match(installation_id):
            raise InvalidRequestBody("the installation ID must be a number")
        if not is_rsa_private_key(private_key):  # never echoed: it is the secret
            raise InvalidRequestBody("the private key is not a PEM RSA private key")
        await self._put(
            account_id, "github", "github", url, private_key.strip(), app_id, installation_id
        )
        return "github"

    async def _put(
        self,
        account_id: str,
        provider_type: str,
        forge: str,
        url: str,
        secret: str,
        app_id: str | None = None,
        installation_id: str | None = None,
    ) -> None:
        async with self._db.transaction() as conn:
            if not await accounts.exists(conn, account_id):
                raise NotFound("no such account")
            await outbox.put_credential(
                conn,
                {
                    "account_id": account_id,
                    "provider_type": provider_type,
                    "forge": forge,
                    "api_url": url,
                    "token": self._cipher.encrypt(secret),
                    "created_on": clock.now(),
                    "app_id": app_id,
                    "installation_id": installation_id,
                },
            )

    async def credentials(self, account_id: str) -> list[Row]:
        """The account's forges, without their tokens."""
        async with self._db.connection() as conn:
            return await outbox.credentials_of(conn, account_id)

    async def unset_credential(self, account_id: str, forge: str) -> bool:
        if forge not in FORGES:
            raise InvalidRequestBody(f"forge must be one of {', '.join(FORGES)}")
        async with self._db.transaction() as conn:
            return await outbox.delete_credential(conn, account_id, _PROVIDER_TYPES[forge]) > 0

    # --- the sender's side ---------------------------------------------------------------------

    async def claim(self, limit: int, settled: Sequence[Outcome] = ()) -> list[Delivery]:
        """Record the answers of earlier sends, then lease up to `limit` due updates to this
        sender, at most one per build (the earliest), in one transaction: a sender's commits
        are one per round, not two per update, beside the builds' own (docs/benchmarks.md).
        What sending them needs is read after that commit, so the write lock, which every
        build's finish needs too, is held for the writes alone."""
        lease = max(30.0, self._settings.forge_timeout_seconds * 3)
        if not settled:
            async with self._db.connection() as conn:
                if not await outbox.any_due(conn, clock.now()):  # a read: no write lock idle
                    return []
        async with self._db.transaction() as conn:
            await self._settle(conn, settled)
            if limit <= 0:
                return []
            rows = await outbox.claim(conn, clock.now(), _after(lease), limit)
        if not rows:
            return []
        found: list[Delivery] = []
        orphans: list[int] = []
        async with self._db.connection() as conn:
            # Rows of one account share its credential and often a Worker: looked up once per
            # claim (on SQLite these reads run inline, the event loop waiting on them).
            targets: dict[tuple[object, ...], _Target | None] = {}
            names: dict[tuple[object, ...], Row | None] = {}
            for row in rows:
                key = (
                    row["account_id"],
                    row["provider_type"],
                    row["forge"],
                    row["subscription_id"],
                )
                if key not in targets:
                    targets[key] = await self._target(conn, row)
                target = targets[key]
                if target is None:
                    orphans.append(int(row["id"]))
                    continue
                tag = (row["account_id"], row["external_script_id"])
                if tag not in names:
                    names[tag] = await workers.find_by_tag(conn, *tag)
                worker = names[tag]
                found.append(
                    Delivery(
                        row=row,
                        api_url=target.api_url,
                        token=target.secret,
                        script=worker["name"] if worker else str(row["external_script_id"]),
                        comment_id=row["prior_comment_id"],
                        app_id=target.app_id,
                        installation_id=target.installation_id,
                        check_run_id=row["prior_check_run_id"] if target.app_id else None,
                    )
                )
        if orphans:  # unset, replaced, disabled or now refused since: nobody to tell any more
            async with self._db.transaction() as conn:
                for row_id in orphans:
                    await outbox.give_up(conn, row_id, "its forge or subscription is gone")
        return found

    async def _target(self, conn: Connection, row: Row) -> _Target | None:
        """Where a claimed row goes and the secret it needs (token, App key or signing
        secret), or None."""
        if row["forge"] == "event":
            found = await self._subscriptions.target(row, conn)
            return None if found is None else _Target(*found)
        credential = await outbox.find_credential(conn, row["account_id"], row["provider_type"])
        if credential is None or credential["forge"] != row["forge"]:
            return None
        return _Target(
            str(credential["api_url"]),
            self._cipher.decrypt(credential["token"]),
            credential["app_id"],
            credential["installation_id"],
        )

    def gives_up(self, delivery: Delivery, permanent: bool) -> bool:
        """Whether a failed send is the last: a refusal retrying cannot change (a 401, a 404),
        or the last attempt."""
        return permanent or int(delivery.row["attempts"]) >= self._settings.outbox_max_attempts

    async def _settle(self, conn: Connection, outcomes: Sequence[Outcome]) -> None:
        """Each delivered; or its next attempt scheduled with backoff; or given up."""
        now = clock.now()
        sent = [
            {
                "id": o.delivery.id,
                "now": now,
                "comment_id": o.sent.comment_id,
                "check_run_id": o.sent.check_run_id,
            }
            for o in outcomes
            if o.sent is not None
        ]
        if sent:
            await outbox.delivered(conn, sent)
        for outcome in outcomes:
            if outcome.sent is not None:
                continue
            delivery, attempts = outcome.delivery, int(outcome.delivery.row["attempts"])
            if self.gives_up(delivery, outcome.permanent):
                error = f"gave up after {attempts}: {outcome.error}"
                await outbox.give_up(conn, delivery.id, error)
            else:
                next_try = _after(backoff(self._settings, attempts))
                await outbox.retry(conn, delivery.id, outcome.error, next_try)

    async def prune(self, limit: int = PRUNE_BATCH) -> int:
        """Delete up to `limit` rows settled (delivered or given up) and created more than
        BUILDSD_OUTBOX_RETENTION_DAYS ago, oldest first; how many. A pending row stays."""
        days = self._settings.outbox_retention_days
        if days <= 0:
            return 0  # kept forever
        before = clock.format_epoch_ms(clock.epoch_ms() - days * DAY_MS)
        async with self._db.transaction() as conn:
            return await outbox.prune(conn, before, limit)

    # --- the extension: GET …/builds/builds/{uuid}/forge_updates -------------------------------

    async def updates(self, account_id: str, build_uuid: str) -> list[ForgeUpdate]:
        async with self._db.connection() as conn:
            await builds.get(conn, account_id, build_uuid)  # another account's → 404
            rows = await outbox.of_build(conn, account_id, build_uuid)
        return [
            msgspec.convert(
                {name: row[name] for name in ForgeUpdate.__struct_fields__}, ForgeUpdate
            )
            for row in rows
        ]
