"""The mysql sink's URI: kube-eventer's Go (go-sql-driver) DSN, or a URL.

``mysql:?u:p@tcp(h:3306)/db?charset=utf8mb4&table=t`` is read as go-sql-driver reads a DSN (the
user up to the first ``:``, the password up to the last ``@`` before the address); the DSN's own
query holds the driver's options and ours together. ``mysql://u:p%40ss@h:3306/db`` is the URL
form, percent-encoded. :func:`split_uri` splits the whole ``--sink`` text, :func:`connect_args`
turns the rest into pymysql's connection arguments.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from shipper.uri import Uri, UsageError, expand_env, parse_list

DEFAULT_PORT = 3306

DSN = re.compile(
    r"(?:(?P<userinfo>.*)@)?"  # greedy: the last @ that leaves an address and a database
    r"(?P<net>tcp|tcp4|tcp6|unix)?(?:\((?P<addr>[^()]*)\))?"
    r"/(?P<db>[^?/@()]*)"
    r"(?:\?(?P<query>.*))?",
    re.DOTALL,
)
EXAMPLES = (
    "mysql:?USER:PASSWORD@tcp(HOST:3306)/DATABASE or mysql://USER:PASSWORD@HOST:3306/DATABASE"
)

#: go-sql-driver options that mean nothing to this sink: accepted, so DSNs copy unchanged.
GO_DRIVER_OPTIONS = (
    "loc", "collation", "allowAllFiles", "allowCleartextPasswords", "allowFallbackToPlaintext",
    "allowNativePasswords", "allowOldPasswords", "checkConnLiveness", "clientFoundRows",
    "columnsWithAlias", "interpolateParams", "maxAllowedPacket", "multiStatements",
    "rejectReadOnly", "serverPubKey", "timeTruncate", "connectionAttributes", "autocommit",
)  # fmt: skip


def parse_charset(text: str) -> str:
    for name in parse_list(text):
        if name.lower() in ("utf8mb4", "utf8", "utf8mb3"):
            return "utf8mb4"
    raise ValueError(
        "expected utf8mb4 (or utf8): the shipper always speaks utf8mb4, so that any message"
        " (emoji included) is stored intact"
    )


parse_charset.__name__ = "utf8mb4|utf8"


def split_uri(text: str, *, where: str) -> Uri:
    """Split the whole ``--sink`` text: the DSN's own ``?`` is not the first one.

    ``mysql:?u:p@tcp(h:3306)/db?charset=utf8mb4&table=t`` -> rest ``u:p@tcp(h:3306)/db``,
    query ``charset=utf8mb4&table=t``; ``mysql://u:p@h/db?table=t`` -> rest ``//u:p@h/db``.
    """
    scheme, _, body = text.strip().partition(":")
    if body.startswith("//"):
        rest, _, query = body.partition("?")
    else:
        dsn = body[1:] if body.startswith("?") else body
        match = DSN.fullmatch(dsn)
        if not dsn or match is None:
            raise UsageError(
                f"{where}: no server given; expected {EXAMPLES}"
                if not dsn or ("@" not in dsn and "/" not in dsn)
                else f"{where}: the DSN is not USER:PASSWORD@tcp(HOST:PORT)/DATABASE; expected {EXAMPLES}"
            )
        rest, query = dsn[: match.end("db")], match.group("query") or ""
    return Uri(scheme.lower(), rest, parse_qsl(query, keep_blank_values=True))


def connect_args(
    rest: str, user_option: str | None, password_option: str | None, *, where: str
) -> dict[str, Any]:
    """pymysql's host/port or unix_socket, user, password, database from the DSN or URL in
    ``rest``; the ``user``/``password`` parameters stand in where it has none."""
    if rest.startswith("//"):  # a URL: percent-encoded parts
        try:
            parts = urlsplit(f"mysql:{rest}")
            port = parts.port
        except ValueError as exc:
            raise UsageError(f"{where}: {exc}; expected {EXAMPLES}") from None
        user = unquote(parts.username) if parts.username is not None else None
        password = unquote(parts.password) if parts.password is not None else None
        net, host, database = "tcp", parts.hostname or "", unquote(parts.path.lstrip("/"))
        address = None
    else:
        match = DSN.fullmatch(rest)
        if match is None:
            raise UsageError(f"{where}: expected {EXAMPLES}")
        userinfo = match.group("userinfo")
        user, password = None, None
        if userinfo is not None:
            user, sep, pw = userinfo.partition(":")
            password = pw if sep else None
        net, address, database = (
            match.group("net") or "tcp",
            match.group("addr"),
            match.group("db"),
        )
        host, port = "127.0.0.1", None
    expand = lambda text: expand_env(text, where=where)  # noqa: E731
    user = expand(user) if user else user_option
    if password is not None and password_option is not None:
        raise UsageError(f"{where}: the password is given twice (in the DSN and as a parameter)")
    password = expand(password) if password is not None else password_option
    database = expand(database or "")
    if not user:
        raise UsageError(f"{where}: no user given; expected {EXAMPLES}")
    if not database:
        raise UsageError(f"{where}: no database given; expected {EXAMPLES}")
    args: dict[str, Any] = {"user": user, "password": password or "", "database": database}
    if net == "unix":
        if not address:
            raise UsageError(
                f"{where}: unix() needs the socket's path, e.g. unix(/run/mysqld/mysqld.sock)"
            )
        args["unix_socket"] = expand(address)
        return args
    if address:  # tcp(HOST:PORT), tcp([::1]:PORT), tcp(HOST)
        address = expand(address)
        host, port_text = address, ""
        if address.startswith("["):
            host, _, tail = address[1:].partition("]")
            port_text = tail[1:] if tail.startswith(":") else ""
        elif address.count(":") == 1:
            host, _, port_text = address.partition(":")
        if port_text:
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise UsageError(f"{where}: port {port_text!r} is not a port number")
            port = int(port_text)
    if not host:
        raise UsageError(f"{where}: no host given; expected {EXAMPLES}")
    args.update(host=host, port=port or DEFAULT_PORT)
    return args
