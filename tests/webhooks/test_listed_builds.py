"""A listed build is the same object as the build read alone, whatever it holds.

List pages are rendered by the database (store.builds.json_select) and single builds from
Structs; this pins the two to one shape: push, pull request, manual and deploy-hook builds,
secret and text variables, a preview url, and text that JSON must escape.
"""

from __future__ import annotations

from typing import Any

from tests.api.flows import base, ok
from tests.conftest import World
from tests.webhooks.conftest import accepted, add_trigger, connect, deliver_github, settle
from tests.webhooks.payloads import github_commit, github_pull_request, github_push, sha_of

AWKWARD = 'Fix "quotes", back\\slash, tab\there,\nnew line, \x01 control, ünïcødé, emoji 🚀'


def variables(world: World, trigger_uuid: str) -> None:
    body = {
        "API_URL": {"value": 'https://example.com/?a=1&b="2"', "is_secret": False},
        "API_KEY": {"value": "s3cr3t-value", "is_secret": True},
    }
    url = base(world) + f"/triggers/{trigger_uuid}/environment_variables"
    ok(world.client.patch(url, json=body, headers=world.auth))


def deploy_hook_build(world: World, worker_name: str) -> None:
    hook = ok(
        world.client.post(
            base(world) + f"/workers/{worker_name}/deploy_hooks",
            json={"deploy_hook_name": "deploy main", "branch": "hotfix"},
            headers=world.auth,
        )
    )
    fired = world.client.post(f"/client/v4/workers/builds/deploy_hooks/{hook['deploy_hook_uuid']}")
    assert fired.status_code == 200, fired.text


async def _set_preview_url(world: World, build_uuid: str) -> None:
    """What the runner records after a preview deploy (the API cannot set it)."""
    async with world.services.db.transaction() as conn:
        await conn.run(
            "UPDATE builds SET preview_url = :url WHERE build_uuid = :uuid",
            {"url": "https://abc123-my-worker.octo.workers.dev", "uuid": build_uuid},
        )


def test_a_listed_build_equals_the_build_read_alone(world: World) -> None:
    setup = connect(world)
    tag = world.run(world.services.workers.create(world.account, "listed-worker"))
    trigger = add_trigger(world, setup, tag, trigger_name="all", branch_includes=["*"])
    variables(world, trigger["trigger_uuid"])
    push = github_push("main", [github_commit(AWKWARD, sha=sha_of("awkward"))])
    accepted(deliver_github(world, push))
    accepted(deliver_github(world, github_pull_request("opened"), "pull_request"))
    settle(world)
    url = base(world) + f"/triggers/{trigger['trigger_uuid']}/builds"
    manual = ok(world.client.post(url, json={"branch": "main"}, headers=world.auth))
    world.run(_set_preview_url(world, manual["build_uuid"]))
    deploy_hook_build(world, "listed-worker")

    listed = ok(world.client.get(base(world) + f"/workers/{tag}/builds", headers=world.auth))
    sources = sorted(b["build_trigger_metadata"]["build_trigger_source"] for b in listed)
    assert sources == ["api", "manual", "pull_request", "push_event"]
    for item in listed:
        alone: dict[str, Any] = ok(
            world.client.get(base(world) + f"/builds/{item['build_uuid']}", headers=world.auth)
        )
        assert item == alone
    by_source = {b["build_trigger_metadata"]["build_trigger_source"]: b for b in listed}
    assert by_source["push_event"]["build_trigger_metadata"]["commit_message"] == AWKWARD
    assert by_source["pull_request"]["pull_request"]["pull_request_url"].endswith("/pull/42")
    assert by_source["api"]["deploy_hook"] == {"deploy_hook_name": "deploy main"}
    assert by_source["manual"]["preview_url"].startswith("https://")
    env = by_source["manual"]["build_trigger_metadata"]["environment_variables"]
    assert env["API_KEY"]["value"] is None and env["API_KEY"]["is_secret"] is True
    assert env["API_URL"]["value"] == 'https://example.com/?a=1&b="2"'


def test_a_page_of_builds_of_two_triggers_embeds_each_ones_trigger_newest_first(
    world: World,
) -> None:
    """The database joins a page and leaves a mark where each build's trigger goes."""
    setup = connect(world)
    tag = world.run(world.services.workers.create(world.account, "two-triggers"))
    first = add_trigger(world, setup, tag, trigger_name="first", branch_includes=["main"])
    second = add_trigger(world, setup, tag, trigger_name="second", branch_includes=["dev"])
    made = []
    for n in range(7):
        trigger = (first, second)[n % 3 == 0]
        url = base(world) + f"/triggers/{trigger['trigger_uuid']}/builds"
        made.append(ok(world.client.post(url, json={"branch": f"b{n}"}, headers=world.auth)))

    listed = ok(world.client.get(base(world) + f"/workers/{tag}/builds", headers=world.auth))
    assert [b["build_uuid"] for b in listed] == [b["build_uuid"] for b in reversed(made)]
    for item in listed:
        alone = ok(
            world.client.get(base(world) + f"/builds/{item['build_uuid']}", headers=world.auth)
        )
        assert item == alone
    names = [b["trigger"]["trigger_name"] for b in reversed(listed)]
    assert names == ["second", "first", "first", "second", "first", "first", "second"]

    page_two = world.client.get(
        base(world) + f"/workers/{tag}/builds?page=2&per_page=3", headers=world.auth
    ).json()
    assert [b["build_uuid"] for b in page_two["result"]] == [
        made[3]["build_uuid"],
        made[2]["build_uuid"],
        made[1]["build_uuid"],
    ]
    assert page_two["result_info"]["count"] == 3
    past = world.client.get(
        base(world) + f"/workers/{tag}/builds?page=9&per_page=3", headers=world.auth
    ).json()
    assert past["result"] == [] and past["result_info"]["count"] == 0
