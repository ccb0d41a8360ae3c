"""Rate limiting (D15): headers on every response, 429 971 with Retry-After past the limit."""

from __future__ import annotations

from buildsd.api.ratelimit import SlidingWindow

PATH = "/client/v4/accounts/{a}/builds/repos/connections"


def test_headers_and_429(make_world) -> None:
    world = make_world(rate_limit=3)
    path = PATH.format(a=world.account)
    remaining = []
    for _ in range(3):
        response = world.client.get(path, headers=world.auth)
        assert response.status_code == 200
        assert response.headers["ratelimit-policy"] == '"burst";q=3;w=300'
        remaining.append(response.headers["ratelimit"])
    assert remaining[0].startswith('"default";r=2;t=')
    assert remaining[2].startswith('"default";r=0;t=')
    limited = world.client.get(path, headers=world.auth)
    assert limited.status_code == 429
    assert limited.json() == {
        "success": False,
        "errors": [
            {"code": 971, "message": "Please wait and consider throttling your request speed"}
        ],
        "messages": [],
        "result": None,
    }
    assert 1 <= int(limited.headers["retry-after"]) <= 300
    # Per credential: another token still gets through.
    other = world.new_token("Workers CI Read")
    assert world.client.get(path, headers=world.bearer(other)).status_code == 200
    # Errors carry the headers too.
    assert "ratelimit" in world.client.get("/client/v4/nope").headers


def test_off_by_default_in_tests_and_zero_means_off(world) -> None:
    response = world.client.get(PATH.format(a=world.account), headers=world.auth)
    assert "ratelimit" not in response.headers


def test_window_slides() -> None:
    window = SlidingWindow(limit=10, window=100)
    key = b"k"
    for _ in range(10):
        assert window.hit(key, 50.0)[0]
    assert not window.hit(key, 99.0)[0]
    # Halfway through the next bucket half of the previous bucket still counts: 5 left.
    allowed = [window.hit(key, 150.0)[0] for _ in range(6)]
    assert allowed == [True] * 5 + [False]
    assert window.retry_after(key, 150.0) >= 1
    assert window.hit(key, 400.0) == (True, 9, 100)
