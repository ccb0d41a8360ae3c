"""GET …/builds/repos/{provider_type}/{provider_account_id}/{repo_id}/config_autofill (spec §3.3),
against real git repositories cloned by file://."""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.flows import base, connection, failure, ok
from tests.conftest import World
from tests.gitrepo import Repo, make_repo

REPO_ID = "562843111"
OWNER_ID = "41612145"  # flows.connection's provider_account_id
KEYS = ["config_file", "default_worker_name", "env_worker_names", "package_manager", "scripts"]

TOML = """\
name = "my-worker"
main = "src/index.ts"

[env.staging]
name = "my-worker-stage"

[env.production]
routes = ["example.com/*"]
"""
JSONC = """\
// Wrangler configuration, with comments
{
  "$schema": "node_modules/wrangler/config-schema.json",
  "name": "json-worker", /* the production Worker */
  "main": "src/index.ts",
  "compatibility_flags": ["nodejs_compat",],
  "env": {
    "dev": { "vars": { "URL": "https://example.com//dev" }, },
    "prod": { "name": "json-worker-live", }, // explicit name
  },
}
"""
PACKAGE = '{"name": "my-worker", "scripts": {"build": "tsc", "deploy": "wrangler deploy"}}'


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return make_repo(tmp_path)


@pytest.fixture
def git_world(make_world, repo: Repo, tmp_path: Path) -> World:
    git_url = f"file://{tmp_path}/git/{{provider_account_name}}/{{repo_name}}.git"
    world = make_world(git_url_github=git_url)
    connection(world, repo_id=REPO_ID)
    return world


def autofill(
    world: World,
    branch: str | None = "main",
    *,
    root_directory: str | None = None,
    provider_type: str = "github",
    provider_account_id: str = OWNER_ID,
    repo_id: str = REPO_ID,
    account: str | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    params = {}
    if branch is not None:
        params["branch"] = branch
    if root_directory is not None:
        params["root_directory"] = root_directory
    path = f"/repos/{provider_type}/{provider_account_id}/{repo_id}/config_autofill"
    return world.client.get(
        base(world, account) + path,
        params=params,
        headers=world.auth if headers is None else headers,
    )


def scratch_entries(world: World) -> list[Path]:
    scratch = world.services.settings.data_path / "tmp"
    return list(scratch.iterdir()) if scratch.exists() else []


# --- what is proposed ---------------------------------------------------------------------------


def test_toml_config_with_environments_and_scripts(git_world: World, repo: Repo) -> None:
    repo.commit({"wrangler.toml": TOML, "package.json": PACKAGE}, "Add a Worker")
    response = autofill(git_world)
    result = ok(response)
    assert list(result) == KEYS
    assert result == {
        "config_file": "wrangler.toml",
        "default_worker_name": "my-worker",
        # staging names itself; production gets the name Wrangler derives (<name>-<env>).
        "env_worker_names": {"staging": "my-worker-stage", "production": "my-worker-production"},
        "package_manager": "npm",
        "scripts": {"build": "tsc", "deploy": "wrangler deploy"},
    }
    assert scratch_entries(git_world) == []  # the clone is gone


def test_json_config(git_world: World, repo: Repo) -> None:
    repo.commit({"wrangler.json": '{"name": "plain-json", "main": "index.js"}'}, "json")
    assert ok(autofill(git_world)) == {
        "config_file": "wrangler.json",
        "default_worker_name": "plain-json",
        "env_worker_names": None,
        "package_manager": "npm",
        "scripts": None,
    }


def test_jsonc_config_with_comments_and_trailing_commas(git_world: World, repo: Repo) -> None:
    repo.commit({"wrangler.jsonc": JSONC, "pnpm-lock.yaml": "lockfileVersion: '9.0'\n"}, "jsonc")
    result = ok(autofill(git_world))
    assert result["config_file"] == "wrangler.jsonc"
    assert result["default_worker_name"] == "json-worker"
    assert result["env_worker_names"] == {"dev": "json-worker-dev", "prod": "json-worker-live"}
    assert result["package_manager"] == "pnpm"


def test_several_configs_pick_wranglers_choice(git_world: World, repo: Repo) -> None:
    repo.commit(
        {
            "wrangler.toml": 'name = "from-toml"\n',
            "wrangler.jsonc": '{"name": "from-jsonc",}',
            "wrangler.json": '{"name": "from-json"}',
        },
        "three configs",
    )
    result = ok(autofill(git_world))
    assert (result["config_file"], result["default_worker_name"]) == ("wrangler.json", "from-json")


def test_a_config_that_does_not_parse_is_named_without_names(git_world: World, repo: Repo) -> None:
    repo.commit({"wrangler.toml": 'name = "unterminated\n', "package.json": "{oops"}, "broken")
    assert ok(autofill(git_world)) == {
        "config_file": "wrangler.toml",
        "default_worker_name": None,
        "env_worker_names": None,
        "package_manager": "npm",
        "scripts": None,
    }


def test_an_oversized_config_is_named_but_not_read(git_world: World, repo: Repo) -> None:
    padding = "# padding\n" * 110_000  # over 1 MiB
    repo.commit({"wrangler.toml": 'name = "big"\n' + padding}, "big")
    result = ok(autofill(git_world))
    assert (result["config_file"], result["default_worker_name"]) == ("wrangler.toml", None)


def test_no_wrangler_config_is_not_found(git_world: World, repo: Repo) -> None:
    repo.commit({"package.json": PACKAGE, "wrangler.yaml": "name: nope\n"}, "no config")
    failure(autofill(git_world), 404, 12000)
    assert scratch_entries(git_world) == []


@pytest.mark.parametrize(
    ("lockfile", "expected"),
    [
        ("package-lock.json", "npm"),
        ("yarn.lock", "yarn"),
        ("pnpm-lock.yaml", "pnpm"),
        ("bun.lockb", "bun"),
        ("bun.lock", "bun"),
    ],
)
def test_package_manager_from_the_lockfile(
    git_world: World, repo: Repo, lockfile: str, expected: str
) -> None:
    repo.commit({"wrangler.toml": TOML, "package.json": PACKAGE, lockfile: "{}\n"}, "lock")
    assert ok(autofill(git_world))["package_manager"] == expected


def test_package_json_without_scripts(git_world: World, repo: Repo) -> None:
    repo.commit({"wrangler.toml": TOML, "package.json": '{"name": "w"}'}, "no scripts")
    assert ok(autofill(git_world))["scripts"] is None


def test_the_branch_is_the_one_asked_for(git_world: World, repo: Repo) -> None:
    repo.commit({"wrangler.toml": 'name = "on-main"\n'}, "main")
    repo.commit({"wrangler.toml": 'name = "on-feature"\n', "yarn.lock": ""}, "feat", "feature/x")
    assert ok(autofill(git_world))["default_worker_name"] == "on-main"
    feature = ok(autofill(git_world, "feature/x"))
    assert (feature["default_worker_name"], feature["package_manager"]) == ("on-feature", "yarn")


@pytest.mark.parametrize("root", ["apps/api", "/apps/api", "/apps/api/", "apps/./api"])
def test_root_directory_in_a_subfolder(git_world: World, repo: Repo, root: str) -> None:
    repo.commit(
        {
            "wrangler.toml": 'name = "top"\n',
            "yarn.lock": "",
            "apps/api/wrangler.jsonc": '{"name": "api", // the API\n}',
            "apps/api/package.json": '{"scripts": {"dev": "wrangler dev"}}',
            "apps/api/bun.lock": "{}",
        },
        "monorepo",
    )
    assert ok(autofill(git_world, root_directory=root)) == {
        "config_file": "wrangler.jsonc",
        "default_worker_name": "api",
        "env_worker_names": None,
        "package_manager": "bun",
        "scripts": {"dev": "wrangler dev"},
    }
    assert ok(autofill(git_world, root_directory="/"))["default_worker_name"] == "top"
    assert ok(autofill(git_world, root_directory=""))["default_worker_name"] == "top"


@pytest.mark.parametrize(
    "root", ["apps/none", "wrangler.toml", "..", "../..", "/../git", "apps/../..", "a\x00b"]
)
def test_a_root_directory_that_is_not_a_folder_of_the_repository(
    git_world: World, repo: Repo, root: str
) -> None:
    # Also a wrangler.toml next to the clone's folder must not be found through "..".
    repo.commit({"wrangler.toml": 'name = "top"\n', "apps/web/wrangler.toml": ""}, "c")
    failure(autofill(git_world, root_directory=root), 404, 12000)


def test_symlinks_out_of_the_repository_are_not_read(
    git_world: World, repo: Repo, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "package.json").write_text('{"scripts": {"leak": "server secret"}}')
    (outside / "wrangler.toml").write_text('name = "leak"\n')
    (repo.work / "wrangler.toml").symlink_to(outside / "wrangler.toml")
    (repo.work / "package.json").symlink_to(outside / "package.json")
    (repo.work / "sub").symlink_to(outside)
    repo.commit({"wrangler.json": '{"name": "inside"}'}, "symlinks")
    result = ok(autofill(git_world))
    assert (result["config_file"], result["default_worker_name"]) == ("wrangler.json", "inside")
    assert result["scripts"] is None
    failure(autofill(git_world, root_directory="sub"), 404, 12000)
    # A symlinked config is not a config: only the outside one would be there.
    repo.git("rm", "-q", "wrangler.json")
    repo.commit({}, "only the symlink left")
    failure(autofill(git_world), 404, 12000)


# --- what is not found ---------------------------------------------------------------------------


def test_unknown_branch_is_not_found(git_world: World, repo: Repo) -> None:
    repo.commit({"wrangler.toml": TOML}, "c")
    failure(autofill(git_world, "no-such-branch"), 404, 12000)
    failure(autofill(git_world, "--upload-pack=touch /tmp/pwned"), 404, 12000)
    assert scratch_entries(git_world) == []


def test_a_repository_that_is_not_connected_is_not_found(git_world: World, repo: Repo) -> None:
    repo.commit({"wrangler.toml": TOML}, "c")
    failure(autofill(git_world, repo_id="1"), 404, 12000)
    failure(autofill(git_world, provider_type="gitlab"), 404, 12000)
    failure(autofill(git_world, provider_type="bitbucket"), 404, 12000)
    failure(autofill(git_world, provider_account_id="999"), 404, 12000)


def test_a_deleted_connection_is_not_found(git_world: World, repo: Repo) -> None:
    repo.commit({"wrangler.toml": TOML}, "c")
    conn = connection(git_world, repo_id=REPO_ID)
    url = f"{base(git_world)}/repos/connections/{conn['repo_connection_uuid']}"
    ok(git_world.client.delete(url, headers=git_world.auth))
    failure(autofill(git_world), 404, 12000)


def test_another_accounts_connection_is_not_found(make_world, repo: Repo, tmp_path: Path) -> None:
    repo.commit({"wrangler.toml": TOML}, "c")
    world = make_world(
        git_url_github=f"file://{tmp_path}/git/{{provider_account_name}}/{{repo_name}}.git"
    )
    other = world.new_account()
    world.grant(other)
    other_auth = world.bearer(world.new_token("Workers CI Write", account=other))
    body = {
        "provider_account_id": OWNER_ID,
        "provider_account_name": "octo-org",
        "provider_type": "github",
        "repo_id": REPO_ID,
        "repo_name": "my-worker",
    }
    ok(world.client.put(base(world, other) + "/repos/connections", json=body, headers=other_auth))
    failure(autofill(world), 404, 12000)  # connected in the other account only
    assert ok(autofill(world, account=other, headers=other_auth))["config_file"] == "wrangler.toml"


def _store_repo_name(world: World, repo_name: str) -> None:
    """As a row written before names were checked at the PUT would hold it."""

    async def write() -> None:
        async with world.services.db.transaction() as conn:
            await conn.run("UPDATE repo_connections SET repo_name = :n", {"n": repo_name})

    world.run(write())


@pytest.mark.parametrize(
    "stored", ["../../outside/x", "..%2f..%2foutside%2fx", "../octo-org/../../outside/x"]
)
def test_a_stored_name_leaving_the_template_is_not_cloned(
    git_world: World, repo: Repo, tmp_path: Path, stored: str
) -> None:
    """The finding: `../../buildsd/` cloned a repository outside the template's root and read
    its wrangler.toml. clone_url refuses such a stored name: 404, nothing cloned."""
    outside = make_repo(tmp_path / "outside-root")  # tmp_path/outside-root/git/octo-org/…
    outside.commit({"wrangler.toml": 'name = "not-yours"\n'}, "c")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "x.git").symlink_to(outside.bare)
    repo.commit({"wrangler.toml": TOML}, "c")
    _store_repo_name(git_world, stored)
    failure(autofill(git_world), 404, 12000)
    assert scratch_entries(git_world) == []


def test_owner_slash_repo_and_encoded_names_are_cloned(
    git_world: World, repo: Repo, tmp_path: Path
) -> None:
    repo.commit({"wrangler.toml": TOML}, "c")
    connection(git_world, repo_id=REPO_ID, repo_name="octo-org/my-worker")
    assert ok(autofill(git_world))["default_worker_name"] == "my-worker"
    odd = make_repo(tmp_path / "odd")
    odd.commit({"wrangler.toml": 'name = "odd"\n'}, "c")
    # Inside the template's root (bound into the clone's sandbox), not a link out of it.
    shutil.copytree(odd.bare, tmp_path / "git" / "octo-org" / "my worker@#1.git")
    connection(git_world, repo_id=REPO_ID, repo_name="my worker@#1")
    assert ok(autofill(git_world))["default_worker_name"] == "odd"


def test_a_provider_without_a_clone_url_is_not_found(make_world, repo: Repo) -> None:
    world = make_world(git_url_gitlab="")
    connection(world, repo_id=REPO_ID, provider_type="gitlab")
    failure(autofill(world, provider_type="gitlab"), 404, 12000)


@pytest.fixture
def silent_git_server() -> Iterator[int]:
    """A TCP port that accepts git:// connections and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


def test_a_clone_that_hangs_stops_at_the_git_timeout(make_world, silent_git_server: int) -> None:
    world = make_world(
        git_url_github=f"git://127.0.0.1:{silent_git_server}/{{repo_name}}.git",
        git_timeout_seconds=1,
    )
    connection(world, repo_id=REPO_ID)
    started = time.monotonic()
    failure(autofill(world), 404, 12000)
    assert time.monotonic() - started < 10
    assert scratch_entries(world) == []


# --- bad requests and credentials ----------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"branch": ""},
        {"branch": "x" * 257},
        {"branch": "main\x00"},  # a branch is one line: no control character (a NUL neither)
        {"branch": "main\nx"},
        {"branch": "main", "root_directory": "a" * 1025},
    ],
)
def test_branch_is_required_and_the_query_bounded(git_world: World, params: dict[str, str]) -> None:
    url = base(git_world) + f"/repos/github/{OWNER_ID}/{REPO_ID}/config_autofill"
    failure(git_world.client.get(url, params=params, headers=git_world.auth), 400, 12013)


def test_without_credentials(git_world: World) -> None:
    failure(autofill(git_world, headers={}), 401, 12005)


def test_a_token_of_another_account_is_refused(git_world: World) -> None:
    other = git_world.new_account()
    headers = git_world.bearer(git_world.new_token("Workers CI Write", account=other))
    failure(autofill(git_world, headers=headers), 403, 10000)


def test_read_access_is_enough(git_world: World, repo: Repo) -> None:
    repo.commit({"wrangler.toml": TOML}, "c")
    headers = git_world.bearer(git_world.new_token("Workers CI Read"))
    assert ok(autofill(git_world, headers=headers))["default_worker_name"] == "my-worker"


def test_a_repository_a_grant_lists_answers_before_it_is_connected(
    make_world, repo: Repo, tmp_path: Path
) -> None:
    repo.commit({"wrangler.toml": TOML}, "c")
    world = make_world(
        git_url_github=f"file://{tmp_path}/git/{{provider_account_name}}/{{repo_name}}.git"
    )
    failure(autofill(world), 404, 12000)  # neither connected nor in a grant
    world.grant(owner_id=OWNER_ID, owner="octo-org", repos=((REPO_ID, "my-worker"),))
    assert ok(autofill(world))["default_worker_name"] == "my-worker"
    failure(autofill(world, repo_id="1"), 404, 12000)  # not listed
    failure(autofill(world, provider_account_id="1"), 404, 12000)  # another owner
    failure(autofill(world, provider_type="gitlab"), 404, 12000)
    # A grant of all an owner's repositories names none: nothing to clone until connected.
    world.grant(owner_id=OWNER_ID, owner="octo-org")
    failure(autofill(world, repo_id="1"), 404, 12000)


def test_with_two_accounts_a_connection_outside_the_grants_is_not_found(
    git_world: World, repo: Repo
) -> None:
    """Connected while the database had one account (all granted); a second account makes
    grants count, and autofill then answers inside them only (D21)."""
    repo.commit({"wrangler.toml": TOML}, "c")
    assert ok(autofill(git_world))["config_file"] == "wrangler.toml"
    git_world.new_account()
    failure(autofill(git_world), 404, 12000)
    git_world.grant()
    assert ok(autofill(git_world))["config_file"] == "wrangler.toml"
