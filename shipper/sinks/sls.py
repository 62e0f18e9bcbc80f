"""``sls:https://cn-hangzhou.log.aliyuncs.com?project=P&logStore=L``: Alibaba Cloud Log Service.

kube-eventer's URI, its parameters as written::

    sls:https://cn-hangzhou.log.aliyuncs.com?project=k8s-log-c3da&logStore=k8s-event&topic=kube-eventer
    sls:https://cn-beijing-intranet.log.aliyuncs.com?project=P&logStore=L&label=ClusterId,c3da&label=env,prod
    sls:https://sls.aliyuncs.com?project=P&logStore=L&regionId=cn-hangzhou&internal=false

The rest is the region's endpoint (``https://`` when no scheme is given; the ``-intranet``
endpoints from inside the region's VPC). ``sls.aliyuncs.com``, kube-eventer's documented
stand-in, means what it means there: the endpoint of ``regionId`` (else the ``RegionId`` or
``ALIBABA_CLOUD_REGION_ID`` environment variable), ``<region>-intranet.log.aliyuncs.com`` unless
``internal=false``. Requests go to ``<project>.<endpoint>``; an endpoint given as an IP address
(a proxy) is connected to as is, with ``Host: <project>.<address>``.

Credentials, the first found: ``access_key_id`` + ``access_key_secret`` (kube-eventer's
``accessKeyId`` / ``accessKeySecret``; ``access_key_secret_file=/path`` reads a mounted Secret),
the environment's ``ALIBABA_CLOUD_ACCESS_KEY_ID`` / ``ALIBABA_CLOUD_ACCESS_KEY_SECRET``, then
kube-eventer's ``AccessKeyId`` / ``AccessKeySecret``; an STS token from ``security_token`` or
``ALIBABA_CLOUD_SECURITY_TOKEN``, sent as ``x-acs-security-token``. With none of these, ACK's
add-on token file (``token_config``, default ``/var/addon/token-config``, the file kube-eventer
reads on ACK) supplies an STS key; it is read again whenever it changes, so rotation needs no
restart. The ECS instance's RAM role (the metadata service) is not read. Secrets never reach
the log.

Each event version is one log (kube-eventer's contents, so its queries and ACK's event center
dashboards keep working), with ``__time__`` the occurrence (to the nanosecond, ``Time_ns``)::

    eventId      the core/v1 Event as JSON, as kube-eventer writes it (index it as JSON to
                 query eventId.reason, eventId.involvedObject.name ...)
    hostname     source.host
    level        Normal or Warning
    pod_id       involvedObject.uid   } only for Pods
    pod_name     involvedObject.name  }
    KEY          VALUE, for each label=KEY,VALUE
    version_id   <uid>.<count>: the same for every copy of one version (this sink's addition)
    cluster      the cluster name, when --cluster-name or cluster_name is set (addition)

``__topic__`` is ``topic``; ``__source__`` the shipper's host name.

Writes: one PutLogs (API 0.6.0, a protobuf LogGroup compressed with lz4, or deflate without
the ``sls`` extra, signed with HMAC-SHA1) per at most 4096 logs and ``max_request_bytes``
(5 MiB raw, the documented size of a LogGroup). A log over ``max_log_bytes`` is never sent: it
is dead-lettered with its size. A request SLS refuses as invalid (HTTP 400, such as
``PostBodyInvalid``) is split in halves until the one log at fault is found: only that one is
dead-lettered. ``WriteQuotaExceed``, 5xx, timeouts and network failures retry with backoff the
logs not yet written (the groups of one batch that landed stay written). A refused credential
(401 ``Unauthorized``/``SignatureNotMatch``), a missing project or logstore (404) and a
missing permission (403 ``Unauthorized``) are one line each and retried: fix the Secret or the
RAM policy and the events flow, none lost.

Guarantee: at least once per event version. SLS has no idempotent PutLogs, so a version is
written twice after a request that timed out although SLS stored it, after a crash (the last
checkpoint interval), and with ``--start=all`` (on purpose). A clean restart and a 410 re-list
write only the versions not written yet. Every copy carries the same ``version_id``: query with
``* | SELECT ... FROM log GROUP BY version_id`` or ``count(DISTINCT version_id)`` to count
each once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import socket
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import formatdate
from typing import Any
from urllib.parse import urlsplit

from shipper.event import Event
from shipper.sinks.base import Rejected, Sink, TransientError
from shipper.sinks.delivery import Outcome, Retry
from shipper.spec import ClusterName, SinkOptions, Timeout, TLSTrust, check_readable, option
from shipper.uri import UsageError, choice, parse_bool, parse_positive_int

log = logging.getLogger(__name__)

API_VERSION = "0.6.0"
#: kube-eventer's documented stand-in host: the endpoint comes from the region.
PLACEHOLDER_HOST = "sls.aliyuncs.com"
#: ACK mounts an add-on's STS credentials here (kube-eventer reads it first).
ACK_TOKEN_CONFIG = "/var/addon/token-config"
MAX_LOGS_PER_GROUP = 4096
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_")


def parse_label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition(",")
    if not sep or not key.strip() or "," in value:
        raise ValueError("expected KEY,VALUE (repeat label= for more)")
    return key.strip(), value


parse_label.__name__ = "KEY,VALUE"


def _lz4_available() -> bool:
    try:
        import lz4.block  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True, kw_only=True)
class SlsOptions(SinkOptions, TLSTrust, ClusterName, Timeout):
    DEFAULTS = {"timeout": 30.0}

    project: str | None = option(None, "The SLS project.")
    logstore: str | None = option(None, "The logstore in the project.", aliases=("logStore",))
    topic: str = option("", "__topic__ of every log (kube-eventer's topic).")
    label: list[tuple[str, str]] = option(
        [],
        "A field added to every log: label=KEY,VALUE (repeat for more), as kube-eventer's.",
        parse=parse_label,
        repeat=True,
        aliases=("labels",),
    )
    region: str | None = option(
        None,
        "The region (cn-hangzhou ...) whose endpoint serves the placeholder host sls.aliyuncs.com (default: $RegionId or $ALIBABA_CLOUD_REGION_ID).",
        aliases=("regionId",),
    )
    internal: bool = option(
        True,
        "With a region: its -intranet endpoint (inside the region's VPC), as kube-eventer's default.",
        parse=parse_bool,
    )
    access_key_id: str | None = option(
        None,
        "AccessKey id (default: $ALIBABA_CLOUD_ACCESS_KEY_ID, else $AccessKeyId).",
        aliases=("accessKeyId",),
    )
    access_key_secret: str | None = option(
        None,
        "AccessKey secret: access_key_secret_file=/path or $VAR (default: $ALIBABA_CLOUD_ACCESS_KEY_SECRET, else $AccessKeySecret).",
        secret=True,
        aliases=("accessKeySecret",),
    )
    security_token: str | None = option(
        None,
        "STS security token of a temporary AccessKey (default: $ALIBABA_CLOUD_SECURITY_TOKEN).",
        secret=True,
        aliases=("securityToken", "sts_token"),
    )
    token_config: str = option(
        ACK_TOKEN_CONFIG,
        "ACK's add-on token file, read when no AccessKey is given (and again whenever it changes).",
    )
    compression: str | None = option(
        None,
        "lz4 (default with the sls extra) or deflate (the default without it).",
        parse=choice("lz4", "deflate"),
        aliases=("compress",),
    )
    max_request_bytes: int = option(
        5 * 1024 * 1024,
        "Largest LogGroup, raw (before compression), per PutLogs.",
        parse=parse_positive_int,
    )
    max_log_bytes: int = option(
        1024 * 1024,
        "Largest log (its encoded contents); larger events are dead-lettered.",
        parse=parse_positive_int,
    )


@dataclass(frozen=True)
class Credentials:
    key_id: str
    secret: str
    token: str | None = None


class SlsError(Exception):
    def __init__(self, status: int, code: str, message: str, request_id: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message, self.request_id = status, code, message, request_id


class SlsSink(Sink):
    scheme = "sls"
    summary = "Alibaba Cloud Log Service (SLS): one log per event version, kube-eventer's fields"
    usage = "sls:https://REGION.log.aliyuncs.com?project=PROJECT&logStore=LOGSTORE"
    example = "sls:https://cn-hangzhou-intranet.log.aliyuncs.com?project=k8s-log&logStore=k8s-event&topic=prod&label=ClusterId,prod"
    Options = SlsOptions
    options: SlsOptions
    guarantee = (
        "at least once per event version: SLS has no idempotent write, so a timed-out request"
        " that landed, a crash (the last checkpoint interval) and --start=all may write a"
        " version again, with the same version_id field (<uid>.<count>) to deduplicate on in"
        " queries"
    )
    default_batch_size = 1000
    default_flush_interval = 1.0

    http: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        where = f"--sink {self.scheme}"
        o = self.options
        for name, value in (("project", o.project), ("logStore", o.logstore)):
            if not value:
                raise UsageError(f"{where}: parameter {name} is missing; expected {self.usage}")
        assert o.project and o.logstore
        if not set(o.project) <= _NAME_CHARS or not 3 <= len(o.project) <= 63:
            raise UsageError(
                f"{where}: parameter project={o.project!r}: expected 3 to 63 lower-case letters,"
                " digits, '-' and '_'"
            )
        self.project, self.logstore = o.project, o.logstore
        self.base, self.host = self._endpoint(where)
        check_readable(o, where, "ca_file")
        self.static = self._static_credentials(where)
        if self.static is None and not os.path.exists(o.token_config):
            raise UsageError(
                f"{where}: no AccessKey: give access_key_id and access_key_secret (or"
                " access_key_secret_file), or set ALIBABA_CLOUD_ACCESS_KEY_ID and"
                f" ALIBABA_CLOUD_ACCESS_KEY_SECRET (kube-eventer's AccessKeyId and AccessKeySecret);"
                f" {o.token_config} (ACK's add-on token) does not exist"
            )
        self._token_file: tuple[float, Credentials] | None = None
        self.compression = o.compression or ("lz4" if _lz4_available() else "deflate")
        if self.compression == "lz4" and not _lz4_available():
            raise UsageError(
                f"{where}: parameter compression=lz4: the lz4 module is not installed; pip install"
                " 'kube-event-shipper[sls]' or use compression=deflate"
            )
        self.cluster = o.cluster_name or self.ctx.cluster
        self.source = socket.gethostname()
        self.path = f"/logstores/{self.logstore}/shards/lb"

    # -- configuration

    def _endpoint(self, where: str) -> tuple[str, str]:
        """(the URL to connect to, the Host header)."""
        o = self.options
        rest = self.uri.rest.strip()
        if rest.startswith("//"):
            rest = "https:" + rest
        elif rest and "://" not in rest:
            rest = "https://" + rest
        parts = urlsplit(rest)
        if rest and (parts.scheme not in ("http", "https") or not parts.hostname):
            raise UsageError(
                f"{where}: {self.uri.rest!r} is not an endpoint; expected"
                " https://REGION.log.aliyuncs.com"
            )
        host = (parts.hostname or "").lower()
        scheme = parts.scheme or "https"
        if not host or host == PLACEHOLDER_HOST:
            region = o.region or os.environ.get("RegionId") or os.environ.get("ALIBABA_CLOUD_REGION_ID")  # noqa: SIM112  # fmt: skip
            if not region:
                raise UsageError(
                    f"{where}: no endpoint: give the region's, such as"
                    " sls:https://cn-hangzhou.log.aliyuncs.com?..., or regionId=cn-hangzhou"
                    " (or the RegionId environment variable)"
                )
            host = f"{region}{'-intranet' if o.internal else ''}.log.aliyuncs.com"
            netloc = host
        else:
            netloc = host + (f":{parts.port}" if parts.port else "")
        if _is_address(host) or host == "localhost":
            shown = f"[{host}]" if ":" in host else host
            address = shown + (f":{parts.port}" if parts.port else "")
            return f"{scheme}://{address}", f"{self.project}.{address}"
        return f"{scheme}://{self.project}.{netloc}", f"{self.project}.{netloc}"

    def _static_credentials(self, where: str) -> Credentials | None:
        o, env = self.options, os.environ
        key_id, secret = o.access_key_id, o.access_key_secret
        if not key_id and not secret:
            for id_name, secret_name in (
                ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET"),
                ("AccessKeyId", "AccessKeySecret"),
            ):
                if env.get(id_name) or env.get(secret_name):
                    key_id, secret = env.get(id_name), env.get(secret_name)
                    if not key_id or not secret:
                        raise UsageError(f"{where}: {id_name} and {secret_name} go together")
                    break
        if bool(key_id) != bool(secret):
            raise UsageError(f"{where}: give access_key_id and access_key_secret together")
        if not key_id or not secret:
            return None
        token = o.security_token or env.get("ALIBABA_CLOUD_SECURITY_TOKEN") or None
        return Credentials(key_id.strip(), secret.strip(), token.strip() if token else None)

    def credentials(self) -> Credentials:
        if self.static is not None:
            return self.static
        path = self.options.token_config
        try:
            mtime = os.stat(path).st_mtime
            if self._token_file is None or self._token_file[0] != mtime:
                self._token_file = (mtime, read_token_config(path))
        except (OSError, ValueError) as exc:
            raise TransientError(f"cannot read the ACK token file {path}: {exc}") from None
        return self._token_file[1]

    # -- the log

    def contents(self, event: Event) -> list[tuple[str, str]]:
        """The log's fields, in kube-eventer's order, then this sink's additions."""
        from shipper.templates.event import event_context
        from shipper.templates.gojson import encode, indent

        core = event_context(event).lookup("Event")[1]
        fields = [
            ("eventId", indent(encode(core), "", " ")),
            ("hostname", event.source_host or ""),
            ("level", event.type),
        ]
        if event.object_kind == "Pod":
            fields += [("pod_id", event.object_uid or ""), ("pod_name", event.object_name or "")]
        fields += list(self.options.label)
        fields.append(("version_id", f"{event.uid}.{event.count}"))
        if self.cluster:
            fields.append(("cluster", self.cluster))
        return fields

    def encode_log(self, event: Event) -> bytes:
        moment = datetime.fromisoformat(event.timestamp.replace("Z", "+00:00"))
        seconds = int(moment.timestamp())
        nanos = moment.microsecond * 1000
        return encode_log(seconds, self.contents(event), nanos)

    # -- writing

    def open(self) -> None:
        from shipper.sinks.notify.http import Http

        if self.http is None:
            self.http = Http(
                timeout=self.options.timeout,
                ca_file=self.options.ca_file,
                insecure=self.options.insecure,
                scrub=self._scrub,
            )
        self.credentials()  # a broken ACK token file is reported now
        log.info(
            "Sink %s: project %s, logstore %s at %s (%s).",
            self.scheme, self.project, self.logstore, self.host, self.compression,
        )  # fmt: skip

    def _scrub(self, text: str) -> str:
        for secret in (self.options.access_key_secret, self.options.security_token):
            if secret:
                text = text.replace(secret, "***")
        return text

    def write(self, events: Sequence[Event]) -> Outcome:
        if self.http is None:
            self.open()
        rejected: list[Rejected] = []
        logs: list[tuple[int, bytes]] = []
        for index, event in enumerate(events):
            encoded = self.encode_log(event)
            if len(encoded) > self.options.max_log_bytes:
                rejected.append(
                    Rejected(
                        index,
                        f"SLS: the log is {len(encoded)} bytes, over max_log_bytes="
                        f"{self.options.max_log_bytes}",
                    )
                )
                continue
            logs.append((index, encoded))
        retry: list[Retry] = []
        groups = self.groups(logs)
        for number, group in enumerate(groups):
            try:
                rejected += self._put(group)
            except TransientError as exc:
                waiting = [index for g in groups[number:] for index, _ in g]
                retry = list(Outcome.retry_all(waiting, str(exc)))
                break
        return Outcome(rejected=tuple(sorted(rejected, key=lambda r: r.index)), retry=tuple(retry))

    def groups(self, logs: list[tuple[int, bytes]]) -> list[list[tuple[int, bytes]]]:
        """Consecutive runs of at most 4096 logs and ``max_request_bytes`` encoded."""
        limit = self.options.max_request_bytes - 1024  # room for the topic, source and framing
        groups: list[list[tuple[int, bytes]]] = []
        size = 0
        for item in logs:
            cost = len(item[1]) + 6
            if not groups or len(groups[-1]) >= MAX_LOGS_PER_GROUP or size + cost > limit:
                groups.append([])
                size = 0
            groups[-1].append(item)
            size += cost
        return groups

    def _put(self, group: list[tuple[int, bytes]]) -> list[Rejected]:
        """Write one LogGroup; a 400 splits it until the log at fault is found."""
        try:
            self.put_logs(encode_log_group([b for _, b in group], self.options.topic, self.source))
            return []
        except SlsError as exc:
            if exc.status != 400 or exc.code in ("RequestTimeExpired", "SignatureNotMatch"):
                raise TransientError(self._explain(exc)) from None
            if len(group) == 1:
                return [Rejected(group[0][0], f"SLS refused the log: {exc} (HTTP 400)")]
            half = len(group) // 2
            return self._put(group[:half]) + self._put(group[half:])

    def put_logs(self, raw: bytes) -> None:
        if self.compression == "lz4":
            import lz4.block

            body = lz4.block.compress(raw, store_size=False)
        else:
            body = zlib.compress(raw)
        creds = self.credentials()
        headers = {
            "Content-Type": "application/x-protobuf",
            "Content-MD5": hashlib.md5(body).hexdigest().upper(),
            "Date": formatdate(usegmt=True),
            "Host": self.host,
            "x-log-apiversion": API_VERSION,
            "x-log-bodyrawsize": str(len(raw)),
            "x-log-compresstype": self.compression,
            "x-log-signaturemethod": "hmac-sha1",
            "User-Agent": "kube-event-shipper",
        }
        if creds.token:
            headers["x-acs-security-token"] = creds.token
        signature = sign(creds.secret, "POST", self.path, headers)
        headers["Authorization"] = f"LOG {creds.key_id}:{signature}"
        reply = self.http.request("POST", self.base + self.path, body=body, headers=headers)
        if reply.status == 200:
            return
        data = reply.json() if isinstance(reply.json(), dict) else {}
        raise SlsError(
            reply.status,
            str(data.get("errorCode") or f"HTTP {reply.status}"),
            self._scrub(str(data.get("errorMessage") or reply.text(200))),
            reply.headers.get("x-log-requestid", ""),
        )

    def _explain(self, exc: SlsError) -> str:
        """One line that says what to fix."""
        head = f"SLS answered HTTP {exc.status} {exc.code}: {exc.message}"
        creds = self.static or (self._token_file[1] if self._token_file else None)
        key = creds.key_id if creds else "?"
        if exc.status == 401 or exc.code in ("SignatureNotMatch", "InvalidAccessKeyId"):
            return f"{head}; check the AccessKey (id {key}) and its secret or STS token"
        if exc.status == 403 and "Quota" not in exc.code:
            return f"{head}; the RAM policy of AccessKey {key} must allow log:PostLogStoreLogs on {self.project}/{self.logstore}"  # fmt: skip
        if exc.status == 404:
            return f"{head}; check project={self.project} and logStore={self.logstore} and the endpoint's region"  # fmt: skip
        if exc.code == "RequestTimeExpired":
            return f"{head}; the clock is more than 15 minutes off"
        return head

    def close(self) -> None:
        if self.http is not None:
            self.http.close()
            self.http = None

    def describe(self) -> str:
        return f"sls {self.project}/{self.logstore} at {self.host.split('.', 1)[1]}"


# -- the wire format: LogGroup (protobuf) and the signature


def sign(secret: str, method: str, resource: str, headers: dict[str, str]) -> str:
    """SLS's request signature (API 0.6.0, hmac-sha1) of a request without query parameters."""
    lower = {k.lower(): v for k, v in headers.items()}
    canonical = "\n".join(
        f"{k}:{v.strip()}" for k, v in sorted(lower.items()) if k.startswith(("x-log-", "x-acs-"))
    )
    text = "\n".join(
        (
            method,
            lower.get("content-md5", ""),
            lower.get("content-type", ""),
            lower["date"],
            canonical,
            resource,
        )
    )
    digest = hmac.new(secret.encode(), text.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, data: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def encode_log(seconds: int, contents: Sequence[tuple[str, str]], nanos: int = 0) -> bytes:
    """``Log``: Time (1, uint32), Contents (2, repeated Content{Key 1, Value 2}),
    Time_ns (4, fixed32)."""
    out = bytearray(_varint(1 << 3) + _varint(seconds))
    for key, value in contents:
        out += _field(2, _field(1, key.encode()) + _field(2, value.encode()))
    if nanos:
        out += _varint(4 << 3 | 5) + nanos.to_bytes(4, "little")
    return bytes(out)


def encode_log_group(
    logs: Sequence[bytes],
    topic: str = "",
    source: str = "",
    tags: Sequence[tuple[str, str]] = (),
) -> bytes:
    """``LogGroup``: Logs (1), Topic (3), Source (4), LogTags (6, {Key 1, Value 2})."""
    out = bytearray()
    for encoded in logs:
        out += _field(1, encoded)
    if topic:
        out += _field(3, topic.encode())
    if source:
        out += _field(4, source.encode())
    for key, value in tags:
        out += _field(6, _field(1, key.encode()) + _field(2, value.encode()))
    return bytes(out)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def read_token_config(path: str) -> Credentials:
    """ACK's add-on token file: JSON whose ``access.key.id``, ``access.key.secret`` and
    ``security.token`` are AES-CBC encrypted with ``keyring`` (base64 of IV + ciphertext,
    PKCS#7 padding), as kube-eventer decrypts it."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    with open(path, encoding="utf-8") as handle:
        raw = json.load(handle)
    keyring = str(raw.get("keyring") or "").encode()
    if len(keyring) not in (16, 24, 32):
        raise ValueError("its keyring is not an AES key")

    def decrypt(name: str) -> str:
        data = base64.b64decode(raw.get(name) or "")
        if len(data) < 32 or len(data) % 16:
            raise ValueError(f"{name} is not AES-CBC data")
        decryptor = Cipher(algorithms.AES(keyring), modes.CBC(data[:16])).decryptor()
        plain = decryptor.update(data[16:]) + decryptor.finalize()
        pad = plain[-1]
        if not 1 <= pad <= 16:
            raise ValueError(f"{name} does not decrypt with the keyring")
        return plain[:-pad].decode()

    return Credentials(
        decrypt("access.key.id"), decrypt("access.key.secret"), decrypt("security.token") or None
    )
