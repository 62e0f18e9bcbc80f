"""Where the search sinks write: dated index names (``index_format``, Go layouts), the index
patterns that cover them, the audit documents' names next to the events', the server an Elastic
Cloud id names and the nodes sniffing finds."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlsplit

from shipper.uri import UsageError


def dated_format(layout: str | None, index: str, scheme: str) -> str:
    """A str.format pattern for dated index names: ``INDEX-{Y}.{m}.{d}`` by default, or the
    Go layout of ``index_format`` (``kube-events-{2006-01-02}``: Go's reference time)."""
    if not layout:
        return _literal(index) + "-{Y}.{m}.{d}"
    head, brace, rest = layout.partition("{")
    if not brace and "%" not in layout:  # no date: the one index it names, as the original
        return _literal(layout)
    go, close, tail = rest.partition("}")
    if not close or "2006" not in go:  # %Y & co. are strftime's, not a name: a mistake
        raise UsageError(
            f"--sink {scheme}: parameter index_format={layout!r}: expected a name with a Go date"
            " layout in braces, such as kube-events-{2006-01-02}"
        )
    for token, field_ in (("2006", "{Y}"), ("01", "{m}"), ("02", "{d}"), ("15", "{H}")):
        go = go.replace(token, field_)
    return _literal(head) + go + _literal(tail)


#: What the audit documents' index, alias or data stream adds to the events' name.
AUDIT_SUFFIX = "-audit"


def audit_index(index: str) -> str:
    """The audit documents' data stream, alias or dated prefix: ``kube-events-audit``."""
    return index + AUDIT_SUFFIX


def audit_index_format(layout: str | None) -> str | None:
    """``index_format`` for the audit documents: ``-audit`` after the name, before the date and
    its separator (``kube-events-{2006-01-02}`` -> ``kube-events-audit-{2006-01-02}``); after a
    name without a date (``kube-events-all`` -> ``kube-events-all-audit``)."""
    if not layout:
        return layout
    head, brace, rest = layout.partition("{")
    if not brace:
        return layout + AUDIT_SUFFIX
    name = head.rstrip("-_.")
    separator = head[len(name) :]
    if not name:  # the date comes first: {2006.01.02}-events -> audit-{2006.01.02}-events
        return "audit" + (separator or "-") + layout
    return f"{name}{AUDIT_SUFFIX}{separator}{brace}{rest}"


def _literal(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def cloud_url(cloud_id: str) -> str:
    """The server URL in an Elastic Cloud id: ``NAME:BASE64("HOST[:PORT]$ES_ID$KIBANA_ID")``
    gives ``https://ES_ID.HOST:PORT`` (443 by default), as Elastic's clients read it."""
    _, colon, encoded = cloud_id.partition(":")
    if not colon or not encoded or ":" in encoded:
        raise ValueError("expected NAME:BASE64 as the Elastic Cloud console shows it")
    try:
        padded = encoded + "=" * (-len(encoded) % 4)
        decoded = base64.b64decode(padded, validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        raise ValueError("the part after the name is not base64") from None
    parts = decoded.split("$")
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise ValueError("expected HOST$ELASTICSEARCH_ID$KIBANA_ID inside the base64")
    host, _, port = parts[0].partition(":")
    es_id, _, es_port = parts[1].partition(":")
    return f"https://{es_id}.{host}:{es_port or port or 443}"


def dated_patterns(index: str, index_format: str | None) -> list[str]:
    """The indices a dated template covers: ``INDEX-*``, or what ``index_format`` names (its
    text before the date, or the one name when it has no date)."""
    if not index_format:
        return [f"{index}-*"]
    head, brace, _ = index_format.partition("{")
    return [head + "*"] if brace else [index_format]


def sniffed_nodes(reply: dict[str, Any], given: list[str]) -> list[str]:
    """The node URLs a ``GET _nodes/_all/http`` reply lists, with the scheme and credentials of
    the first given node. Sniffed here rather than by the clients' sniffers, which send neither
    our credentials' header nor a media type every server version accepts."""
    scheme = urlsplit(given[0]).scheme
    found = []
    for info in (reply.get("nodes") or {}).values():
        address = (info.get("http") or {}).get("publish_address") or ""
        if "/" in address:  # "name/1.2.3.4:9200": the name, the port
            name, _, ip_port = address.partition("/")
            address = f"{name}:{ip_port.rpartition(':')[2]}"
        if ":" in address:
            found.append(f"{scheme}://{address}")
    userinfo = urlsplit(given[0])
    if userinfo.username is not None:  # credentials given in the URL go to every node
        credentials = userinfo.netloc.rpartition("@")[0]
        found = [f"{scheme}://{credentials}@{u.split('://', 1)[1]}" for u in found]
    return found
