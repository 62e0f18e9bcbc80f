"""kafka-python's failures in one line each: its log kept for the sink's reports instead of
printed (it logs every reconnect while a broker is away), and an exception with the client's
own reason (authentication, authorization, TLS) said the way an operator can act on."""

from __future__ import annotations

import logging
import re
import threading
from collections import deque
from collections.abc import Sequence


class KafkaLog(logging.Handler):
    """kafka-python logs every reconnect (at WARNING, ERROR, some with tracebacks) for as long
    as a broker is away. The sink reports failures itself, once per attempt: this handler keeps
    the client's recent complaints for those reports instead of printing them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.recent: deque[logging.LogRecord] = deque(maxlen=50)

    def emit(self, record: logging.LogRecord) -> None:
        self.recent.append(record)

    def since(self, moment: float) -> list[logging.LogRecord]:
        return [r for r in list(self.recent) if r.created >= moment]


_kafka_log: KafkaLog | None = None
_kafka_log_lock = threading.Lock()


def kafka_log() -> KafkaLog:
    """The one handler on the ``kafka`` logger (installed on first use)."""
    global _kafka_log
    with _kafka_log_lock:
        if _kafka_log is None:
            _kafka_log = KafkaLog()
            client_log = logging.getLogger("kafka")
            client_log.addHandler(_kafka_log)
            if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
                client_log.propagate = False
        return _kafka_log


def explain(
    exc: BaseException,
    records: list[logging.LogRecord],
    brokers: Sequence[str],
    mechanism: str | None,
    user: str | None,
) -> str:
    """One line: what failed, with the client's own reason when it logged one."""
    from kafka import errors

    where = f"brokers {','.join(brokers)}"
    reasons = [a for r in records for a in (r.args if isinstance(r.args, tuple) else ())]
    for reason in [exc, *reasons]:
        if isinstance(reason, errors.SaslAuthenticationFailedError):
            return (
                f"{where}: authentication failed ({mechanism}, user"
                f" {user!r}): {text(reason)}; check user, password and"
                " mechanism"
            )
        if isinstance(reason, errors.UnsupportedSaslMechanismError):
            return f"{where}: the brokers do not offer SASL {mechanism}: {text(reason)}"
        if isinstance(reason, errors.AuthorizationError):
            return f"{where}: not authorized: {text(reason)}"
    for reason in reversed(reasons):
        if isinstance(reason, BaseException) and "Handshake failed" in str(reason):
            return f"{where}: TLS handshake failed: {text(reason)}"
    if mechanism and any(
        r.getMessage().startswith("Bootstrap connection")
        and "socket disconnected" in r.getMessage()
        for r in records
    ):  # the broker's reply to bad credentials is sometimes only the hang-up
        return (
            f"{where}: authentication failed ({mechanism}, user {user!r}):"
            " the brokers closed the connection during SASL authentication; check user,"
            " password and mechanism"
        )
    last = next((r for r in reversed(reasons) if isinstance(r, BaseException)), None)
    line = f"{where}: {text(exc)}"
    if last is not None and str(last) not in line:
        line += f" (last client error: {text(last)})"
    return line


_PREFIXES = re.compile(r"(?:\[Error -?\d+\] |\b[A-Za-z]+Error: )+")


def text(exc: BaseException) -> str:
    """An exception in one line, its class named once, cut to a safe length:
    ``SaslAuthenticationFailedError: Authentication failed ...`` (kafka-python repeats the
    class name and the error code in its messages)."""
    name = type(exc).__name__
    words = _PREFIXES.sub("", " ".join(str(exc).split())).strip()
    return (f"{name}: {words}" if words and words != name else name)[:500]
