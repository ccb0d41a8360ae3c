"""A Worker Preview's build, for real: the Preview command, its environment, its preview_url."""

from __future__ import annotations

from buildsd.runner import phases
from tests.api.flows import TAG, base, build, build_token, ok
from tests.api.test_worker_builds import create, create_body, settings, worker_triggers
from tests.conftest import World
from tests.runner.conftest import Repo, log_lines, wait_for

SAY = 'echo "ALIAS=$WRANGLER_CI_GENERATE_PREVIEW_ALIAS"'
URL = "https://feature-my-worker.example.workers.dev"


async def _preview_of(world: World, repo_connection_uuid: str, branch: str) -> str:
    async with world.services.db.transaction() as conn:
        (made,) = await world.services.previews.for_push(conn, repo_connection_uuid, branch)
        row = await conn.one(
            "SELECT preview_id FROM previews WHERE trigger_uuid = :uuid",
            {"uuid": made["trigger_uuid"]},
        )
        assert row is not None
        return str(row["preview_id"])


def test_a_preview_build_runs_the_preview_command_and_records_its_url(
    runner_world, repo: Repo
) -> None:
    repo.commit({"feature.txt": "on the branch\n"}, "A feature", branch="feature")
    world = runner_world()
    token = build_token(world)
    body = create_body(
        token,
        production_settings=settings(token, build_command="", deploy_command=SAY),
        previews_base_config=settings(
            token, build_command="", deploy_command=f'{SAY}; echo "Preview URL: {URL}"'
        ),
    )
    create(world, body)
    url = base(world) + f"/workers/{TAG}"
    ok(world.client.patch(url, json={"previews_enabled": True}, headers=world.auth))
    (production,) = worker_triggers(world)
    preview_id = world.run(
        _preview_of(world, production["repo_connection"]["repo_connection_uuid"], "feature")
    )
    queued = ok(
        world.client.post(url + f"/previews/{preview_id}/builds", json={}, headers=world.auth)
    )
    done = wait_for(world, queued["build_uuid"])
    lines = log_lines(world, queued["build_uuid"])
    assert done["build_outcome"] == "success", lines
    assert (
        "ALIAS=true" in lines and phases.deploy_line(f'{SAY}; echo "Preview URL: {URL}"') in lines
    )
    assert done["preview_url"] == URL
    preview = ok(world.client.get(url + f"/previews/{preview_id}", headers=world.auth))
    assert preview["preview_url"] == URL and preview["last_deployed_on"] == done["stopped_on"]
    assert preview["latest_build_uuid"] == queued["build_uuid"]
    # A production build gets no Preview alias.
    main = build(world, production["trigger_uuid"], branch="main")
    assert wait_for(world, main["build_uuid"])["build_outcome"] == "success"
    assert "ALIAS=" in log_lines(world, main["build_uuid"])
