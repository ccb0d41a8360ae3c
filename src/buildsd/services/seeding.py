"""Seeds a person writes (docs/testing.md, "Seeds"): accounts with their API tokens, repository
connections, build tokens and triggers (with variables and builds), each in the API's own
request shape, applied through the services as the API would apply them.

    {"accounts": [{"account_id"?, "name"?, "tokens": [{"value", "permissions"?, "name"?}],
                   "repo_connections": [PUT body], "build_tokens": [POST body],
                   "triggers": [POST body with "repo_connection": repo_id and
                                "build_token": build_token_name instead of the two uuids,
                                "variables"?: {KEY: {value, is_secret}},
                                "builds"?: [{status, build_outcome, branch, commit_hash, …}]]}]}

The whole document is checked before anything is written (shapes, references); a refusal
names the JSON pointer of what it refuses. What only a service can refuse (a trigger whose
patterns match no branch, say) is found while applying: the caller (Emulation.seed) then puts
the state from before the seed back, so a refused seed loads nothing.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

import msgspec

from buildsd.db import IntegrityError
from buildsd.errors import AdminError, BuildsError, InvalidRequestBody
from buildsd.services.administration import Administration
from buildsd.services.build_tokens import BuildTokens
from buildsd.services.builds import Builds
from buildsd.services.repo_connections import RepoConnections
from buildsd.services.triggers import Triggers
from buildsd.wire import (
    CreateBuildTokenRequest,
    CreateTriggerRequest,
    UpsertRepoConnectionRequest,
    VariableInput,
)

T = TypeVar("T")
_PATH_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[\"?([^\]\"]*)\"?\]")
# A placeholder for a reference while the trigger's body is checked, before its uuid exists.
_CHECKING_UUID = "00000000-0000-4000-8000-000000000000"
TokenValue = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_\-]{20,256}$")]
Hex32 = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{32}$")]


class SeedToken(msgspec.Struct, forbid_unknown_fields=True):
    value: TokenValue  # the secret the tests send (hand-written, so known)
    permissions: list[str] = msgspec.field(
        default_factory=lambda: ["Workers CI Write", "Workers Scripts Write"]
    )
    name: str = "seeded"


class SeedBuild(msgspec.Struct, forbid_unknown_fields=True):
    """A build recorded as it is: stopped with its outcome, or queued (a runner takes it)."""

    status: Literal["stopped", "queued"] = "stopped"
    build_outcome: Literal["success", "fail", "skipped", "cancelled", "terminated"] | None = None
    build_trigger_source: Literal["manual", "push_event", "pull_request", "api"] = "manual"
    branch: str = "main"
    commit_hash: Annotated[str, msgspec.Meta(pattern=r"^([0-9a-fA-F]{7,40})?$")] = ""
    commit_message: str = ""
    author: str = ""


class SeedAccount(msgspec.Struct, forbid_unknown_fields=True):
    account_id: Hex32 | None = None  # None: a new id; the emulator's own: that account
    name: str = "seeded"
    tokens: list[SeedToken] = []
    repo_connections: list[dict[str, Any]] = []
    build_tokens: list[dict[str, Any]] = []
    triggers: list[dict[str, Any]] = []


class HandSeed(msgspec.Struct, forbid_unknown_fields=True):
    accounts: list[SeedAccount]


@dataclass
class _Trigger:
    pointer: str
    body: CreateTriggerRequest
    connection: str  # repo_id
    token: str  # build_token_name
    variables: dict[str, VariableInput | None]
    builds: list[SeedBuild]


@dataclass
class _Account:
    pointer: str
    seed: SeedAccount
    connections: list[UpsertRepoConnectionRequest]
    build_tokens: list[CreateBuildTokenRequest]
    triggers: list[_Trigger]


def pointer_of(error: msgspec.ValidationError, prefix: str = "") -> str:
    """msgspec's `$.accounts[0].tokens[1].value` as a JSON pointer, below `prefix`."""
    found = re.search(r"at `\$([^`]*)`", str(error))
    steps = [a or b or c for a, b, c in _PATH_STEP.findall(found.group(1))] if found else []
    unknown = re.match(r"Object contains unknown field `([^`]+)`", str(error))
    if unknown:  # the pointer names the field refused, not the object holding it
        steps.append(unknown.group(1))
    return prefix + "".join(f"/{step}" for step in steps)


def _refused(detail: str, pointer: str) -> InvalidRequestBody:
    pointer = pointer or "/"  # named in the message too: `emulate --seed` prints only that
    return InvalidRequestBody(f"the seed is refused at {pointer}: {detail}", pointer=pointer)


def _convert(value: Any, kind: type[T], pointer: str) -> T:
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        raise _refused(str(exc).split(" - at ")[0], pointer_of(exc, pointer)) from exc


def check(document: HandSeed) -> list[_Account]:
    """Every body in its request shape and every reference resolvable, or InvalidRequestBody
    naming the pointer; nothing is written here."""
    checked, ids = [], set()
    for a, account in enumerate(document.accounts):
        where = f"/accounts/{a}"
        if account.account_id is not None:
            if account.account_id in ids:
                raise _refused("this account_id is given twice", f"{where}/account_id")
            ids.add(account.account_id)
        connections = [
            _convert(body, UpsertRepoConnectionRequest, f"{where}/repo_connections/{i}")
            for i, body in enumerate(account.repo_connections)
        ]
        tokens = [
            _convert(body, CreateBuildTokenRequest, f"{where}/build_tokens/{i}")
            for i, body in enumerate(account.build_tokens)
        ]
        repo_ids = {c.repo_id for c in connections}
        token_names = {t.build_token_name for t in tokens}
        triggers = [
            _check_trigger(body, f"{where}/triggers/{i}", repo_ids, token_names)
            for i, body in enumerate(account.triggers)
        ]
        checked.append(_Account(where, account, connections, tokens, triggers))
    return checked


def _check_trigger(
    body: dict[str, Any], where: str, repo_ids: set[str], token_names: set[str]
) -> _Trigger:
    rest = dict(body)
    connection, token = rest.pop("repo_connection", None), rest.pop("build_token", None)
    for name, value, known in (
        ("repo_connection", connection, repo_ids),
        ("build_token", token, token_names),
    ):
        if value not in known:
            what = (
                "repo_id of a repo_connections entry"
                if name == "repo_connection"
                else ("build_token_name of a build_tokens entry")
            )
            raise _refused(f"{name} must name the {what} of this account", f"{where}/{name}")
    variables = _convert(
        rest.pop("variables", {}), dict[str, VariableInput | None], f"{where}/variables"
    )
    made = _convert(rest.pop("builds", []), list[SeedBuild], f"{where}/builds")
    for i, build in enumerate(made):
        if build.status == "stopped" and build.build_outcome is None:
            build.build_outcome = "success"
        if build.status == "queued" and build.build_outcome is not None:
            raise _refused("a queued build has no outcome yet", f"{where}/builds/{i}")
    for name in ("repo_connection_uuid", "build_token_uuid"):
        if name in rest:
            raise _refused(f"name the {name[:-5]} instead of its uuid", f"{where}/{name}")
        rest[name] = _CHECKING_UUID
    trigger = _convert(rest, CreateTriggerRequest, where)
    return _Trigger(where, trigger, str(connection), str(token), variables, made)


@dataclass
class Seeder:
    """Applies a checked hand-written seed through the services, into the first-run state."""

    admin: Administration
    repo_connections: RepoConnections
    build_tokens: BuildTokens
    triggers: Triggers
    builds: Builds

    async def apply(self, accounts: list[_Account], first_account: str | None) -> int:
        """What the seed makes, in the document's order; how many things it made."""
        made = 0
        for account in accounts:
            seed = account.seed
            account_id = seed.account_id
            if account_id is None or account_id != first_account:
                made += 1
                account_id = await _at(
                    f"{account.pointer}/account_id",
                    self.admin.create_account(seed.name, seed.account_id),
                )
            made += await self._apply_account(account, account_id)
        return made

    async def _apply_account(self, account: _Account, account_id: str) -> int:
        where = account.pointer
        for i, token in enumerate(account.seed.tokens):
            await _at(
                f"{where}/tokens/{i}",
                self.admin.create_token(
                    account_id=account_id,
                    permissions=token.permissions,
                    name=token.name,
                    value=token.value,
                ),
            )
        connections: dict[str, str] = {}
        for i, body in enumerate(account.connections):
            pending = self.repo_connections.upsert(account_id, body)
            made = await _at(f"{where}/repo_connections/{i}", pending)
            connections[body.repo_id] = made.repo_connection_uuid
        tokens: dict[str, str] = {}
        for i, token_body in enumerate(account.build_tokens):
            created = await _at(
                f"{where}/build_tokens/{i}", self.build_tokens.create(account_id, token_body)
            )
            tokens[token_body.build_token_name] = created.build_token_uuid
        count = len(account.seed.tokens) + len(connections) + len(tokens)
        for trigger in account.triggers:
            count += await self._apply_trigger(trigger, account_id, connections, tokens)
        return count

    async def _apply_trigger(
        self,
        trigger: _Trigger,
        account_id: str,
        connections: dict[str, str],
        tokens: dict[str, str],
    ) -> int:
        body = msgspec.structs.replace(
            trigger.body,
            repo_connection_uuid=connections[trigger.connection],
            build_token_uuid=tokens[trigger.token],
        )
        made = await _at(trigger.pointer, self.triggers.create(account_id, body))
        uuid = made.trigger_uuid
        if trigger.variables:
            await _at(
                f"{trigger.pointer}/variables",
                self.triggers.set_variables(account_id, uuid, trigger.variables),
            )
        for i, build in enumerate(trigger.builds):
            await _at(
                f"{trigger.pointer}/builds/{i}",
                self.builds.record(
                    account_id,
                    uuid,
                    outcome=build.build_outcome if build.status == "stopped" else None,
                    source=build.build_trigger_source,
                    branch=build.branch,
                    commit_hash=build.commit_hash,
                    commit_message=build.commit_message,
                    author=build.author,
                ),
            )
        return 1 + len(trigger.variables) + len(trigger.builds)


async def _at(pointer: str, pending: Awaitable[T]) -> T:
    """The service's refusal, named by where in the seed it happened."""
    try:
        return await pending
    except BuildsError as exc:
        chain = "; ".join(cause.message for cause in exc.chain) or str(exc)
        raise _refused(chain, pointer + (exc.pointer or "")) from exc
    except AdminError as exc:
        raise _refused(str(exc), pointer) from exc
    except IntegrityError as exc:  # an account_id or a token value taken already
        raise _refused("it is there already (an id or a token value given twice)", pointer) from exc
