"""Rate-limit buckets in PostgreSQL (D15): a replica's counts added in one statement, or one
request counted when the limit allows it (re-checked under the bucket's row lock)."""

from __future__ import annotations

from buildsd.db import Connection

# One round trip, atomic per bucket: the conditional upsert re-checks the limit against the
# bucket's latest count under its row lock, so of the requests it decides, racing replicas
# never let one past the limit. `current` is the count before this request as the
# statement's snapshot saw it.
_HIT = """
WITH previous AS (
  SELECT COALESCE(MAX(hits), 0) AS hits FROM rate_limit_buckets
  WHERE credential = :credential AND bucket_start = :previous_start
), counted AS (
  INSERT INTO rate_limit_buckets AS b (credential, bucket_start, hits)
  SELECT :credential, :start, 1 FROM previous WHERE previous.hits * :overlap < :limit
  ON CONFLICT (credential, bucket_start) DO UPDATE SET hits = b.hits + 1
  WHERE b.hits + (SELECT hits FROM previous) * :overlap < :limit
  RETURNING b.hits
)
SELECT (SELECT hits FROM previous) AS previous,
       (SELECT hits FROM counted) AS counted,
       (SELECT hits FROM rate_limit_buckets
        WHERE credential = :credential AND bucket_start = :start) AS current
"""


async def hit(
    conn: Connection, credential: str, start: int, window: int, overlap: float, limit: int
) -> tuple[int, int, bool]:
    """This bucket's count before the request, the previous bucket's, and whether counted."""
    row = await conn.one(
        _HIT,
        {
            "credential": credential,
            "start": start,
            "previous_start": start - window,
            "overlap": overlap,
            "limit": limit,
        },
    )
    assert row is not None  # a SELECT without FROM always answers one row
    if row["counted"] is not None:
        return int(row["counted"]) - 1, int(row["previous"]), True
    return int(row["current"] or 0), int(row["previous"]), False


async def add(conn: Connection, counts: list[tuple[str, int, int]]) -> dict[tuple[str, int], int]:
    """Add (credential, bucket start, hits) to the shared counts; the totals after, by bucket."""
    rows = await conn.all(
        "INSERT INTO rate_limit_buckets AS b (credential, bucket_start, hits) "
        "SELECT * FROM unnest(:credentials::text[], :starts::bigint[], :hits::int[]) "
        "ON CONFLICT (credential, bucket_start) DO UPDATE SET hits = b.hits + excluded.hits "
        "RETURNING credential, bucket_start, hits",
        {
            "credentials": [credential for credential, _, _ in counts],
            "starts": [start for _, start, _ in counts],
            "hits": [hits for _, _, hits in counts],
        },
    )
    return {(row["credential"], int(row["bucket_start"])): int(row["hits"]) for row in rows}


async def prune(conn: Connection, before: int) -> int:
    """Forget buckets that started before `before` (they no longer count in any window)."""
    return await conn.run(
        "DELETE FROM rate_limit_buckets WHERE bucket_start < :before", {"before": before}
    )
