"""The pure helpers behind config autofill: JSONC, Wrangler names, lockfiles, scripts."""

from __future__ import annotations

import json

import pytest

from buildsd.services.wrangler_config import (
    config_file,
    package_manager,
    parse_config,
    scripts,
    strip_jsonc,
    worker_names,
)


def jsonc(text: str) -> object:
    return json.loads(strip_jsonc(text))


def test_plain_json_is_unchanged() -> None:
    text = '{"name": "w", "vars": {"A": [1, 2.5, true, null]}}'
    assert strip_jsonc(text) == text


def test_line_and_block_comments_go() -> None:
    text = """
    // leading comment
    {
      /* block
         over lines */
      "name": "w", // trailing comment
      "main": /* inline */ "src/index.ts"
    }
    // closing comment without a newline"""
    assert jsonc(text) == {"name": "w", "main": "src/index.ts"}


def test_comment_markers_inside_strings_stay() -> None:
    text = (
        r'{"url": "https://example.com/a//b", "glob": "/* not a comment */", "q": "say \"//hi\""}'
    )
    assert jsonc(text) == {
        "url": "https://example.com/a//b",
        "glob": "/* not a comment */",
        "q": 'say "//hi"',
    }


def test_escaped_backslash_before_a_closing_quote() -> None:
    assert jsonc(r'{"path": "C:\\", // the string ended' + "\n}") == {"path": "C:\\"}


def test_trailing_commas_go_also_across_comments_and_newlines() -> None:
    text = """{
      "a": [1, 2, 3,],
      "b": {"c": 1,   },
      "d": [
        "x", // last item
        /* nothing else */
      ],
    }"""
    assert jsonc(text) == {"a": [1, 2, 3], "b": {"c": 1}, "d": ["x"]}


def test_commas_inside_strings_are_not_trailing_commas() -> None:
    assert jsonc('{"a": ",]", "b": [",}",]}') == {"a": ",]", "b": [",}"]}


def test_a_comment_separates_tokens() -> None:
    # `1/* */2` is two numbers in JavaScript, not 12: the parser must refuse it.
    with pytest.raises(json.JSONDecodeError):
        jsonc('{"a": 1/* */2}')


def test_an_unclosed_block_comment_ends_the_text() -> None:
    assert strip_jsonc('{"a": 1} /* never closed').strip() == '{"a": 1}'


def test_parse_config_reads_each_flavour() -> None:
    toml = b'name = "w"\n[env.staging]\nname = "w-stage"\n'
    assert parse_config("wrangler.toml", toml) == {
        "name": "w",
        "env": {"staging": {"name": "w-stage"}},
    }
    assert parse_config("wrangler.json", b'{"name": "w", // comment\n}') == {"name": "w"}
    assert parse_config("wrangler.jsonc", b'\xef\xbb\xbf{"name": "w",}') == {"name": "w"}


@pytest.mark.parametrize(
    ("file_name", "raw"),
    [
        ("wrangler.toml", b"name = "),
        ("wrangler.toml", b"\xff\xfe"),
        ("wrangler.json", b"{"),
        ("wrangler.json", b'["not", "a", "table"]'),
        ("wrangler.jsonc", b"name: w"),
        ("wrangler.jsonc", b""),
    ],
)
def test_parse_config_refuses_what_does_not_parse_to_a_table(file_name: str, raw: bytes) -> None:
    assert parse_config(file_name, raw) is None


def test_worker_names_follow_wrangler() -> None:
    config = {
        "name": "my-worker",
        "env": {
            "staging": {"vars": {}},
            "production": {"name": "my-worker-prod"},
            "odd": "not a table",
        },
    }
    assert worker_names(config) == (
        "my-worker",
        {"staging": "my-worker-staging", "production": "my-worker-prod", "odd": "my-worker-odd"},
    )


def test_worker_names_without_envs_or_names() -> None:
    assert worker_names({"name": "w"}) == ("w", None)
    assert worker_names({"name": "w", "env": {}}) == ("w", None)
    assert worker_names({"main": "index.js"}) == (None, None)
    assert worker_names(None) == (None, None)
    # An environment without a name of its own and no top-level name to derive one from.
    assert worker_names({"env": {"dev": {}, "prod": {"name": "p"}}}) == (None, {"prod": "p"})
    assert worker_names({"env": {"dev": {}}}) == (None, None)
    # Names that are not strings are no names.
    assert worker_names({"name": 7, "env": {"dev": {"name": ""}}}) == (None, None)


def test_config_file_preference_is_wranglers() -> None:
    every = {"wrangler.toml", "wrangler.jsonc", "wrangler.json"}
    assert config_file(every) == "wrangler.json"
    assert config_file({"wrangler.toml", "wrangler.jsonc"}) == "wrangler.jsonc"
    assert config_file({"wrangler.toml", "package.json"}) == "wrangler.toml"
    assert config_file({"package.json", "wrangler.yaml"}) is None


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (set(), "npm"),
        ({"package.json"}, "npm"),
        ({"package-lock.json"}, "npm"),
        ({"yarn.lock"}, "yarn"),
        ({"pnpm-lock.yaml"}, "pnpm"),
        ({"bun.lockb"}, "bun"),
        ({"bun.lock"}, "bun"),
        ({"package-lock.json", "yarn.lock"}, "yarn"),
        ({"yarn.lock", "pnpm-lock.yaml"}, "pnpm"),
        ({"pnpm-lock.yaml", "bun.lock"}, "bun"),
    ],
)
def test_package_manager_from_lockfiles(files: set[str], expected: str) -> None:
    assert package_manager(files) == expected


def test_scripts() -> None:
    package = b'{"name": "w", "scripts": {"build": "tsc", "deploy": "wrangler deploy", "n": 1}}'
    assert scripts(package) == {"build": "tsc", "deploy": "wrangler deploy"}
    assert scripts(b'\xef\xbb\xbf{"scripts": {}}') == {}
    assert scripts(b'{"name": "w"}') is None
    assert scripts(b'{"scripts": ["build"]}') is None
    assert scripts(b"[]") is None
    assert scripts(b"{not json") is None
    assert scripts(b'{"scripts": {"a": "\xff"}}') is None
    assert scripts(None) is None
