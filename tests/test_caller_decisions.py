"""A Caller remembers what `allows` answered, per account and permission groups: never one
account's answer for another's, nor a read's for a write."""

from __future__ import annotations

from buildsd.services.identity import CI_READ, READ_GROUP_IDS, WRITE_GROUP_IDS, Caller

A, B = "a" * 32, "b" * 32


def _token(*policies: dict[str, object]) -> Caller:
    return Caller(
        credential_id="c" * 32,
        owner_type="user",
        user_id="u" * 32,
        account_id=None,
        status="active",
        policies=tuple(policies),
    )


def _policy(effect: str, account: str, group: dict[str, str]) -> dict[str, object]:
    return {
        "effect": effect,
        "permission_groups": [group],
        "resources": {f"com.cloudflare.api.account.{account}": "*"},
    }


def test_remembered_answers_are_per_account_and_groups() -> None:
    caller = _token(_policy("allow", A, CI_READ))
    for _ in range(2):  # the second round answers from what the first remembered
        assert caller.allows(A, READ_GROUP_IDS)
        assert not caller.allows(B, READ_GROUP_IDS)  # another tenant's account
        assert not caller.allows(A, WRITE_GROUP_IDS)  # read granted, write not


def test_a_deny_is_remembered_as_a_deny() -> None:
    caller = _token(_policy("allow", A, CI_READ), _policy("deny", A, CI_READ))
    assert not caller.allows(A, READ_GROUP_IDS)
    assert not caller.allows(A, READ_GROUP_IDS)


def test_remembering_does_not_change_equality() -> None:
    one, other = _token(_policy("allow", A, CI_READ)), _token(_policy("allow", A, CI_READ))
    one.allows(A, READ_GROUP_IDS)
    assert one == other
