"""What every chat and webhook sink shares: templates, storm control, digests, vendor errors, HTTP.

A vendor module (``dingtalk``, ``wechat``, ``slack``, ``lark``, ``teams``, ``webhook``) says how
one :class:`Notification` becomes that vendor's request and how to read its reply; everything
else is here, so every notifier behaves the same way:

Which events become messages (decided per event inside ``write()``, which never waits for the
rate limit):

- **send**: the event gets a message of its own, while the vendor's rate limit allows
  (``rate=20/1m``: a sliding window, the way DingTalk and WeCom count; several ``rate=``
  windows may be given, all must allow);
- **digest**: past the limit, or while the vendor has told us to slow down (HTTP 429 with
  Retry-After, DingTalk 130101 / 660026, WeCom 45009 / 45033, Slack ``ratelimited``, Lark
  11232), the event is folded into one pending digest message ("37 more: BackOff x30 in
  ns/shop, ..."). The digest is sent as soon as the limit allows: from ``write()`` when events
  flow, else from a small timer thread of the sink (every 0.5 s), and on ``close()``. So a
  burst of 500 events makes 20 messages and one digest, never silent drops and never the
  vendor's 10-minute block;
- **suppress**: a count update of an event already alerted within ``realert`` (default 10m),
  or an event older than ``max_age`` (a first start or a replay would otherwise post the
  whole retained hour). Suppressed and digested events count as shipped for the pipeline.

Vendor errors: a 200 reply that carries an error code is a failure. Rate-limit codes fold the
event into the digest (above); errors an operator fixes (credentials, signature, keyword, IP
allow-list, a missing channel) and outages (5xx, timeouts, connection errors) raise
:class:`TransientError`, so the pipeline retries the batch with backoff and ``sink_up`` goes to
0 with one log line naming the vendor's message; a message the vendor refuses for good (too
long, malformed) is returned as :class:`Rejected` with the vendor's message, so it lands in
the dead letters. A retried batch never sends an event twice: what a batch already did is
remembered per event version.

Secrets (tokens, sign secrets, webhook URLs with keys in their path) are never logged:
``describe()`` shows the host only, and every error message is scrubbed of every secret value.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import ssl
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

import orjson

from shipper import spec
from shipper.event import Event
from shipper.sinks.base import Rejected, Sink, TransientError
from shipper.spec import ClusterName, SinkOptions, Timeout, TLSTrust, option
from shipper.templates import (
    Struct,
    Template,
    TemplateError,
    check_template,
    compile_template,
    event_context,
)
from shipper.uri import UsageError, parse_duration

log = logging.getLogger(__name__)


class Refused(Exception):
    """The vendor refused this message for good; the text is the vendor's own message."""


class RateLimited(TransientError):
    """The vendor asked us to slow down; ``retry_after`` seconds if it said so."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# -- rate limits


_RATE = re.compile(r"\s*(\d+)\s*/\s*(\S+)\s*")


def parse_rate(text: str) -> list[str]:
    """``20/1m`` (at most 20 messages in any minute), several with commas; ``0`` or ``none``:
    no limit. Returns the normalized items (validated here, used by :class:`RateLimiter`)."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if items in (["0"], ["none"]):
        return []
    for item in items:
        match = _RATE.fullmatch(item)
        try:
            if match is None or int(match.group(1)) < 1 or not parse_duration(match.group(2)):
                raise ValueError
        except ValueError:
            raise ValueError(
                "expected COUNT/DURATION such as 20/1m or 1/1s (commas or repeats for several),"
                " or 0 for no limit"
            ) from None
    return items


parse_rate.__name__ = "rate"


class RateLimiter:
    """Sliding windows: a message may go when every window has had fewer than its limit.

    A send counts from the moment it starts; the vendor counts from when the request arrives,
    which can be later for the old request than for the new one. So a window frees its slot a
    little late: 5% of the period, at most a second.
    """

    def __init__(self, rates: Sequence[str]) -> None:
        self.windows: list[tuple[int, float, deque[float]]] = []
        for item in rates:
            match = _RATE.fullmatch(item)
            assert match is not None
            self.windows.append((int(match.group(1)), parse_duration(match.group(2)), deque()))

    def _prune(self, now: float) -> None:
        for _, period, sent in self.windows:
            while sent and sent[0] <= now - period - min(1.0, period * 0.05):
                sent.popleft()

    def allows(self, now: float) -> bool:
        self._prune(now)
        return all(len(sent) < limit for limit, _, sent in self.windows)

    def record(self, now: float) -> None:
        for _, _, sent in self.windows:
            sent.append(now)

    def describe(self) -> str:
        return ", ".join(f"{limit} per {_span(period)}" for limit, period, _ in self.windows)


def _span(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


# -- HTTP


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    data: bytes

    def json(self) -> Any:
        try:
            return orjson.loads(self.data)
        except orjson.JSONDecodeError:
            return None

    def text(self, limit: int = 300) -> str:
        return self.data[:limit].decode("utf-8", errors="replace").strip()

    def retry_after(self) -> float | None:
        value = self.headers.get("retry-after")
        try:
            return max(0.0, float(value)) if value is not None else None
        except ValueError:
            return None


class Http:
    """One pooled client per sink: bounded timeouts and redirects, TLS from ``ca_file``,
    network errors turned into TransientError with a message that names no URL."""

    def __init__(
        self, *, timeout: float, ca_file: str | None, insecure: bool, scrub: Callable[[str], str]
    ) -> None:
        import urllib3

        self.scrub = scrub
        kwargs: dict[str, Any] = {}
        if insecure:
            kwargs["cert_reqs"] = ssl.CERT_NONE
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        elif ca_file:
            kwargs["ca_certs"] = ca_file
        self.pool = urllib3.PoolManager(
            num_pools=4,
            maxsize=2,
            timeout=urllib3.Timeout(connect=min(timeout, 5.0), read=timeout),
            retries=urllib3.Retry(
                total=None,
                connect=0,
                read=0,
                status=0,
                other=0,
                redirect=3,
                raise_on_redirect=True,
                respect_retry_after_header=False,
            ),
            **kwargs,
        )

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        import urllib3

        try:
            reply = self.pool.request(method, url, body=body, headers=headers)
        except urllib3.exceptions.HTTPError as exc:
            raise TransientError(self.scrub(network_error(exc))) from None
        return Reply(
            reply.status, {k.lower(): v for k, v in reply.headers.items()}, reply.data or b""
        )

    def post_json(self, url: str, payload: Any, headers: dict[str, str] | None = None) -> Reply:
        return self.request(
            "POST",
            url,
            body=orjson.dumps(payload),
            headers={"Content-Type": "application/json; charset=utf-8", **(headers or {})},
        )


def network_error(exc: Exception) -> str:
    """A network failure in words, without the URL urllib3 puts in its messages."""
    import urllib3.exceptions as e

    reason = getattr(exc, "reason", None) if isinstance(exc, e.MaxRetryError) else exc
    if isinstance(reason, e.ConnectTimeoutError):
        return "timed out connecting"
    if isinstance(reason, e.ReadTimeoutError | e.TimeoutError | TimeoutError):
        return "timed out waiting for the reply"
    if isinstance(reason, e.NewConnectionError):
        detail = str(reason).rpartition("Failed to establish a new connection: ")[2]
        return f"cannot connect ({detail or 'refused'})"
    if isinstance(reason, e.NameResolutionError):
        return "cannot resolve the host name"
    if isinstance(reason, e.SSLError):
        return f"TLS error ({str(reason).split(' (_ssl')[0][-200:]})"
    if isinstance(reason, e.ResponseError) or "redirect" in str(reason).lower():
        return "too many redirects"
    if isinstance(reason, e.ProtocolError):
        return "the connection broke"
    return f"request failed ({type(reason).__name__})"


def hmac_sha256_b64(key: str, message: str) -> str:
    digest = hmac.new(key.encode(), message.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def safe_url(url: str) -> str:
    """``https://host/…``: where a sink writes, without the path or query that may hold keys."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}/…"


def truncate(text: str, max_bytes: int) -> str:
    """At most ``max_bytes`` of UTF-8, cut on a character boundary, marked with an ellipsis."""
    data = text.encode()
    if len(data) <= max_bytes:
        return text
    return data[: max_bytes - 3].decode("utf-8", errors="ignore") + "…"


# -- what a message is made of


DEFAULT_TITLE = (
    "{{ if .ClusterName }}[{{ .ClusterName }}] {{ end }}{{ .Type }} {{ .Reason }}:"
    " {{ .InvolvedObject.Kind }} {{ with .InvolvedObject.Namespace }}{{ . }}/{{ end }}"
    "{{ .InvolvedObject.Name }}"
)
#: kube-eventer's text layout (the object's name where it printed the Event's).
KUBE_EVENTER_MESSAGE = (
    "Level: {{ .Type }}\nKind: {{ .InvolvedObject.Kind }}\n"
    "Namespace: {{ .InvolvedObject.Namespace }}\nName: {{ .InvolvedObject.Name }}\n"
    "Reason: {{ .Reason }}\nCount: {{ .Count }}\nTimestamp: {{ .LastTimestamp }}\n"
    "Message: {{ .Message }}"
)
DEFAULT_FIELDS = (
    "Namespace={{ .InvolvedObject.Namespace }}",
    "Object={{ .InvolvedObject.Kind }}/{{ .InvolvedObject.Name }}",
    "Count={{ .Count }}",
    "Source={{ .Source.Component }}{{ with .Source.Host }} on {{ . }}{{ end }}",
)
COLORS = {"Warning": "#E01E5A", "Normal": "#2EB67D", "digest": "#ECB22E"}


@dataclass
class Notification:
    """One message to send: an event's, or a digest's (``digest`` > 0 events folded in it)."""

    event: Event
    data: Struct
    title: str
    text: str
    fields: list[tuple[str, str]]
    link: str
    color: str
    labels: list[str]
    digest: int = 0

    @property
    def key(self) -> str:
        return f"{self.event.uid}.{self.event.resource_version}"

    def lines(self) -> str:
        """Labels, the text, and the fields as ``Name: value`` lines (for plain-text vendors)."""
        parts = [*self.labels, self.text]
        parts += [f"{name}: {value}" for name, value in self.fields if value]
        if self.link:
            parts.append(self.link)
        return "\n".join(p for p in parts if p)


class Digest:
    """Events held back by the rate limit, summarized in one message."""

    def __init__(self) -> None:
        self.notifications: list[Notification] = []
        self.count = 0
        self.groups: Counter[tuple[str, str]] = Counter()
        self.first: str = ""
        self.last: str = ""

    def add(self, n: Notification) -> None:
        event = n.event
        self.count += 1
        where = f"ns/{event.object_namespace}" if event.object_namespace else (
            f"{(event.object_kind or 'cluster').lower()}/{event.object_name or ''}"
        )  # fmt: skip
        self.groups[(event.reason, where)] += 1
        if len(self.notifications) < 10:
            self.notifications.append(n)
        self.first = min(self.first or event.timestamp, event.timestamp)
        self.last = max(self.last, event.timestamp)

    def summary(self) -> str:
        shown = self.groups.most_common(10)
        text = ", ".join(f"{reason} ×{n} in {where}" for (reason, where), n in shown)  # noqa: RUF001
        if len(self.groups) > len(shown):
            text += f", and {len(self.groups) - len(shown)} more groups"
        return f"{self.count} more: {text}"

    def text(self, limit: str) -> str:
        lines = [self.summary()]
        period = f"{self.first[11:19]}–{self.last[11:19]} UTC" if self.first else ""  # noqa: RUF001
        lines.append(f"Held back by the rate limit ({limit}) {period}.".replace("  ", " "))
        lines.append("Latest:" if self.notifications else "")
        for n in self.notifications[-5:]:
            lines.append(f"• {n.event.describe()} ×{n.event.count}: {n.event.message[:160]}")  # noqa: RUF001
        return "\n".join(line for line in lines if line)


def digest_event(digest: Digest, cluster: str) -> Event:
    """A synthetic event standing for a digest, for templates (reason ``EventDigest``)."""
    latest = digest.notifications[-1].event
    return Event(
        uid=f"digest-{latest.uid}", resource_version=latest.resource_version, name="digest",
        namespace="", type="Warning", reason="EventDigest", message=digest.summary(),
        count=digest.count, timestamp=digest.last, first_timestamp=digest.first,
        last_timestamp=digest.last, event_time=None, creation_timestamp=None, action=None,
        reporting_controller=None, reporting_instance=None, source_component="kube-event-shipper",
        source_host=None, object_kind=None, object_name=None, object_namespace=None,
        object_uid=None, object_api_version=None, object_resource_version=None,
        object_field_path=None, seen_at=latest.seen_at, watch_type="DIGEST", cluster=cluster,
    )  # fmt: skip


# -- parameters


def _kv(text: str) -> str:
    if "=" not in text:
        raise ValueError("expected NAME=VALUE")
    return text


_kv.__name__ = "NAME=TEMPLATE"


@dataclass(frozen=True, kw_only=True)
class NotifyOptions(SinkOptions, TLSTrust, ClusterName, Timeout):
    """What every notifier takes; a vendor changes the defaults with ``DEFAULTS``."""

    DEFAULTS = {"timeout": 10.0}

    link_template: str | None = option(
        None,
        "A link added to every message, e.g. https://grafana/d/x?var-namespace={{ .InvolvedObject.Namespace }}.",
        aliases=("link",),
    )
    rate: list[str] = option(
        [],
        "Most messages per window, COUNT/DURATION (repeatable; default: the vendor's limit); past it, events fold into one digest message. 0: no limit.",
        parse=parse_rate,
    )
    realert: float = option(
        600.0,
        "A count update of an event already alerted within this window is not sent again (0: send every update).",
    )
    max_age: float = option(
        900.0,
        "Events that happened longer ago than this are not sent (first start, replays); 0: no limit.",
    )


@dataclass(frozen=True, kw_only=True)
class ChatOptions(NotifyOptions):
    """A chat message's parts, each a Go template over the event."""

    message: str | None = option(
        None,
        "Message text, a Go-style template ({{ .Reason }}, {{ .InvolvedObject.Namespace }}, {{ .Message }}, {{ .Count }}, {{ .ClusterName }} ...).",
        exporter="message",
    )
    title: str | None = option(
        None,
        "Title template (default: [cluster] Type Reason: Kind namespace/name).",
        exporter="title",
    )
    color: str | None = option(
        None,
        "Colour template (default by type: Warning red, Normal green, digest yellow).",
        exporter="color",
    )
    field: list[str] = option(
        [],
        "A field NAME=TEMPLATE shown beside the message (repeatable; replaces the default fields).",
        parse=_kv,
        aliases=("fields",),
        exporter="fields",
    )
    label: list[str] = option(
        [],
        "A line printed at the top of every message, e.g. the keyword a DingTalk robot demands (repeatable).",
        parse=str,
    )


# -- the base class


class NotifierSink(Sink):
    """Base of the chat and webhook sinks: subclasses implement :meth:`deliver`."""

    default_level: ClassVar[str | None] = "Warning"
    default_batch_size = 100
    default_flush_interval = 1.0
    passthrough = True
    #: Query keys the vendor's own URL carries (left on it); any other unknown key is a typo.
    url_keys: ClassVar[tuple[str, ...]] = ()
    vendor: ClassVar[str] = ""
    #: Longest message text the vendor takes, in UTF-8 bytes.
    max_text: ClassVar[int] = 4000
    default_message: ClassVar[str] = "{{ .Message }}"
    default_fields: ClassVar[tuple[str, ...]] = DEFAULT_FIELDS
    #: Applied to every value a template inserts (Slack's &, <, > escapes).
    escape: ClassVar[Callable[[str], str] | None] = None
    #: Seconds to hold off after a rate-limit reply that names no Retry-After.
    rate_limit_pause: ClassVar[float] = 60.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        o = self.options
        self.name = o.name or self.scheme
        self.where = f"--sink {self.scheme}"
        self._check_leftover()
        self.cluster = o.cluster_name or self.ctx.cluster
        chat = o if isinstance(o, ChatOptions) else ChatOptions()
        self.labels: list[str] = list(chat.label)
        self.title_t = self.template("title", chat.title or DEFAULT_TITLE)
        self.message_t = self.template("message", chat.message or self.default_message)
        self.color_t = self.template("color", chat.color) if chat.color else None
        self.fields_t = [
            (name, self.template("field", text))
            for name, _, text in (f.partition("=") for f in (chat.field or self.default_fields))
        ] if isinstance(o, ChatOptions) else []  # fmt: skip
        self.link_t = self.template("link_template", o.link_template) if o.link_template else None
        self.limiter = RateLimiter(o.rate)
        self.realert: float = o.realert
        self.max_age: float = o.max_age
        self._secrets: list[str] = []
        for declared in spec.declared(type(o)):
            value = getattr(o, declared.name)
            if declared.meta.secret and isinstance(value, str):
                self._secrets.append(value)
        for key, value in self.leftover:
            if value and re.search(r"token|key|secret|sig|sign|pass|auth", key, re.I):
                self._secrets.append(value)
        self.http = Http(
            timeout=o.timeout, ca_file=o.ca_file, insecure=o.insecure, scrub=self.scrub
        )
        self._lock = threading.RLock()
        self._handled: OrderedDict[tuple[str, str], str | None] = OrderedDict()
        self._alerted: OrderedDict[str, float] = OrderedDict()
        self._digest = Digest()
        self._blocked_until = 0.0
        self._digest_retry_at = 0.0
        self._digest_failures = 0
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        self.counts: Counter[str] = Counter()
        metrics = getattr(self.ctx, "metrics", None)
        self._metric = getattr(metrics, "notify_events", None)
        if self._metric is not None:
            for outcome in ("sent", "digested", "suppressed"):
                self._metric.labels(self.name, outcome)

    # -- set-up helpers for subclasses

    def _check_leftover(self) -> None:
        """Unknown query keys stay on the vendor's URL only if that URL uses them."""
        if self.scheme == "webhook":
            return
        from shipper.uri import _unknown_param_message

        params = spec.params(type(self.options))
        known = {name: p for p in params for name in (p.name, *p.aliases)}
        for key, _ in self.leftover:
            if key not in self.url_keys:
                raise UsageError(_unknown_param_message(key, known, self.where))

    def template(self, param: str, text: str, *, json_body: bool = False) -> Template:
        """Compile and try a template now: its errors are start-up errors naming the parameter."""
        try:
            compiled = compile_template(text, name=f"{self.where}: parameter {param}")
            check_template(compiled, json_body=json_body)
        except TemplateError as exc:
            raise UsageError(str(exc)) from None
        return compiled

    def require(self, value: Any, message: str) -> Any:
        if not value:
            raise UsageError(f"{self.where}: {message}")
        return value

    def add_secret(self, *values: str | None) -> None:
        self._secrets += [v for v in values if v and len(v) >= 4]

    def scrub(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            if len(secret) >= 4:
                text = text.replace(secret, "***")
        return text

    # -- what subclasses implement

    def deliver(self, n: Notification) -> None:
        """Send one message. Raise Refused (for good), RateLimited, or TransientError."""
        raise NotImplementedError

    # -- building messages

    def build(self, event: Event) -> Notification:
        data = event_context(event, self.cluster)
        esc = type(self).escape
        title = self.title_t.render(data, esc)
        text = self.message_t.render(data, esc)
        fields = [(name, t.render(data, esc)) for name, t in self.fields_t]
        link = self.link_t.render(data) if self.link_t else ""
        color = self.color_t.render(data) if self.color_t else COLORS.get(event.type, "#888888")
        return Notification(
            event, data, title, truncate(text, self.max_text), fields, link, color, self.labels
        )

    def build_digest(self, digest: Digest) -> Notification:
        if digest.count == 1:
            return digest.notifications[0]
        event = digest_event(digest, self.cluster)
        n = self.build(event)
        prefix = f"[{self.cluster}] " if self.cluster else ""
        n.title = f"{prefix}{digest.summary()}"[:200]
        n.text = truncate(digest.text(self.limiter.describe() or "vendor"), self.max_text)
        n.fields, n.link, n.color, n.digest = [], "", COLORS["digest"], digest.count
        return n

    # -- the pipeline's side

    def open(self) -> None:
        self._stop.clear()
        self._flusher = threading.Thread(
            target=self._flush_loop, name=f"notify-{self.name}", daemon=True
        )
        self._flusher.start()

    def write(self, events: Sequence[Event]) -> Sequence[Rejected]:
        rejected: list[Rejected] = []
        with self._lock:
            if self._digest_failures:
                # The pending digest fails (an outage, credentials): hold new events in the
                # pipeline, retried with backoff and sink_up 0, rather than fold them in too.
                self._flush_digest(time.monotonic(), quiet=True, strict=True)
            for index, event in enumerate(events):
                key = (event.uid, event.resource_version)
                if key in self._handled:  # a retried batch: this one was done before
                    reason = self._handled[key]
                    if reason is not None:
                        rejected.append(Rejected(index, reason))
                    continue
                reason = self._handle(event)
                self._remember(key, reason)
                if reason is not None:
                    rejected.append(Rejected(index, reason))
            self._flush_digest(time.monotonic(), quiet=True)
        return rejected

    def _handle(self, event: Event) -> str | None:
        """Send, fold or suppress one event; the reason if the vendor refused it for good."""
        now = time.monotonic()
        why = self._suppress(event, now)
        if why:
            self._count("suppressed")
            log.debug("Sink %s: not sending %s (%s).", self.name, event.describe(), why)
            return None
        try:
            n = self.build(event)
        except TemplateError as exc:
            return str(exc)
        if self._digest.count or now < self._blocked_until or not self.limiter.allows(now):
            self._fold(n, now)
            return None
        try:
            self.deliver(n)
            self.limiter.record(now)  # a request refused for credentials is not a message
        except RateLimited as exc:
            if not self.limiter.windows:
                raise
            self._pause(exc, now)
            self._fold(n, now)
            return None
        except Refused as exc:
            return self.scrub(f"{self.vendor} refused the message: {exc}")
        except TransientError as exc:
            raise TransientError(self.scrub(str(exc))) from None
        self._alerted[event.uid] = now
        self._alerted.move_to_end(event.uid)
        self._count("sent")
        return None

    def _suppress(self, event: Event, now: float) -> str | None:
        if self.max_age:
            try:
                age = (
                    time.time()
                    - datetime.fromisoformat(event.timestamp.replace("Z", "+00:00")).timestamp()
                )
            except ValueError:
                age = 0.0
            if age > self.max_age:
                return f"it happened {age:.0f} s ago, more than max_age"
        if self.realert:
            while self._alerted and next(iter(self._alerted.values())) <= now - self.realert:
                self._alerted.popitem(last=False)
            if event.uid in self._alerted:
                return "a count update within realert"
        return None

    def _fold(self, n: Notification, now: float) -> None:
        if not self._digest.count:
            log.info(
                "Sink %s: %s; holding events for one digest message.",
                self.name,
                f"the vendor asked to slow down for {self._blocked_until - now:.0f} s"
                if now < self._blocked_until
                else f"rate limit {self.limiter.describe()} reached",
            )
        self._digest.add(n)
        self._alerted[n.event.uid] = now
        self._alerted.move_to_end(n.event.uid)
        self._count("digested")

    def _pause(self, exc: RateLimited, now: float) -> None:
        pause = exc.retry_after if exc.retry_after is not None else self.rate_limit_pause
        self._blocked_until = max(self._blocked_until, now + pause)
        log.warning(
            "Sink %s: %s asked to slow down (%s); sending again in %.0f s.",
            self.name,
            self.vendor,
            self.scrub(str(exc)),
            pause,
        )

    def _remember(self, key: tuple[str, str], reason: str | None) -> None:
        self._handled[key] = reason
        while len(self._handled) > 20000:
            self._handled.popitem(last=False)
        while len(self._alerted) > 100000:
            self._alerted.popitem(last=False)

    def _count(self, outcome: str) -> None:
        self.counts[outcome] += 1
        if self._metric is not None:
            self._metric.labels(self.name, outcome).inc()

    # -- the digest

    def _flush_digest(self, now: float, *, quiet: bool, strict: bool = False) -> bool:
        """Send the pending digest if the limits allow; True if nothing is pending after.
        ``strict``: try now even within the retry delay, and raise a TransientError."""
        digest = self._digest
        if not digest.count:
            return True
        if now < self._blocked_until or not self.limiter.allows(now):
            return False
        if now < self._digest_retry_at and not strict:
            return False
        n = self.build_digest(digest)
        try:
            self.deliver(n)
            self.limiter.record(now)
        except RateLimited as exc:
            self._pause(exc, now)
            return False
        except Refused as exc:
            log.error(
                "Sink %s: %s refused the digest of %d events (%s): %s",
                self.name, self.vendor, digest.count, self.scrub(str(exc)), digest.summary(),
            )  # fmt: skip
        except TransientError as exc:
            self._digest_failures += 1
            delay = min(60.0, 2.0**self._digest_failures)
            self._digest_retry_at = now + delay
            if strict:
                raise TransientError(
                    f"the digest of {digest.count} events failed: {self.scrub(str(exc))}"
                ) from None
            (log.info if quiet and self._digest_failures < 2 else log.warning)(
                "Sink %s could not send the digest of %d events (%s); retrying in %.0f s.",
                self.name, digest.count, self.scrub(str(exc)), delay,
            )  # fmt: skip
            return False
        else:
            log.info("Sink %s sent a digest: %s.", self.name, digest.summary())
        self._digest = Digest()
        self._digest_failures = 0
        self._digest_retry_at = 0.0
        return True

    def _flush_loop(self) -> None:
        while not self._stop.wait(0.5):
            with self._lock:
                try:
                    self._flush_digest(time.monotonic(), quiet=False)
                except Exception:
                    log.exception("Sink %s: the digest could not be sent.", self.name)

    def close(self) -> None:
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join(timeout=5)
            self._flusher = None
        deadline = time.monotonic() + 10.0
        with self._lock:
            while self._digest.count and time.monotonic() < deadline:
                if self._flush_digest(time.monotonic(), quiet=False):
                    break
                time.sleep(0.2)
            if self._digest.count:
                log.warning(
                    "Sink %s stopped with a digest unsent: %s.", self.name, self._digest.summary()
                )

    def describe(self) -> str:
        return f"{self.scheme} {self.target()}"

    def target(self) -> str:
        return safe_url(self.uri.rest) if "://" in self.uri.rest else ""

    # -- small helpers for vendor modules

    def vendor_url(self, default: str | None = None) -> str:
        """The URI's URL with the vendor's own query (access_token, key, ...) put back."""
        from urllib.parse import urlencode

        base = self.uri.rest or (default or "")
        if not base:
            return ""
        if self.leftover:
            base += ("&" if "?" in base else "?") + urlencode(self.leftover)
        return base

    def status_error(self, reply: Reply, what: str = "") -> None:
        """The generic meaning of an HTTP status (after vendor codes were looked at)."""
        detail = self.scrub(reply.text()) or f"HTTP {reply.status}"
        if 200 <= reply.status < 300:
            return
        if reply.status == 429:
            raise RateLimited(f"HTTP 429 {detail}", reply.retry_after())
        if reply.status in (401, 403, 404, 410) or reply.status >= 500 or reply.status == 408:
            raise TransientError(f"{self.vendor} answered HTTP {reply.status}{what}: {detail}")
        raise Refused(f"HTTP {reply.status}: {detail}")
