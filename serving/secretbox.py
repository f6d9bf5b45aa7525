"""Webhook signing secrets encrypted at rest (Fernet: AES-128-CBC and HMAC-SHA256, from
``cryptography``).

Signing needs the secret itself (a hash would not do), so ``serving.db`` keeps it encrypted: a
copy of the database, a backup or a stray ``sqlite3`` session shows ``fernet:gAAAA…``, not the
secret. The key comes from ``OTD_RISK_WEBHOOK_SECRET_KEY`` when set; otherwise it is generated
once into ``<home>/webhook-secrets.key`` with mode 0600 (keep that file out of backups of the
database, or set the key from a secrets manager instead).

Rows written before encryption hold the secret in clear: :func:`SecretBox.open` reads both, and
``WebhookStore`` encrypts such rows when it starts.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

SEALED_PREFIX = "fernet:"
KEY_FILE = "webhook-secrets.key"
KEY_SETTING = "OTD_RISK_WEBHOOK_SECRET_KEY"


class SecretUnreadable(ValueError):
    """A stored secret cannot be decrypted with the key in use (the key changed or was lost)."""


class SecretBox:
    """Encrypts and decrypts the webhook secrets of one serving store."""

    def __init__(self, key: str | bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError):
            raise ValueError(
                f"{KEY_SETTING} is not a Fernet key (44 characters of URL-safe base64); make "
                'one with `python -c "from cryptography.fernet import Fernet; '
                'print(Fernet.generate_key().decode())"`'
            ) from None

    @classmethod
    def for_home(cls, home: Path, key: str | None = None) -> SecretBox:
        """The box of the store under ``home``: ``key`` when given, else the home's key file
        (created, mode 0600, when missing)."""
        return cls(key if key else _key_file(Path(home)))

    def seal(self, secret: str) -> str:
        """``secret`` as stored: ``fernet:`` and the token."""
        return SEALED_PREFIX + self._fernet.encrypt(secret.encode("utf-8")).decode("ascii")

    def open(self, stored: str) -> str:
        """The secret of a stored value (encrypted, or in clear from before encryption)."""
        if not is_sealed(stored):
            return stored
        try:
            return self._fernet.decrypt(stored[len(SEALED_PREFIX) :].encode("ascii")).decode()
        except InvalidToken:
            raise SecretUnreadable(
                "the webhook's secret cannot be decrypted with the key in use: "
                f"{KEY_SETTING} (or <home>/{KEY_FILE}) changed since it was registered. Put "
                "the previous key back, or delete the webhook and register it again"
            ) from None


def is_sealed(stored: str) -> bool:
    return stored.startswith(SEALED_PREFIX)


def _key_file(home: Path) -> bytes:
    """The home's key, generated on first use. Created complete or not at all (a temporary file
    linked into place), so two server processes starting together agree on one key."""
    path = home / KEY_FILE
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        tmp = home / f".{KEY_FILE}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, Fernet.generate_key() + b"\n")
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    return path.read_bytes().strip()
