"""Secrets at rest: hashes for credentials, AES-GCM for secrets the runner must read back."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import string
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from buildsd.errors import ConfigError

KEY_FILE = "secret.key"
_TOKEN_ALPHABET = string.ascii_letters + string.digits + "-_"


def hash_secret(secret: str) -> str:
    """SHA-256 of a credential. Credentials are ≥128 random bits, so a slow KDF buys nothing."""
    return hashlib.sha256(secret.encode()).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def new_api_token() -> str:
    """40 characters of [A-Za-z0-9_-], the pre-2026 Cloudflare API token format."""
    return "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(40))


def new_global_api_key() -> str:
    """37 lowercase hex characters, the Global API Key format."""
    return secrets.token_hex(19)[:37]


class Cipher:
    """AES-256-GCM with a random nonce; the text form is base64url(nonce || ciphertext)."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def encrypt(self, plaintext: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), None)
        return base64.urlsafe_b64encode(nonce + sealed).decode()

    def decrypt(self, token: str) -> str:
        raw = base64.urlsafe_b64decode(token.encode())
        return self._aead.decrypt(raw[:12], raw[12:], None).decode()


def load_key(configured: str | None, data_dir: Path) -> bytes:
    """The 32-byte key from BUILDSD_SECRET_KEY, else the data dir's, made there on first run."""
    if configured:
        return _decode_key(configured, "BUILDSD_SECRET_KEY")
    path = data_dir / KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        temporary = _write_temporary(path, new_key())
        try:
            os.link(temporary, path)  # appears whole or not at all; never overwrites
        except FileExistsError:  # another process made it first: use theirs
            pass
        finally:
            temporary.unlink()
    return _decode_key(path.read_text().strip(), str(path))


def new_key() -> bytes:
    return os.urandom(32)


def encode_key(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode()


def save_key(data_dir: Path, key: bytes) -> Path:
    """Replace the data dir's key file atomically (key rotation)."""
    path = data_dir / KEY_FILE
    os.replace(_write_temporary(path, key), path)
    return path


def _write_temporary(path: Path, key: bytes) -> Path:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(encode_key(key) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return temporary


def _decode_key(encoded: str, where: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except ValueError as exc:
        raise ConfigError(f"{where}: the secret key must be 32 bytes in base64") from exc
    if len(key) != 32:
        raise ConfigError(f"{where}: the secret key must be 32 bytes in base64 (got {len(key)})")
    return key


# --- GitHub App JWTs (RS256): the App's key signs a short-lived token it trades for an
# installation token. Our own few lines instead of a JWT library: one algorithm, one use.


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def is_rsa_private_key(pem: str) -> bool:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(pem.strip().encode(), password=None)
    except (ValueError, TypeError):
        return False
    return isinstance(key, rsa.RSAPrivateKey)


def app_jwt(app_id: str, pem: str, now: int) -> str:
    """GitHub's App JWT: issued a minute back (clock drift), valid nine minutes (ten at most)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(pem.strip().encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)  # set_app refuses any other key
    header = _b64url(b'{"alg":"RS256","typ":"JWT"}')
    claims = f'{{"iat":{now - 60},"exp":{now + 540},"iss":"{app_id}"}}'
    signed = f"{header}.{_b64url(claims.encode())}"
    signature = key.sign(signed.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signed}.{_b64url(signature)}"
