"""multipart/form-data as a Worker upload sends it: named parts, each with its content type."""

from __future__ import annotations

from dataclasses import dataclass

from buildsd.errors import InvalidWorkerUpload

MAX_PARTS = 1000  # Cloudflare's limit on a Worker's modules is far lower; a bound all the same


@dataclass(frozen=True, slots=True)
class Part:
    name: str
    filename: str | None
    content_type: str
    content: bytes


def boundary_of(content_type: str) -> bytes:
    """The boundary of a `multipart/form-data; boundary=...` header, or InvalidWorkerUpload."""
    kind, _, rest = content_type.partition(";")
    if kind.strip().lower() != "multipart/form-data":
        raise InvalidWorkerUpload(
            f"expected a multipart/form-data body, got {kind.strip() or 'no content type'!r}"
        )
    for param in rest.split(";"):
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary" and value.strip().strip('"'):
            boundary = value.strip().strip('"')
            if len(boundary) <= 200:
                return boundary.encode("latin-1")
    raise InvalidWorkerUpload("the multipart/form-data content type has no boundary")


def _disposition(value: str) -> tuple[str | None, str | None]:
    """(name, filename) of a `form-data; name="x"; filename="y"` header."""
    name = filename = None
    for param in value.split(";")[1:]:
        key, _, raw = param.strip().partition("=")
        raw = raw.strip()
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            raw = raw[1:-1].replace('\\"', '"')
        if key.lower() == "name":
            name = raw
        elif key.lower() == "filename":
            filename = raw
    return name, filename


def parse(body: bytes, content_type: str) -> list[Part]:
    """The parts of a multipart body, in order; anything malformed is InvalidWorkerUpload.

    bytes.find over the whole body, never a per-line loop: a 1 MiB module is found in one pass.
    """
    delimiter = b"--" + boundary_of(content_type)
    start = body.find(delimiter)
    if start < 0:
        raise InvalidWorkerUpload("the body holds no part with the declared boundary")
    parts: list[Part] = []
    position = start + len(delimiter)
    separator = b"\r\n" + delimiter
    while True:
        if body.startswith(b"--", position):
            return parts  # the closing delimiter
        if not body.startswith(b"\r\n", position):
            raise InvalidWorkerUpload("a multipart delimiter is not followed by a line break")
        head_end = body.find(b"\r\n\r\n", position + 2)
        if head_end < 0:
            raise InvalidWorkerUpload("a part's headers never end")
        end = body.find(separator, head_end + 4)
        if end < 0:
            raise InvalidWorkerUpload("the body ends before its closing delimiter")
        headers: dict[str, str] = {}
        for line in body[position + 2 : head_end].split(b"\r\n"):
            key, colon, value = line.decode("utf-8", "replace").partition(":")
            if not colon:
                raise InvalidWorkerUpload(f"a part header is not `Name: value`: {line[:80]!r}")
            headers[key.strip().lower()] = value.strip()
        name, filename = _disposition(headers.get("content-disposition", ""))
        if not name:
            raise InvalidWorkerUpload("a part has no Content-Disposition name")
        parts.append(
            Part(
                name=name,
                filename=filename,
                content_type=headers.get("content-type", "text/plain"),
                content=body[head_end + 4 : end],
            )
        )
        if len(parts) > MAX_PARTS:
            raise InvalidWorkerUpload(f"more than {MAX_PARTS} parts")
        position = end + len(separator)
