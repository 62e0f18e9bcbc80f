"""``webhook:URL``: an HTTP request per event, with a body from a Go-style template.

URI (kube-eventer's parameters work as written; the URL keeps its own query)::

    webhook:https://hooks.example.com/k8s?level=Warning&header=Authorization=Bearer $HOOK_TOKEN
    webhook:https://oapi.dingtalk.com/robot/send?access_token=T&custom_body_configmap=body&custom_body_configmap_namespace=kube-system
    webhook:http://receiver:8080/events?body_template=/etc/shipper/body.json&kinds=Pod&reason=^(BackOff|OOMKilling)$

A kubernetes-event-exporter ``webhook`` receiver maps here (``endpoint``, ``headers``, whose
values may be templates, ``layout``: the body as its layout renders it, see
:mod:`shipper.layout`; without a layout the body is the template below, not the original's
event JSON).

``method`` (POST; kube-eventer defaulted to GET, which most receivers ignore: give
``method=GET`` to keep that), ``header=K=V`` (repeatable; Content-Type defaults to JSON).
The body template comes from ``body_template=/path`` or, as in kube-eventer, from the key
``content`` of the ConfigMap ``custom_body_configmap`` in ``custom_body_configmap_namespace``
(``default``), read at start with the pod's credentials (in-cluster, else ``$KUBECONFIG``).
Without one, kube-eventer's default body (made valid JSON, with a few more keys)::

    {"EventType": "{{ .Type }}", "EventKind": "{{ .InvolvedObject.Kind }}", ...}

The body is always valid JSON whatever the event text holds (quotes, backslashes, newlines,
control characters, emoji, ``{{`` in a message): a value inside a JSON string of the template
is JSON-escaped there, a value standing alone is a JSON value of its type (``{{ .Count }}``
is a number, ``{{ toJson .InvolvedObject.Labels }}`` an object), and the result is checked
before it is sent. A template that is broken itself (unknown field or function, a structure
that does not parse) is an error at start-up, naming it. ``body_format=text`` sends the
rendered text as it is (no JSON checks).

Filters: every pipeline filter (``level``, ``namespaces``, ``kinds``, ``reason`` ...). Unlike
the chat sinks the webhook passes every event and every count update by default, as
kube-eventer did: ``realert``, ``max_age`` and ``rate`` are 0 (off) unless given; with
``rate=`` a burst past it becomes one request for a digest, rendered through the same body
template as an event with reason ``EventDigest`` whose message summarizes the events held back.

Replies: 2xx is success. 429 (with ``rate``: a digest; without: retried), 401/403/404, 408 and
5xx are retried with backoff; other 4xx dead-letter the event with the status and the start of
the reply. A JSON reply with a non-zero ``errcode`` (DingTalk, WeCom) is a failure too.

Guarantee: at least once per event version (a timeout after the receiver got the request
sends it again); after a crash, the last checkpoint interval may be sent again.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any

from shipper.sinks.base import TransientError
from shipper.sinks.notify import Notification, NotifierSink, NotifyOptions, RateLimited, Refused
from shipper.sinks.notify.options import parse_header
from shipper.spec import LayoutOption, option
from shipper.templates import TemplateError
from shipper.uri import UsageError, choice

DEFAULT_BODY = """{
  "EventType": "{{ .Type }}",
  "EventKind": "{{ .InvolvedObject.Kind }}",
  "EventObject": "{{ .InvolvedObject.Name }}",
  "EventNamespace": "{{ .InvolvedObject.Namespace }}",
  "EventReason": "{{ .Reason }}",
  "EventTime": "{{ .LastTimestamp }}",
  "EventCount": {{ .Count }},
  "EventMessage": "{{ .Message }}",
  "ClusterName": "{{ .ClusterName }}"
}"""


@dataclass(frozen=True, kw_only=True)
class WebhookOptions(NotifyOptions, LayoutOption):
    REST = "endpoint"
    DEFAULTS = {**NotifyOptions.DEFAULTS, **{"rate": [], "realert": 0.0, "max_age": 0.0}}

    method: str = option("POST", "HTTP method.", parse=choice("POST", "PUT", "PATCH", "GET"))
    header: list[str] = option([], "A request header NAME=VALUE (repeatable).", parse=parse_header, aliases=("headers",), exporter="headers")  # fmt: skip
    body_template: str | None = option(None, "File holding the body template.", aliases=("custom_body_file", "body_file"))  # fmt: skip
    custom_body_configmap: str | None = option(None, "ConfigMap whose key 'content' holds the body template (kube-eventer).")  # fmt: skip
    custom_body_configmap_namespace: str = option("default", "Namespace of that ConfigMap.")
    body_format: str = option("json", "json: escape values into JSON and check the body; text: send the rendered text as is.", parse=choice("json", "text"))  # fmt: skip


class WebhookSink(NotifierSink):
    scheme = "webhook"
    receiver = "webhook"
    summary = (
        "HTTP request per event; Go-style body template (file or ConfigMap), always valid JSON"
    )
    vendor = "The webhook"
    default_level = None
    max_text = 1 << 20
    Options = WebhookOptions
    options: WebhookOptions
    usage = "webhook:https://HOST/PATH"
    example = (
        "webhook:https://alerts.example.com/k8s?level=Warning&header=Authorization=Bearer%20$TOKEN"
    )
    guarantee = "at least once per event version; every count update is sent unless realert is set"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        o = self.options
        self.require("://" in self.uri.rest, "expected webhook:http(s)://HOST/PATH")
        self.url = self.vendor_url()
        self.add_secret(*(value for _, value in self.leftover if len(value) >= 8))
        self.headers = {
            "Content-Type": "application/json; charset=utf-8"
            if o.body_format == "json"
            else "text/plain; charset=utf-8"
        }
        #: Header values that are templates (the exporter's `headers:` are): rendered per event.
        self.header_ts: list[tuple[str, Any]] = []
        for item in o.header:
            name, _, value = item.partition("=")
            self.headers[name.strip()] = value
            self.add_secret(value, value.partition(" ")[2])
            if "{{" in value:
                self.header_ts.append((name.strip(), self.template(f"header {name}", value)))
        if o.layout is not None and (o.body_template or o.custom_body_configmap):
            raise UsageError(f"{self.where}: give layout or a body template, not both")
        if o.body_template and o.custom_body_configmap:
            raise UsageError(f"{self.where}: give body_template or custom_body_configmap, not both")
        self._configmap_pending = False
        if o.body_template:
            text = self._read_file(o.body_template)
            self.body_t = self.template(
                f"body_template ({o.body_template})", text, json_body=self.json
            )
        elif o.custom_body_configmap:
            # Read at start (open), as kube-eventer reads it: `check` needs no cluster.
            self.body_t = self.template("custom_body_configmap", DEFAULT_BODY, json_body=True)
            self._configmap_pending = True
        else:
            self.body_t = self.template("body", DEFAULT_BODY, json_body=self.json)

    @property
    def json(self) -> bool:
        return self.options.body_format == "json"

    def _read_file(self, path: str) -> str:
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read()
        except OSError as exc:
            raise UsageError(
                f"{self.where}: parameter body_template: cannot read {path}: {exc.strerror}"
            ) from None

    def _load_configmap(self) -> None:
        from kubernetes import client, config
        from kubernetes.client.exceptions import ApiException

        name = self.options.custom_body_configmap
        namespace = self.options.custom_body_configmap_namespace
        where = f"{self.where}: parameter custom_body_configmap: ConfigMap {namespace}/{name}"
        configuration = client.Configuration()
        try:
            if os.environ.get("KUBERNETES_SERVICE_HOST"):
                config.load_incluster_config(client_configuration=configuration)
            else:
                config.load_kube_config(client_configuration=configuration)
        except config.ConfigException as exc:
            raise UsageError(f"{where}: no in-cluster credentials or kubeconfig ({exc})") from None
        api = client.CoreV1Api(client.ApiClient(configuration))
        try:
            found = api.read_namespaced_config_map(name, namespace, _request_timeout=10)
        except ApiException as exc:
            if exc.status in (401, 403, 404):
                raise UsageError(f"{where}: {exc.status} {exc.reason}") from None
            raise TransientError(f"{where}: {exc.status} {exc.reason}") from None
        except Exception as exc:  # connection errors: the API server may come up later
            raise TransientError(
                f"{where}: cannot reach the API server ({type(exc).__name__})"
            ) from None
        text = (found.data or {}).get("content")
        if text is None:
            raise UsageError(f"{where} has no key 'content'")
        self.body_t = self.template(
            f"custom_body_configmap ({namespace}/{name} content)", text, json_body=self.json
        )
        self._configmap_pending = False

    def _body(self, n: Notification) -> bytes:
        layout = self.options.layout
        if layout is not None:  # kubernetes-event-exporter's layout: its body, byte for byte
            return layout.encode_context(n.data)  # n.data: the event's template data, built once
        return (
            self.body_t.render_json(n.data) if self.json else self.body_t.render(n.data)
        ).encode()

    def _headers(self, n: Notification) -> dict[str, str]:
        if not self.header_ts:
            return self.headers
        headers = dict(self.headers)
        for name, template in self.header_ts:
            # the original sends the raw value when the template fails
            with contextlib.suppress(TemplateError):
                headers[name] = template.render(n.data)
        return headers

    def open(self) -> None:
        if self._configmap_pending:
            try:
                self._load_configmap()
            except UsageError as exc:  # found now, but wrong: say it each retry, one line
                raise TransientError(str(exc)) from None
        super().open()

    def deliver(self, n: Notification) -> None:
        try:
            body = self._body(n)
        except TemplateError as exc:
            raise Refused(str(exc)) from None
        method = self.options.method
        reply = self.http.request(method, self.url, body=body, headers=self._headers(n))
        data = reply.json()
        if isinstance(data, dict) and isinstance(data.get("errcode"), int) and data["errcode"] != 0:
            code, text = data["errcode"], str(data.get("errmsg", ""))[:300]
            if code in (130101, 130102, 660026, 45009, 45033):
                raise RateLimited(f"errcode {code}: {text}", reply.retry_after())
            raise Refused(f"errcode {code}: {text}")
        self.status_error(reply)
