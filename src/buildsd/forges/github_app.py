"""A GitHub App's installation tokens: the App's JWT traded for a token
(`POST /app/installations/{id}/access_tokens`), the installation found per repository when
none is configured (`GET /repos/{owner}/{repo}/installation`), both cached in this process
until shortly before the token expires. Neither the key nor a token is ever logged."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import httpx

from buildsd.crypto import app_jwt
from buildsd.forges.text import check
from buildsd.services.outbox import Delivery

# GitHub's installation tokens live an hour; one is traded for a new one this long before.
REFRESH_SECONDS = 300.0
# (account, API URL, App ID, installation ID): the account too, so an account naming another's
# App and installation never borrows the token the other's key obtained; it must sign its own.
_Key = tuple[str, str, str, str]


def _headers(bearer: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {bearer}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
    }


def _expiry(stamp: object) -> float:
    """The token's expires_at as epoch seconds; unreadable: an hour from now, GitHub's life."""
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time() + 3600


def _account(delivery: Delivery) -> str:
    return str(delivery.row["account_id"])


class Installations:
    """One per sender: tokens shared by every delivery of an App's installation."""

    def __init__(self) -> None:
        self._tokens: dict[_Key, tuple[str, float]] = {}
        self._ids: dict[tuple[str, ...], str] = {}  # (account, URL, App, owner, repo) → id
        self._lock = asyncio.Lock()  # 32 sends at once trade one JWT, not 32

    async def token(
        self, client: httpx.AsyncClient, delivery: Delivery, repo: tuple[str, str]
    ) -> str:
        """The installation token for the delivery's App and repository (owner, repo)."""
        assert delivery.app_id is not None
        async with self._lock:
            installation = delivery.installation_id or await self._installation(
                client, delivery, repo
            )
            key = (_account(delivery), delivery.api_url, delivery.app_id, installation)
            held = self._tokens.get(key)
            # Real time, not the virtual clock: GitHub's expiry is on GitHub's clock.
            if held is not None and held[1] - REFRESH_SECONDS > time.time():
                return held[0]
            answer = await client.post(
                f"{delivery.api_url}/app/installations/{installation}/access_tokens",
                headers=_headers(self._jwt(delivery)),
            )
            check(answer.status_code, answer.text)
            found = answer.json()
            token, expires = str(found["token"]), _expiry(found.get("expires_at"))
            self._tokens[key] = (token, expires)
            return token

    def forget(self, delivery: Delivery) -> None:
        """A token GitHub refused (revoked, the App's key replaced): the next try trades anew."""
        mine = (_account(delivery), delivery.api_url, delivery.app_id)
        for key in [k for k in self._tokens if k[:3] == mine]:
            del self._tokens[key]
        for id_key in [k for k in self._ids if k[:3] == mine]:
            del self._ids[id_key]

    async def _installation(
        self, client: httpx.AsyncClient, delivery: Delivery, repo: tuple[str, str]
    ) -> str:
        assert delivery.app_id is not None
        key = (_account(delivery), delivery.api_url, delivery.app_id, *repo)
        if key not in self._ids:
            answer = await client.get(
                f"{delivery.api_url}/repos/{repo[0]}/{repo[1]}/installation",
                headers=_headers(self._jwt(delivery)),
            )
            check(answer.status_code, answer.text)
            self._ids[key] = str(int(answer.json()["id"]))
        return self._ids[key]

    @staticmethod
    def _jwt(delivery: Delivery) -> str:
        assert delivery.app_id is not None
        return app_jwt(delivery.app_id, delivery.token, int(time.time()))
