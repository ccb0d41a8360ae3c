"""The build page shows the build's forge updates as GET …/forge_updates returns them."""

from __future__ import annotations

import re
import time

from tests.conftest import World
from tests.dashboard.test_pages import HOSTILE, sign_in
from tests.forges import fakeforge
from tests.forges.conftest import FAST, queue_build, run_build, set_forge, updates


def _rows(page: str) -> list[str]:
    table = re.search(r'<table class="updates" id="forge-updates">(.*?)</table>', page, re.S)
    assert table, page
    body = table.group(1).split("<tbody>", 1)[1]
    return re.findall(r"<tr>(.*?)</tr>", body, re.S)


def test_the_build_page_lists_its_forge_updates(make_world) -> None:
    world: World = make_world(**FAST)
    with fakeforge.serve() as forge:
        forge.failures = [404]  # the first update is refused: given up, with the forge's words
        forge.failure_body = HOSTILE.encode()
        set_forge(world, "github", forge.url)
        build_uuid = queue_build(world)
        run_build(world, "fail")
        deadline = time.monotonic() + 15
        while any(u["state"] == "pending" for u in updates(world, build_uuid)):
            assert time.monotonic() < deadline, updates(world, build_uuid)
            time.sleep(0.05)
    sign_in(world)
    page = world.client.get(f"/a/{world.account}/builds/{build_uuid}")
    assert page.status_code == 200
    rows = _rows(page.text)
    listed = updates(world, build_uuid)
    assert len(rows) == len(listed) == 4
    first, last = rows[0], rows[-1]
    assert "<td>github</td>" in first and "<td>queued</td>" in first
    assert 'class="badge failed"' in first and "HTTP 404" in first
    assert HOSTILE not in page.text and "&lt;script&gt;" in first  # the forge's words, escaped
    assert "stopped · fail" in last and 'class="badge delivered"' in last
    assert f'<time datetime="{listed[-1]["delivered_on"]}">' in last
    assert "<td>1</td>" in last  # attempts


def test_a_build_without_a_forge_says_why(make_world) -> None:
    world: World = make_world(**FAST)
    build_uuid = queue_build(world)
    sign_in(world)
    page = world.client.get(f"/a/{world.account}/builds/{build_uuid}")
    assert "Forge updates" in page.text and "buildsd forge set" in page.text
    assert 'id="forge-updates"' not in page.text
