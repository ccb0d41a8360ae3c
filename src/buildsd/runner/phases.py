"""Cloudflare's build log in its own words: the phase lines and `events` types both runners write.

Scripts grep these lines and UIs draw the phases from the events, so the real runner
(`runner/build.py`) and the simulated one write the same ones; buildsd's own explanations of a
failure are extra lines beside them, never instead of them. Strings from Cloudflare's build
logs (spec `workers-builds-newer.md` §1.3, [wb-log]); event types from its log schema (§1.2).
"""

from __future__ import annotations

# `events[].type`, in the order a build goes through them.
INITIALIZING = "initializing"
CLONING = "cloning"
INSTALLING = "installing_tools_and_deps"
BUILDING = "building"
DEPLOYING = "deploying"
EVENT_TYPES = (INITIALIZING, CLONING, INSTALLING, BUILDING, DEPLOYING)

INITIALIZING_LINE = "Initializing build environment..."
INITIALIZED_LINE = "Success: Finished initializing build environment"
CLONING_LINE = "Cloning repository..."
BUILD_DONE_LINE = "Success: Build command completed"
DEPLOY_DONE_LINE = "Success: Deploy command completed"
NO_BUILD_COMMAND_LINE = "No build command specified. Skipping build step."
# Cloudflare's wording for a failed dependency install (low confidence: seen in user reports,
# not in a recorded log); the build and deploy failures use `failed_line`.
INSTALL_FAILED_LINE = "Failed: error occurred while installing tools or dependencies"


def tools_line(tools: list[str]) -> str:
    """`tools` as `name@version`, e.g. ["npm@10.9.2", "nodejs@22.16.0"]."""
    return f"Detected the following tools from environment: {', '.join(tools)}"


def installing_line(command: str) -> str:
    return f"Installing project dependencies: {command}"


def build_line(command: str) -> str:
    return f"Executing user build command: {command}"


def deploy_line(command: str) -> str:
    return f"Executing user deploy command: {command}"


def failed_line(step: str) -> str:
    """`step` is `build command`, `deploy command`, `install`, …: Cloudflare's last line of a
    failed build, after which buildsd may add its own reason."""
    return f"Failed: error occurred while running {step}"
