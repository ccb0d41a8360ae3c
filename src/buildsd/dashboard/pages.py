"""The dashboard's pages: each reads through the services with the signed-in token's rights."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

import jinja2
import msgspec

from buildsd import clock
from buildsd.dashboard import session
from buildsd.dashboard.http import (
    CSRF_COOKIE,
    SECURITY_HEADERS,
    SESSION_COOKIE,
    Reply,
    Request,
    cookie,
    redirect,
)
from buildsd.errors import BuildsError
from buildsd.services import Services
from buildsd.wire import Build, Page

PER_PAGE = 25
STATIC = {"dashboard.css": "text/css", "dashboard.js": "text/javascript"}
Handler = Callable[[Request], Awaitable[Reply]]


def duration(build: Build) -> str:
    started = build.initializing_on or build.running_on  # from when a runner took it
    if started is None:
        return ""
    end = clock.parse(build.stopped_on) if build.stopped_on else clock.parse(clock.now())
    seconds = max(0, int((end - clock.parse(started)).total_seconds()))
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def state(build: Build) -> str:
    return build.build_outcome or build.status


class Dashboard:
    """Built once per app: the template environment and the handlers."""

    def __init__(self, services: Services) -> None:
        self.services = services
        # autoescape everywhere: log lines, commit messages and names are hostile input.
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader("buildsd.dashboard", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.env.globals.update(duration=duration, state=state)

    def routes(self) -> list[tuple[str, str, Handler]]:
        a = "/a/{account_id}"
        return [
            ("GET", "/", self.index),
            ("POST", "/sign-in", self.sign_in),
            ("POST", "/sign-out", self.sign_out),
            ("GET", "/static/{name}", self.static),
            ("GET", a, self.workers),
            ("GET", a + "/workers/{tag}", self.worker),
            ("GET", a + "/builds/{build_uuid}", self.build),
            ("GET", a + "/builds/{build_uuid}/stream", self.stream),
            ("POST", a + "/builds/{build_uuid}/cancel", self.cancel),
            ("POST", a + "/builds/{build_uuid}/retry", self.retry),
            ("GET", a + "/deliveries", self.deliveries),
        ]

    # --- rendering ----------------------------------------------------------------------------

    def render(self, request: Request, name: str, status: int = 200, **values: Any) -> Reply:
        csrf = request.cookies.get(CSRF_COOKIE) or session.new_csrf()
        body = self.env.get_template(name).render(csrf=csrf, **values).encode()
        reply = Reply(status=status, body=body, headers=dict(SECURITY_HEADERS))
        if request.cookies.get(CSRF_COOKIE) != csrf:
            reply.cookies.append(cookie(CSRF_COOKIE, csrf, secure=request.secure))
        return reply

    def problem(self, request: Request, status: int, message: str, **values: Any) -> Reply:
        return self.render(request, "problem.html", status, message=message, **values)

    async def signed_in(
        self, request: Request, *, write: bool = False
    ) -> tuple[session.Session, str] | Reply:
        """The session and the account of the path, or the page that answers instead."""
        try:
            current = await session.open_session(self.services, request.cookies.get(SESSION_COOKIE))
        except session.SignedOut:
            return redirect("/")
        account_id = request.params["account_id"]
        # Another account's pages look exactly like an unknown one's: nothing of it is shown.
        if not current.may_read(account_id) or not await self.services.identity.account_exists(
            account_id
        ):
            return self.problem(request, 404, "Not found.", session=current, account_id=None)
        if write and not current.may_write(account_id):
            # The API's answer for the same call: 403 10000.
            return self.problem(
                request,
                403,
                "Authentication error: this token may read builds but not change them "
                "(Workers CI Write is needed).",
                session=current,
                account_id=account_id,
            )
        if request.method == "POST" and not session.csrf_ok(
            request.cookies.get(CSRF_COOKIE), request.form.get("csrf")
        ):
            return self.problem(
                request,
                403,
                "The form expired; reload the page.",
                session=current,
                account_id=account_id,
            )
        return current, account_id

    # --- pages --------------------------------------------------------------------------------

    async def index(self, request: Request) -> Reply:
        try:
            current = await session.open_session(self.services, request.cookies.get(SESSION_COOKIE))
        except session.SignedOut:
            return self.render(request, "sign_in.html", session=None, account_id=None, error=None)
        accounts = current.accounts()
        if len(accounts) == 1:
            return redirect(f"/a/{accounts[0]}")
        return self.render(
            request, "accounts.html", session=current, account_id=None, accounts=accounts
        )

    async def sign_in(self, request: Request) -> Reply:
        if not session.csrf_ok(request.cookies.get(CSRF_COOKIE), request.form.get("csrf")):
            return self.render(
                request,
                "sign_in.html",
                403,
                session=None,
                account_id=None,
                error="The form expired; try again.",
            )
        token = request.form.get("token", "").strip()
        caller = await session.caller_for(self.services, token) if token else None
        if caller is None or not session.Session(token, caller).accounts():
            return self.render(
                request,
                "sign_in.html",
                401,
                session=None,
                account_id=None,
                error="That token is not a valid API token with Workers CI Read.",
            )
        sealed = session.seal(self.services, token)
        return redirect("/", [cookie(SESSION_COOKIE, sealed, secure=request.secure)])

    async def sign_out(self, request: Request) -> Reply:
        if not session.csrf_ok(request.cookies.get(CSRF_COOKIE), request.form.get("csrf")):
            return self.problem(
                request, 403, "The form expired; reload the page.", session=None, account_id=None
            )
        return redirect("/", [cookie(SESSION_COOKIE, "", secure=request.secure, max_age=0)])

    async def static(self, request: Request) -> Reply:
        name = request.params["name"]
        if name not in STATIC:
            return self.problem(request, 404, "Not found.", session=None, account_id=None)
        body = resources.files("buildsd.dashboard").joinpath("static", name).read_bytes()
        return Reply(
            body=body,
            media_type=STATIC[name],
            headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "max-age=300"},
        )

    async def workers(self, request: Request) -> Reply:
        found = await self.signed_in(request)
        if isinstance(found, Reply):
            return found
        current, account_id = found
        rows = await self.services.workers.list_(account_id)
        latest: dict[str, Build] = {}
        for start in range(0, len(rows), 20):  # the latest-builds call takes 20 ids at a time
            tags = ",".join(row["tag"] for row in rows[start : start + 20])
            if tags:
                latest.update((await self.services.builds.latest(account_id, tags)).builds)
        workers = [
            {"tag": r["tag"], "name": r["name"], "latest": latest.get(r["tag"])} for r in rows
        ]
        return self.render(
            request, "workers.html", session=current, account_id=account_id, workers=workers
        )

    async def worker(self, request: Request) -> Reply:
        found = await self.signed_in(request)
        if isinstance(found, Reply):
            return found
        current, account_id = found
        tag = request.params["tag"]
        row = next(
            (r for r in await self.services.workers.list_(account_id) if r["tag"] == tag), None
        )
        if row is None:
            return self.problem(request, 404, "Not found.", session=current, account_id=account_id)
        try:
            number = max(1, min(int(request.query.get("page", "1")), 10**6))
        except ValueError:
            number = 1
        page = Page(number, PER_PAGE)
        raw, _count, total = await self.services.builds.page_by_worker(account_id, tag, page)
        builds = msgspec.json.decode(raw, type=list[Build])
        triggers = await self.services.triggers.list_by_worker(account_id, tag)
        variables = {
            t.trigger_uuid: await self.services.triggers.variables(account_id, t.trigger_uuid)
            for t in triggers
        }
        hooks = await self.services.deploy_hooks.list_(account_id, row["name"])
        return self.render(
            request,
            "worker.html",
            session=current,
            account_id=account_id,
            worker=row,
            builds=builds,
            page=number,
            more=number * PER_PAGE < total,
            total=total,
            triggers=triggers,
            variables=variables,
            hooks=hooks,
        )

    async def build(self, request: Request) -> Reply:
        found = await self.signed_in(request)
        if isinstance(found, Reply):
            return found
        current, account_id = found
        try:
            build = await self.services.builds.get(account_id, request.params["build_uuid"])
            logs = await self.services.builds.logs(account_id, build.build_uuid, None)
            updates = await self.services.outbox.updates(account_id, build.build_uuid)
        except BuildsError:
            return self.problem(request, 404, "Not found.", session=current, account_id=account_id)
        return self.render(
            request,
            "build.html",
            session=current,
            account_id=account_id,
            build=build,
            phases=logs.events,
            updates=updates,
            may_write=current.may_write(account_id),
        )

    async def stream(self, request: Request) -> Reply:
        found = await self.signed_in(request)
        if isinstance(found, Reply):
            return found
        _, account_id = found
        cursor = request.headers.get("last-event-id") or request.query.get("cursor") or None
        try:
            events = await self.services.log_streams.open(
                account_id, request.params["build_uuid"], cursor
            )
        except BuildsError as exc:
            return Reply(status=exc.status, body=b"", media_type="text/plain")
        return Reply(
            media_type="text/event-stream", headers={"Cache-Control": "no-store"}, stream=events
        )

    async def _act(self, request: Request, action: str) -> Reply:
        found = await self.signed_in(request, write=True)
        if isinstance(found, Reply):
            return found
        current, account_id = found
        build_uuid = request.params["build_uuid"]
        try:
            if action == "cancel":
                await self.services.builds.cancel(account_id, build_uuid)
            else:
                build_uuid = (await self.services.builds.retry(account_id, build_uuid)).build_uuid
        except BuildsError as exc:
            return self.problem(
                request, exc.status, exc.message, session=current, account_id=account_id
            )
        return redirect(f"/a/{account_id}/builds/{build_uuid}")

    async def cancel(self, request: Request) -> Reply:
        return await self._act(request, "cancel")

    async def retry(self, request: Request) -> Reply:
        return await self._act(request, "retry")

    async def deliveries(self, request: Request) -> Reply:
        found = await self.signed_in(request)
        if isinstance(found, Reply):
            return found
        current, account_id = found
        try:
            number = max(1, min(int(request.query.get("page", "1")), 10**6))
        except ValueError:
            number = 1
        items, total = await self.services.webhooks.page(account_id, Page(number, PER_PAGE))
        return self.render(
            request,
            "deliveries.html",
            session=current,
            account_id=account_id,
            deliveries=items,
            page=number,
            more=number * PER_PAGE < total,
        )
