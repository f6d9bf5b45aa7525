"""URLs said to people without the credentials they may carry.

A tracking store, a database or a webhook receiver may be configured as
``http://user:password@host/...``; every message, log line and API answer that names such a URL
shows it as ``http://user:***@host/...``. Lowest layer on purpose: data, training, serving and
the commands all print URLs. (``data.load`` renders SQL URLs through SQLAlchemy's
``hide_password`` for the data source; this does the same for any scheme, and for URLs inside a
longer text such as an exception's message.)
"""

from __future__ import annotations

import logging
import re
import traceback
from urllib.parse import urlsplit, urlunsplit

HIDDEN = "***"

_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<info>[^\s/?#@]+)@")
"""``scheme://userinfo@`` anywhere in a text: the userinfo is everything up to the ``@`` that
ends the authority (no whitespace, ``/``, ``?`` or ``#`` in between)."""


def redact_url(url: str) -> str:
    """``url`` with its password (or a lone token before the ``@``) replaced by ``***``;
    anything that is not a URL with credentials comes back unchanged."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_secrets(url)
    if "@" not in parts.netloc:
        return url
    info, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{_hide(info)}@{host}"))


def redact_secrets(text: str) -> str:
    """``text`` with the credentials of every ``scheme://user:password@`` URL in it replaced
    (for exception messages and tracebacks, which quote URLs as they were given)."""
    return _USERINFO.sub(lambda m: f"{m['head']}{_hide(m['info'])}@", text)


def _hide(userinfo: str) -> str:
    # ``user:password`` keeps the user (it says which account); a lone userinfo may be a token
    # (``https://TOKEN@host``), so it is hidden whole.
    user, colon, _ = userinfo.partition(":")
    return f"{user}:{HIDDEN}" if colon else HIDDEN


def install_log_redaction() -> None:
    """Redact credentials in every log record of this process from now on (idempotent).

    Through the log record factory, so it covers every logger and handler, MLflow's and
    uvicorn's included, and the traceback of a logged exception (MLflow's errors quote the
    tracking URI as configured, password and all)."""
    current = logging.getLogRecordFactory()
    if getattr(current, "redacts_secrets", False):
        return

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = current(*args, **kwargs)
        _redact_message(record)
        if record.exc_info and record.exc_info[0] is not None:
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            if "@" in text:
                record.exc_text = redact_secrets(text)
        return record

    factory.redacts_secrets = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def _redact_message(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a broken format is the handler's to report
        return
    if "@" not in message or redact_secrets(message) == message:
        return
    # Argument by argument first: some formatters read the arguments themselves (uvicorn's
    # access log unpacks them); whole message only when an argument is not text (an exception).
    if isinstance(record.msg, str) and isinstance(record.args, tuple):
        record.msg = redact_secrets(record.msg)
        record.args = tuple(redact_secrets(a) if isinstance(a, str) else a for a in record.args)
        if redact_secrets(record.getMessage()) == record.getMessage():
            return
    record.msg, record.args = redact_secrets(message), None
