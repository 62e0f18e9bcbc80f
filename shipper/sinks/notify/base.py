"""The notifiers' base: how an event becomes a message, and which events get one.

A vendor module (``dingtalk``, ``wechat``, ``slack``, ``lark``, ``teams``, ``webhook``) says how
one :class:`Notification` becomes that vendor's request and how to read its reply
(:meth:`NotifierSink.deliver`); everything else is here, so every notifier behaves the same way.

Which events become messages, decided per event inside ``write()``, which never waits:

- **send**: the event gets a message of its own, while the vendor's pace allows (``rate=20/1m``:
  a sliding window, the way DingTalk and WeCom count; several ``rate=`` windows may be given,
  all must allow; :class:`~shipper.sinks.delivery.Pace`);
- **digest**: past the limit, or while the vendor has told us to slow down (HTTP 429 with
  Retry-After, DingTalk 130101 / 660026, WeCom 45009 / 45033, Slack ``ratelimited``, Lark
  11232), the event is folded into one pending digest message ("37 more: BackOff x30 in
  ns/shop, ..."; :mod:`shipper.sinks.notify.digest`) and answered as *held*: its ticket stays
  open until the digest is sent, so a crash in between loses nothing (the events are read again
  after the restart). The pipeline calls :meth:`NotifierSink.tick` when the pace lets the
  digest go, and ``write()`` sends it first when events flow. So a burst of 500 events makes
  20 messages and one digest, never silent drops and never the vendor's 10-minute block;
- **suppress**: a count update of an event already alerted within ``realert`` (default 10m),
  or an event older than ``max_age`` (a first start or a replay would otherwise post the
  whole retained hour). Suppressed events are done at once.

Vendor errors: a 200 reply that carries an error code is a failure. Rate-limit codes fold the
event into the digest (above); errors an operator fixes (credentials, signature, keyword, IP
allow-list, a missing channel) and outages (5xx, timeouts, connection errors) answer *retry*
for that event and the rest of the batch, so the pipeline writes exactly those again with
backoff (``sink_up`` 0, one log line naming the vendor's message) and never re-sends the
messages that went before them; a message the vendor refuses for good (too long, malformed)
is *rejected* with the vendor's words, so it lands in the dead letters. While a pending
digest fails, new events wait in the pipeline rather than fold into it.

Secrets (tokens, sign secrets, webhook URLs with keys in their path) are never logged:
``describe()`` shows the host only, and every error message is scrubbed of every secret value.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from shipper import spec
from shipper.caching import TTLCache
from shipper.event import Event
from shipper.sinks.base import Rejected, Sink, TransientError
from shipper.sinks.delivery import Outcome, Pace, Release
from shipper.sinks.notify.digest import Digest, digest_event
from shipper.sinks.notify.http import Http, Reply, safe_url
from shipper.sinks.notify.options import ChatOptions
from shipper.templates import (
    Struct,
    Template,
    TemplateError,
    check_template,
    compile_template,
    event_context,
)
from shipper.uri import UsageError

log = logging.getLogger(__name__)


class Refused(Exception):
    """The vendor refused this message for good; the text is the vendor's own message."""


class RateLimited(TransientError):
    """The vendor asked us to slow down; ``retry_after`` seconds if it said so."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


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


def truncate(text: str, max_bytes: int) -> str:
    """At most ``max_bytes`` of UTF-8, cut on a character boundary, marked with an ellipsis."""
    data = text.encode()
    if len(data) <= max_bytes:
        return text
    return data[: max_bytes - 3].decode("utf-8", errors="ignore") + "…"


#: What :meth:`NotifierSink._handle` answers for an event folded into the digest.
HELD: Any = object()


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
        #: The vendor's rate (``rate=``), spent here one message at a time, read by the
        #: pipeline to know when the digest may go.
        self.pace = Pace(o.rate)
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
        #: Events alerted (sent or digested) within realert: their count updates are not sent.
        self._alerted = TTLCache(size=100_000, ttl=self.realert or 1.0)
        self._digest = Digest()
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
        n.text = truncate(digest.text(self.pace.describe() or "vendor"), self.max_text)
        n.fields, n.link, n.color, n.digest = [], "", COLORS["digest"], digest.count
        return n

    # -- the pipeline's side

    def write(self, events: Sequence[Event]) -> Outcome:
        """Send, fold or suppress each event; never waits. A transient failure stops the batch
        there: that event and the rest are answered *retry*, what went before stays done."""
        now = time.monotonic()
        release = None
        if self._digest.count and self.pace.allows(now):
            try:
                release = self._send_digest(now)
            except TransientError as exc:
                # The pending digest fails (an outage, credentials): hold new events in the
                # pipeline, retried with backoff and sink_up 0, rather than fold them in too.
                reason = f"the digest of {self._digest.count} events failed: {exc}"
                return Outcome(retry=Outcome.retry_all(range(len(events)), reason))
        rejected: list[Rejected] = []
        held: list[int] = []
        for index, event in enumerate(events):
            try:
                verdict = self._handle(event, time.monotonic())
            except TransientError as exc:
                after = getattr(exc, "retry_after", None)
                retry = Outcome.retry_all(range(index, len(events)), str(exc), after)
                return Outcome(tuple(rejected), retry, tuple(held), release)
            if verdict is HELD:
                held.append(index)
            elif verdict is not None:
                rejected.append(Rejected(index, verdict))
        return Outcome(tuple(rejected), (), tuple(held), release)

    def tick(self) -> Outcome:
        """Send the pending digest if the pace allows: the pipeline calls this between batches.
        Raises TransientError if the vendor fails (the pipeline backs off and calls again)."""
        now = time.monotonic()
        if not self._digest.count or not self.pace.allows(now):
            return Outcome()
        return Outcome(release=self._send_digest(now))

    def holding(self) -> int:
        """Events folded into the pending digest."""
        return self._digest.count

    def _handle(self, event: Event, now: float) -> Any:
        """Send, fold or suppress one event: None (done), :data:`HELD` (folded), or the reason
        the message was refused for good. Raises TransientError (scrubbed) to retry it."""
        why = self._suppress(event, now)
        if why:
            self._count("suppressed")
            log.debug("Sink %s: not sending %s (%s).", self.name, event.describe(), why)
            return None
        try:
            n = self.build(event)
        except TemplateError as exc:
            return str(exc)
        if self._digest.count or not self.pace.allows(now):
            self._fold(n, now)
            return HELD
        try:
            self.deliver(n)
        except RateLimited as exc:
            if not self.pace.windows:  # no rate= given: every event is sent alone, later
                raise RateLimited(self.scrub(str(exc)), exc.retry_after) from None
            self._pause(exc, now)
            self._fold(n, now)
            return HELD
        except Refused as exc:
            return self.scrub(f"{self.vendor} refused the message: {exc}")
        except TransientError as exc:
            raise TransientError(self.scrub(str(exc))) from None
        except Exception as exc:  # a bug or an unforeseen reply: this message, not the batch
            log.exception("Sink %s failed unexpectedly on %s.", self.name, event.describe())
            return self.scrub(f"{type(exc).__name__}: {exc}")
        self.pace.spend(now)  # a request refused for credentials is not a message
        self._alert(event, now)
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
        if self.realert and event.uid in self._alerted:
            return "a count update within realert"
        return None

    def _fold(self, n: Notification, now: float) -> None:
        if not self._digest.count:
            log.info(
                "Sink %s: %s; holding events for one digest message.",
                self.name,
                f"the vendor asked to slow down for {self.pace.paused_until - now:.0f} s"
                if now < self.pace.paused_until
                else f"rate limit {self.pace.describe()} reached",
            )
        self._digest.add(n)
        self._alert(n.event, now)
        self._count("digested")

    def _alert(self, event: Event, now: float) -> None:
        """Remember that ``event`` was alerted (sent or digested), for ``realert``."""
        if self.realert:
            self._alerted.put(event.uid, now)

    def _pause(self, exc: RateLimited, now: float) -> None:
        pause = exc.retry_after if exc.retry_after is not None else self.rate_limit_pause
        self.pace.pause(pause, now)
        log.warning(
            "Sink %s: %s asked to slow down (%s); sending again in %.0f s.",
            self.name,
            self.vendor,
            self.scrub(str(exc)),
            pause,
        )

    def _send_digest(self, now: float) -> Release | None:
        """Send the pending digest (the pace allows it): the release of its events, or None
        if the vendor asked to slow down. Raises TransientError (scrubbed) if it failed."""
        digest = self._digest
        try:
            self.deliver(self.build_digest(digest))
        except RateLimited as exc:
            self._pause(exc, now)
            return None
        except TransientError as exc:
            raise TransientError(self.scrub(str(exc))) from None
        except (Refused, TemplateError) as exc:
            release = self._refused_digest(digest, f"{self.vendor} refused the digest: {exc}")
        except Exception as exc:  # a bug: dead-letter the digest rather than block on it
            log.exception("Sink %s failed unexpectedly on its digest.", self.name)
            release = self._refused_digest(digest, f"{type(exc).__name__}: {exc}")
        else:
            self.pace.spend(now)
            log.info("Sink %s sent a digest: %s.", self.name, digest.summary())
            release = Release(digest.count)
        self._digest = Digest()
        return release

    def _refused_digest(self, digest: Digest, reason: str) -> Release:
        reason = self.scrub(reason)
        log.error(
            "Sink %s: the digest of %d events is dead-lettered (%s): %s",
            self.name, digest.count, reason, digest.summary(),
        )  # fmt: skip
        return Release(digest.count, reason, digest_event(digest, self.cluster))

    def _count(self, outcome: str) -> None:
        self.counts[outcome] += 1
        if self._metric is not None:
            self._metric.labels(self.name, outcome).inc()

    def close(self) -> None:
        """Release connections. A digest still pending is not sent: its events are still
        unacknowledged, so they come back after the restart."""
        self.http.close()

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
