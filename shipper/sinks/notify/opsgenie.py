"""``opsgenie:?api_key=KEY``: an Opsgenie alert per event, deduplicated by alias.

URI::

    opsgenie:?api_key_file=/secrets/opsgenie&priority=P2
    opsgenie:?api_key=$OPSGENIE_KEY&region=eu&responders=team:platform&tags=k8s,{{ .Reason }}
    opsgenie:?api_key=$OPSGENIE_KEY&alias={{ .UID }}&message=Event {{ .Reason }} for {{ .InvolvedObject.Name }}

Config file: kubernetes-event-exporter's ``opsgenie`` receiver as written (``apiKey``,
``URL``, ``priority``, ``message``, ``alias``, ``description``, ``tags``, ``details``), e.g. its
README's::

    receivers:
      - name: alerts
        opsgenie:
          apiKey: xxx
          priority: "P3"
          message: "Event {{ .Reason }} for {{ .InvolvedObject.Namespace }}/{{ .InvolvedObject.Name }} on K8s cluster"
          alias: "{{ .UID }}"
          description: "<pre>{{ toPrettyJson . }}</pre>"
          tags: ["event", "{{ .Reason }}", "{{ .InvolvedObject.Kind }}", "{{ .InvolvedObject.Name }}"]

Each alert is ``POST {api_url}/v2/alerts`` with ``Authorization: GenieKey <api_key>`` (Alert API
v2; ``api_url`` is https://api.opsgenie.com, or https://api.eu.opsgenie.com with ``region=eu``;
the original's ``URL`` key takes ``api.eu.opsgenie.com`` as its SDK did). The body::

    message      template; default "[cluster] Warning BackOff: Pod ns/name"; cut to 130 chars
    alias        template; default "<cluster>/<namespace>/<kind>/<name>/<reason>", one key per
                 involved object and reason: Opsgenie keeps one open alert per alias and counts
                 the repeats into it, so count updates and the same failure of the same object
                 become one alert; cut to 512 characters (then ended by a hash, to stay unique)
    description  template; default kube-eventer's text (level, kind, namespace, name, reason,
                 count, time, message); cut to 15,000 characters
    tags         templates (repeat or comma-separate; the receiver's list); at most 20, each cut
                 to 50 characters, empty ones left out
    details      NAME=TEMPLATE (repeatable; the receiver's mapping); default namespace, kind,
                 name, reason, type, count, uid, cluster; 8,000 characters in all
    entity       template, default "Kind/namespace/name"; source: the cluster name, else
                 kube-event-shipper; priority P1-P5 (P3); responders / visible_to:
                 TYPE:NAME items (team:platform, user:ops@example.com, escalation:...,
                 schedule:...; a UUID is sent as id)

Replies: 202 (Opsgenie queues the request and answers with a ``requestId``) is done. 429 is
retried after its Retry-After (or with ``rate=``, folded into a digest alert); 401/403 (a wrong
or disabled key, a key without create-and-update rights), 5xx and timeouts are retried with
backoff, one log line each; 422 and other 4xx (a field Opsgenie refuses) dead-letter that event
with Opsgenie's ``message`` and ``errors``.

Filters: --sink defaults to level=Warning. A count update of an event alerted within
``realert`` (10m) is not sent (the original sent no updates unless ``sentUpdateEvent``; that
key sets realert=0 here); once sent, Opsgenie counts it into the open alert by its alias.
No ``rate`` by default: Opsgenie's own limit answers 429.

Guarantee: at least once per alert request; Opsgenie deduplicates repeats of an open alert by
alias, so a resend (a timeout after Opsgenie took it, a crash, ``--start=all``) only raises the
alert's count.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from shipper.sinks.base import TransientError
from shipper.sinks.notify import (
    KUBE_EVENTER_MESSAGE,
    Notification,
    NotifierSink,
    NotifyOptions,
    RateLimited,
    Refused,
    Reply,
)
from shipper.spec import option
from shipper.uri import UsageError, choice, parse_bool

HOSTS = {"us": "https://api.opsgenie.com", "eu": "https://api.eu.opsgenie.com"}
DEFAULT_MESSAGE = (
    "{{ if .ClusterName }}[{{ .ClusterName }}] {{ end }}{{ .Type }} {{ .Reason }}:"
    " {{ .InvolvedObject.Kind }} {{ with .InvolvedObject.Namespace }}{{ . }}/{{ end }}"
    "{{ .InvolvedObject.Name }}"
)
DEFAULT_ALIAS = (
    "{{ with .ClusterName }}{{ . }}/{{ end }}{{ .InvolvedObject.Namespace }}/"
    "{{ .InvolvedObject.Kind }}/{{ .InvolvedObject.Name }}/{{ .Reason }}"
)
DEFAULT_ENTITY = (
    "{{ .InvolvedObject.Kind }}/{{ with .InvolvedObject.Namespace }}{{ . }}/{{ end }}"
    "{{ .InvolvedObject.Name }}"
)
DEFAULT_DETAILS = (
    "namespace={{ .InvolvedObject.Namespace }}",
    "kind={{ .InvolvedObject.Kind }}",
    "name={{ .InvolvedObject.Name }}",
    "reason={{ .Reason }}",
    "type={{ .Type }}",
    "count={{ .Count }}",
    "uid={{ .UID }}",
    "cluster={{ .ClusterName }}",
)
LIMITS = {"message": 130, "alias": 512, "description": 15000, "entity": 512, "source": 100}
MAX_TAGS, MAX_TAG, MAX_DETAILS = 20, 50, 8000
RESPONDER_TYPES = ("team", "user", "escalation", "schedule")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)


def parse_responder(text: str) -> str:
    kind, sep, name = text.partition(":")
    if not sep or kind.strip().lower() not in RESPONDER_TYPES or not name.strip():
        raise ValueError("expected TYPE:NAME with TYPE team, user, escalation or schedule")
    return text


parse_responder.__name__ = "TYPE:NAME"


def _kv(text: str) -> str:
    if "=" not in text:
        raise ValueError("expected NAME=TEMPLATE")
    return text


_kv.__name__ = "NAME=TEMPLATE"


def responder(text: str) -> dict[str, str]:
    kind, _, name = text.partition(":")
    kind, name = kind.strip().lower(), name.strip()
    if _UUID.fullmatch(name):
        return {"type": kind, "id": name}
    return {"type": kind, "username" if kind == "user" else "name": name}


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cut_alias(text: str) -> str:
    """At most 512 characters; a longer alias keeps its start and ends with its hash."""
    if len(text) <= LIMITS["alias"]:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return f"{text[: LIMITS['alias'] - 17]}~{digest}"


@dataclass(frozen=True, kw_only=True)
class OpsgenieOptions(NotifyOptions):
    DEFAULTS = {**NotifyOptions.DEFAULTS, **{"rate": []}}

    api_key: str | None = option(None, "API key of an Opsgenie API integration (api_key_file=/path or $VAR).", secret=True, aliases=("apikey", "apiKey", "genie_key"), exporter="apiKey")  # fmt: skip
    region: str = option("us", "us (api.opsgenie.com) or eu (api.eu.opsgenie.com).", parse=choice("us", "eu"))  # fmt: skip
    api_url: str | None = option(None, "Base URL of the API (default from region); the original's URL key.", aliases=("url", "URL"), exporter="URL")  # fmt: skip
    priority: str = option("P3", "P1 (critical) ... P5.", parse=choice("P1", "P2", "P3", "P4", "P5"), exporter="priority")  # fmt: skip
    message: str | None = option(None, "Alert message template (cut to 130 characters).", exporter="message")  # fmt: skip
    alias: str | None = option(None, "Alias template: the deduplication key (default: cluster/namespace/kind/name/reason).", exporter="alias")  # fmt: skip
    description: str | None = option(None, "Description template (cut to 15,000 characters).", exporter="description")  # fmt: skip
    tags: list[str] = option([], "Tag templates (repeatable or comma-separated; at most 20).", exporter="tags")  # fmt: skip
    details: list[str] = option([], "A detail NAME=TEMPLATE (repeatable; replaces the defaults).", parse=_kv, aliases=("detail",), exporter="details")  # fmt: skip
    entity: str | None = option(None, "Entity template (default Kind/namespace/name).", exporter="entity")  # fmt: skip
    source: str | None = option(None, "Source field (default: the cluster name, else kube-event-shipper).", exporter="source")  # fmt: skip
    responders: list[str] = option([], "TYPE:NAME (team, user, escalation, schedule; repeatable).", parse=parse_responder)  # fmt: skip
    visible_to: list[str] = option([], "TYPE:NAME the alert is visible to (team or user; repeatable).", parse=parse_responder, aliases=("visibleTo",))  # fmt: skip
    send_updates: bool = option(False, "Send every count update (the original's sentUpdateEvent): realert=0.", parse=parse_bool, exporter="sentUpdateEvent")  # fmt: skip


class OpsgenieSink(NotifierSink):
    scheme = "opsgenie"
    receiver = "opsgenie"
    summary = "Opsgenie Alert API v2: an alert per event, deduplicated by alias (US or EU)"
    vendor = "Opsgenie"
    max_text = 15000 * 4
    Options = OpsgenieOptions
    options: OpsgenieOptions
    passthrough = False
    usage = "opsgenie:?api_key=KEY[&region=eu]"
    example = "opsgenie:?api_key_file=/secrets/opsgenie&priority=P2&responders=team:platform"
    guarantee = (
        "at least once per alert request; Opsgenie keeps one open alert per alias (default:"
        " object and reason), so a resend only raises its count"
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        o = self.options
        self.require(o.api_key, "no API key; give api_key=... (or api_key_file=/path)")
        self.add_secret(o.api_key)
        if o.send_updates:
            self.realert = 0.0
        base = o.api_url or HOSTS[o.region]
        if "://" not in base:
            base = f"https://{base}"
        self.api = base.rstrip("/")
        t = self.template
        self.t_message = t("message", o.message or DEFAULT_MESSAGE)
        self.t_alias = t("alias", o.alias or DEFAULT_ALIAS)
        self.t_description = t("description", o.description or KUBE_EVENTER_MESSAGE)
        self.t_entity = t("entity", o.entity or DEFAULT_ENTITY)
        self.t_tags = [t("tags", text) for text in o.tags]
        self.t_details = [
            (name.strip(), t(f"details {name.strip()}", text))
            for name, _, text in (d.partition("=") for d in (o.details or DEFAULT_DETAILS))
        ]
        for name, _ in self.t_details:
            if not name:
                raise UsageError(f"{self.where}: parameter details: a detail needs a name")
        self.source = cut(o.source or self.cluster or "kube-event-shipper", LIMITS["source"])

    def target(self) -> str:
        return self.api

    def payload(self, n: Notification) -> dict[str, Any]:
        data = n.data
        if n.digest:
            message, description = n.title, n.text
        else:
            message, description = self.t_message.render(data), self.t_description.render(data)
        body: dict[str, Any] = {
            "message": cut(message.strip() or n.title or "Kubernetes event", LIMITS["message"]),
            "alias": cut_alias(self.t_alias.render(data)),
            "description": cut(description, LIMITS["description"]),
            "entity": cut(self.t_entity.render(data), LIMITS["entity"]),
            "source": self.source,
            "priority": self.options.priority,
        }
        tags = [cut(tag.strip(), MAX_TAG) for tag in (t.render(data) for t in self.t_tags)]
        tags = list(dict.fromkeys(tag for tag in tags if tag))[:MAX_TAGS]
        if tags:
            body["tags"] = tags
        details, room = {}, MAX_DETAILS
        for name, template in self.t_details:
            value = template.render(data)
            if not value:
                continue
            space = room - len(name)
            if space <= 0:
                break
            details[name] = cut(value, space) if len(value) > space else value
            room -= len(name) + len(details[name])
        if details:
            body["details"] = details
        if self.options.responders:
            body["responders"] = [responder(r) for r in self.options.responders]
        if self.options.visible_to:
            body["visibleTo"] = [responder(r) for r in self.options.visible_to]
        return body

    def deliver(self, n: Notification) -> None:
        headers = {"Authorization": f"GenieKey {self.options.api_key}"}
        reply = self.http.post_json(f"{self.api}/v2/alerts", self.payload(n), headers)
        self._check(reply)

    def _check(self, reply: Reply) -> None:
        if reply.status in (200, 201, 202):
            return
        body = reply.json()
        text = ""
        if isinstance(body, dict):
            text = str(body.get("message") or "")
            errors = body.get("errors")
            if isinstance(errors, dict) and errors:
                text += " (" + "; ".join(f"{k}: {v}" for k, v in errors.items()) + ")"
        text = self.scrub(text or reply.text(200) or f"HTTP {reply.status}")[:400]
        if reply.status == 429:
            raise RateLimited(f"HTTP 429 {text}", reply.retry_after())
        if reply.status in (401, 403):
            raise TransientError(
                f"Opsgenie refused the API key (HTTP {reply.status}: {text}); check api_key and"
                " that its integration may create alerts"
            )
        if reply.status in (404, 408, 410) or reply.status >= 500:
            raise TransientError(f"Opsgenie answered HTTP {reply.status}: {text}")
        raise Refused(f"HTTP {reply.status}: {text}")
