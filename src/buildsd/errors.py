"""Every error buildsd answers with: the only home of Cloudflare's statuses and error codes.

Each class carries ``(status, code, message)``; the API renders any of them as the Cloudflare
envelope ``{"success": false, "errors": [{code, message, ...}], "messages": [], "result": null}``.

    BuildsError                        (500, 10001, "Internal server error")
    ├── InvalidRequestBody             (400, 12002)  bad JSON, schema violation, unknown field
    │   ├── BodyTooLarge               (413, 12002)  body over BUILDSD_MAX_BODY_BYTES
    │   └── BodyTimeout                (408, 12002)  body not in by BUILDSD_BODY_TIMEOUT_SECONDS
    ├── InvalidQueryParameter          (400, 12013)
    ├── PreviewsNeedMigration          (400, 12048)  previews_enabled:true beside a legacy trigger
    ├── InvalidRequestHeaders          (400, 6003)   with an error_chain of 6100-6111 causes
    │   └── RequestHeadersTooLarge     (431, 6003)   over BUILDSD_MAX_HEADER_BYTES or 100 fields
    ├── NoRoute                        (400, 7000)   unknown path outside /accounts/{id}/builds
    ├── MissingToken                   (401, 12005)  Builds route, no credentials at all
    ├── MissingCredentials             (400, 9106)   other routes, no credentials at all
    ├── InvalidToken                   (401, 12006)  unknown/expired/disabled/account-owned token
    ├── InvalidApiToken                (401, 1000)   the tokens/verify endpoints
    ├── AuthenticationError            (403, 10000)  valid credential, no permission for this
    ├── UnknownAuthKey                 (403, 9103)   wrong X-Auth-Email / X-Auth-Key pair
    ├── UnauthorizedResource           (403, 9109)   /accounts/{id} the caller cannot see
    ├── NotFound                       (404, 12000)  unknown id, another account's id,
    │   │                                            unknown route under /builds
    │   ├── NoBuildConfiguration       (404, 12040)  a Worker tag without live triggers
    │   └── RepositoryNotGranted       (404, 12000)  a connection outside the account's grants
    ├── MethodNotAllowed               (405, 7001)
    ├── AlreadyExists                  (409, 12049)
    ├── RateLimited                    (429, 971)    carries retry_after (seconds)
    │   └── DeployHookRateLimited      (429, 12051)  10 hook builds/min per Worker, 100 per account
    ├── ServiceUnavailable             (503, 10001)  not ready (/readyz); carries the reason
    │   ├── DatabaseBusy               (503, 10001)  SQLite write lock held elsewhere too long
    │   └── StorageFull                (503, 10001)  the database's disk (or size limit) is full
    ├── WorkerNotFound                 (404, 10007)  Workers platform: no such Worker (or
    │                                                version, deployment) in this account
    ├── InvalidWorkerUpload            (400, 10021)  Workers platform: malformed multipart,
    │                                                metadata or name
    ├── WorkerTooLarge                 (413, 10027)  upload over BUILDSD_MAX_SCRIPT_BYTES
    ├── InvalidWebhookSignature        (401, 13001)  /webhooks/*: signature or token missing/wrong
    ├── WebhooksNotConfigured          (503, 13002)  /webhooks/*: no secret set (provider, account)
    ├── InvalidWebhookPayload          (400, 13003)  /webhooks/*: not JSON, or not the event's shape
    └── DeliveryNotReplayable          (409, 13004)  replay of a delivery that was not accepted

Outside the tree, never rendered by the API: ConfigError (a setting buildsd cannot use) and
AdminError (an administrative request it cannot do).

13xxx codes are buildsd's own (push webhooks exist in no Cloudflare API): docs/webhooks.md.

Codes marked GUESS in ../shared/spec are pinned by DESIGN.md (D2, D8, D9) and by tests.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Cause:
    """One entry of an ``error_chain``: the specific reason behind a generic error."""

    code: int
    message: str


class BuildsError(Exception):
    """Base of every error the API renders; unexpected exceptions become this (500)."""

    status = 500
    code = 10001
    message = "Internal server error"

    def __init__(
        self,
        message: str | None = None,
        *,
        chain: tuple[Cause, ...] = (),
        pointer: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if message is not None:
            self.message = message
        self.chain = chain
        self.pointer = pointer
        self.headers = headers or {}
        super().__init__(self.message)


class InvalidRequestBody(BuildsError):
    """The body is not JSON or breaks the operation's schema (D9)."""

    status = 400
    code = 12002
    message = "Invalid request body"

    def __init__(self, detail: str | None = None, *, pointer: str | None = None) -> None:
        # Cloudflare's message stays exact; the detail a person needs goes into error_chain.
        chain = (Cause(self.code, detail),) if detail else ()
        super().__init__(chain=chain, pointer=pointer)


class BodyTooLarge(InvalidRequestBody):
    """Body larger than BUILDSD_MAX_BODY_BYTES: 413, same code so clients treat it as a bad body."""

    status = 413

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body is larger than {limit} bytes")


class BodyTimeout(InvalidRequestBody):
    """The body did not arrive within BUILDSD_BODY_TIMEOUT_SECONDS of the headers: 408, and the
    connection is closed (api/protocol.py); same code as a bad body, as for 413."""

    status = 408

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the request body did not arrive within {seconds:g} s")


class InvalidQueryParameter(BuildsError):
    status = 400
    code = 12013
    message = "Invalid query parameter"

    def __init__(self, detail: str | None = None, *, pointer: str | None = None) -> None:
        chain = (Cause(self.code, detail),) if detail else ()
        super().__init__(chain=chain, pointer=pointer)


class PreviewsNeedMigration(BuildsError):
    """PATCH /builds/workers/{tag} with previews_enabled:true while a legacy non-production
    trigger exists. The message is Cloudflare's (recorded); the status was not, 400 is ours."""

    status = 400
    code = 12048
    message = (
        "Cannot enable preview settings while a non-production trigger exists. "
        "Use the migrate_to_previews endpoint instead."
    )


class InvalidRequestHeaders(BuildsError):
    status = 400
    code = 6003
    message = "Invalid request headers"


class RequestHeadersTooLarge(InvalidRequestHeaders):
    """Refused by the HTTP protocol before the app sees the request (api/protocol.py)."""

    status = 431

    def __init__(self, detail: str) -> None:
        super().__init__(chain=(Cause(self.code, detail),))


# Causes used in InvalidRequestHeaders.chain (conventions file §4.3).
MISSING_EMAIL = Cause(6100, "Missing X-Auth-Email header")
MISSING_KEY = Cause(6101, "Missing X-Auth-Key header")
BAD_EMAIL = Cause(6102, "Invalid format for X-Auth-Email header")
BAD_KEY = Cause(6103, "Invalid format for X-Auth-Key header")
BAD_AUTHORIZATION = Cause(6111, "Invalid format for Authorization header")


class NoRoute(BuildsError):
    status = 400
    code = 7000
    message = "No route for that URI"


class MissingToken(BuildsError):
    status = 401
    code = 12005
    message = "Missing token from authorization header"


class MissingCredentials(BuildsError):
    status = 400
    code = 9106
    message = "Missing X-Auth-Key, X-Auth-Email or Authorization headers"


class InvalidToken(BuildsError):
    status = 401
    code = 12006
    message = "Invalid token"


class InvalidApiToken(BuildsError):
    status = 401
    code = 1000
    message = "Invalid API Token"


class AuthenticationError(BuildsError):
    status = 403
    code = 10000
    message = "Authentication error"


class UnknownAuthKey(BuildsError):
    status = 403
    code = 9103
    message = "Unknown X-Auth-Key or X-Auth-Email"


class UnauthorizedResource(BuildsError):
    status = 403
    code = 9109
    message = "Unauthorized to access requested resource"


class NotFound(BuildsError):
    status = 404
    code = 12000
    message = "Not found"


class NoBuildConfiguration(NotFound):
    """GET/PATCH/DELETE /builds/workers/{script_tag} for a Worker that has no live trigger."""

    code = 12040
    message = "No build configuration associated with that script tag was found for this account"


class RepositoryNotGranted(NotFound):
    """A repository connection no grant of the account covers (D21).

    Cloudflare's Git app answers `404 12000 Not found` for a repository it cannot see (config
    autofill when the app is not installed on the owner, spec §3.3): the same code and message,
    so clients treat it as they already do; the error_chain tells a person which grant is
    missing. It names only what the request sent, never another account's grants.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(chain=(Cause(self.code, detail),))


class MethodNotAllowed(BuildsError):
    status = 405
    code = 7001
    message = "Method not allowed"


class AlreadyExists(BuildsError):
    status = 409
    code = 12049
    message = "Resource already exists"


class RateLimited(BuildsError):
    status = 429
    code = 971
    message = "Please wait and consider throttling your request speed"

    def __init__(self, retry_after: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(headers={**(headers or {}), "Retry-After": str(retry_after)})


class DeployHookRateLimited(RateLimited):
    """Deploy hooks' own limit (D15): their builds per minute, per Worker and per account."""

    code = 12051
    message = "Rate limit exceeded"


class ServiceUnavailable(BuildsError):
    """The service cannot do this now; nothing was written. The message says why."""

    status = 503
    code = 10001
    message = "Service unavailable"


class DatabaseBusy(ServiceUnavailable):
    """Another process (`worker`, the CLI, a backup) held SQLite's write lock past
    BUILDSD_SQLITE_LOCK_TIMEOUT_SECONDS: waited out without blocking, then this (db.py)."""

    RETRY_AFTER = 1

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"Service unavailable: the database was locked by another process for {seconds:g} s; "
            "nothing was written, retry",
            headers={"Retry-After": str(self.RETRY_AFTER)},
        )


class StorageFull(ServiceUnavailable):
    """SQLite's "database or disk is full", PostgreSQL's disk_full: nothing was written."""

    RETRY_AFTER = 30

    def __init__(self, detail: str = "database or disk is full") -> None:
        super().__init__(
            f"Service unavailable: {detail}; nothing was written",
            headers={"Retry-After": str(self.RETRY_AFTER)},
        )


class WorkerNotFound(BuildsError):
    """The Workers platform's not-found: wrangler reads 10007 as "this Worker does not exist"
    (and a deploy then creates it), so unknown versions and deployments answer it too."""

    status = 404
    code = 10007
    message = "This Worker does not exist on your account."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message)


class InvalidWorkerUpload(BuildsError):
    """A script upload or Workers body buildsd cannot read (10021: Cloudflare's validation code)."""

    status = 400
    code = 10021

    def __init__(self, detail: str, *, pointer: str | None = None) -> None:
        super().__init__(detail, chain=(Cause(self.code, detail),), pointer=pointer)


class WorkerTooLarge(BuildsError):
    status = 413
    code = 10027
    message = "Your Worker exceeded the size limit"

    def __init__(self, limit: int) -> None:
        super().__init__(chain=(Cause(self.code, f"the upload is larger than {limit} bytes"),))


class InvalidWebhookSignature(BuildsError):
    """A delivery whose signature (GitHub, Gitea) or token (GitLab) is missing or wrong."""

    status = 401
    code = 13001
    message = "Invalid webhook signature"

    def __init__(self, detail: str) -> None:
        super().__init__(chain=(Cause(self.code, detail),))


class WebhooksNotConfigured(BuildsError):
    """Without a secret nothing can be verified, so every delivery is refused (and says why)."""

    status = 503
    code = 13002
    message = "Webhooks are not configured"

    def __init__(self, remedy: str) -> None:
        super().__init__(f"Webhooks are not configured: {remedy}")


class InvalidWebhookPayload(BuildsError):
    """A verified delivery whose body buildsd cannot read: nothing is stored, nothing built."""

    status = 400
    code = 13003
    message = "Invalid webhook payload"

    def __init__(self, detail: str, *, pointer: str | None = None) -> None:
        super().__init__(chain=(Cause(self.code, detail),), pointer=pointer)


class DeliveryNotReplayable(BuildsError):
    """Only an accepted delivery holds a payload to match again (ignored and duplicates do not)."""

    status = 409
    code = 13004
    message = "Only an accepted delivery can be replayed"

    def __init__(self, detail: str) -> None:
        super().__init__(chain=(Cause(self.code, detail),))


class ConfigError(Exception):
    """A setting has a value buildsd cannot use; raised before anything starts."""


class AdminError(Exception):
    """An administrative request (make an account, a user, a token) cannot be done, and why.
    Not a BuildsError: no API operation makes these, so there is no Cloudflare code to give."""
