"""Rows of one millisecond list in the order they were written (migration 0018): audit entries,
Worker deployments and webhook deliveries (tests/webhooks/test_extensions.py), each by `seq`
after its timestamp. The virtual clock is frozen, so every row below has the same timestamp
and only `seq` can order them."""

from __future__ import annotations

from buildsd import clock
from tests.api.flows import build_token, ok
from tests.api.test_scripts import scripts_world, upload, workers  # noqa: F401
from tests.conftest import World

ROWS = 12


def test_next_seq_only_grows_and_follows_real_time() -> None:
    made = [clock.next_seq() for _ in range(10_000)]
    assert made == sorted(set(made))
    assert abs(made[-1] - clock.epoch_ms() * 1000) < 60_000_000  # within a minute of the time


def test_audit_entries_of_one_millisecond_list_as_written(world: World, frozen_clock: None) -> None:
    made = [build_token(world, name=f"token {i}")["build_token_uuid"] for i in range(ROWS)]
    url = f"/client/v4/accounts/{world.account}/audit_logs"
    response = world.client.get(url, params={"per_page": 100}, headers=world.auth)
    listed = response.json()["result"]
    assert len(listed) == ROWS and len({e["when"] for e in listed}) == 1
    assert [e["resource"]["id"] for e in listed] == made[::-1]


def test_deployments_of_one_millisecond_list_as_written(
    scripts_world: World,  # noqa: F811
    frozen_clock: None,
) -> None:
    world = scripts_world
    for _ in range(ROWS):
        ok(upload(world))
    script = f"{workers(world)}/scripts/my-worker"
    listed = ok(world.client.get(f"{script}/deployments", headers=world.auth))["deployments"]
    versions = [d["versions"][0]["version_id"] for d in listed]
    numbered = ok(world.client.get(f"{script}/versions", headers=world.auth))["items"]
    assert len({d["created_on"] for d in listed}) == 1
    assert versions == [v["id"] for v in numbered][: len(versions)]  # newest first, both
