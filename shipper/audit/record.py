"""One ``audit.k8s.io/v1`` audit event, as the pipeline carries it and as the stores keep it.

An :class:`AuditEvent` is an :class:`~shipper.event.Event` (every sink, template and filter
reads the same fields), with its own identity and its own flattened document:

* identity: ``uid`` is the ``auditID`` and ``resource_version`` the ``stage``, so a store that
  keys on ``<uid>.<resource_version>`` (the search sinks' ``_id``, sqlite's primary key) keeps
  each stage of each request once, however often a batch is replayed;
* the Event fields a sink may read are filled with their audit meaning: ``reason`` is the verb,
  ``type`` is ``Warning`` for a denied or failed request (HTTP status 400 and up) and
  ``Normal`` otherwise, the involved object is the ``objectRef``, ``message`` says who did what
  (``alice get secrets default/db-password: 403 Forbidden``);
* :meth:`AuditEvent.document` is the ``kubernetes.audit`` dataset's schema, documented in
  docs/audit.md: ECS fields where ECS has one (``user.name``, ``source.ip``,
  ``user_agent.original``, ``event.action``, ``event.outcome``, ``http.response.status_code``)
  and everything the API server says under ``kubernetes.audit`` with snake_case names. The
  request and response bodies (``RequestResponse`` level) are kept as JSON text, never as
  objects: an index of every object kind's fields would explode any mapping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson

from shipper.event import Event, normalize_time, utc_now

DATASET = "kubernetes.audit"
#: The stages the API server reports, in order; a request's last is ResponseComplete or Panic.
STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")
DECISION = "authorization.k8s.io/decision"
DECISION_REASON = "authorization.k8s.io/reason"


class NotAnAuditEvent(ValueError):
    """The object lacks what every audit event has (auditID, stage, verb)."""


@dataclass(slots=True)
class AuditEvent(Event):
    """An audit event; :attr:`record` is the API server's object, as it sent it."""

    kind: ClassVar[str] = "audit"
    record: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        return f"audit {self.message}"

    @property
    def status_code(self) -> int | None:
        code = (self.record.get("responseStatus") or {}).get("code")
        return code if isinstance(code, int) else None

    @property
    def username(self) -> str:
        return str((self.record.get("user") or {}).get("username") or "")

    def document(self) -> dict[str, Any]:
        """The flattened ``kubernetes.audit`` document; empty values are left out."""
        return audit_document(self)

    def document_json(self, cluster: str = "") -> bytes:
        key = cluster or self.cluster
        cached = self._json
        if cached is not None and cached[0] == key:
            return cached[1]
        document = audit_document(self)
        if key:
            document["orchestrator"]["cluster"] = {"name": key}
        encoded = orjson.dumps(document)
        self._json = (key, encoded)
        return encoded


def from_record(record: Any, cluster: str = "", now: str | None = None) -> AuditEvent:
    """One item of an ``audit.k8s.io/v1`` EventList into an :class:`AuditEvent`."""
    if not isinstance(record, dict):
        raise NotAnAuditEvent("an audit event must be an object")
    audit_id, stage, verb = record.get("auditID"), record.get("stage"), record.get("verb")
    if not audit_id or not isinstance(audit_id, str):
        raise NotAnAuditEvent("an audit event without auditID")
    if not stage or not isinstance(stage, str) or not verb or not isinstance(verb, str):
        raise NotAnAuditEvent(f"audit event {audit_id}: no stage or verb")
    seen = now or utc_now()
    received = normalize_time(record.get("requestReceivedTimestamp")) or seen
    staged = normalize_time(record.get("stageTimestamp")) or received
    ref = _object_ref(record)
    code = (record.get("responseStatus") or {}).get("code")
    failed = isinstance(code, int) and code >= 400
    user = (record.get("user") or {}).get("username") or "?"
    return AuditEvent(
        uid=audit_id,
        resource_version=stage,
        name=audit_id,
        namespace=ref.get("namespace") or "",
        type="Warning" if failed else "Normal",
        reason=verb,
        message=_summary(user, verb, ref, record),
        count=1,
        timestamp=staged,
        first_timestamp=received,
        last_timestamp=staged,
        event_time=received,
        creation_timestamp=None,
        action=verb,
        reporting_controller="kube-apiserver",
        reporting_instance=None,
        source_component="kube-apiserver",
        source_host=None,
        object_kind=ref.get("resource"),
        object_name=ref.get("name"),
        object_namespace=ref.get("namespace"),
        object_uid=ref.get("uid"),
        object_api_version=_group_version(ref),
        object_resource_version=ref.get("resourceVersion"),
        object_field_path=ref.get("subresource"),
        seen_at=seen,
        watch_type="AUDIT",
        cluster=cluster,
        record=record,
    )


def _object_ref(record: dict[str, Any]) -> dict[str, Any]:
    ref = record.get("objectRef")
    return ref if isinstance(ref, dict) else {}


def _group_version(ref: dict[str, Any]) -> str | None:
    group, version = ref.get("apiGroup"), ref.get("apiVersion")
    if group and version:
        return f"{group}/{version}"
    return version or group or None


def _summary(user: str, verb: str, ref: dict[str, Any], record: dict[str, Any]) -> str:
    """``alice get secrets default/db-password: 403 Forbidden``: who did what, and the answer."""
    if ref:
        what = ref.get("resource") or "?"
        if ref.get("subresource"):
            what = f"{what}/{ref['subresource']}"
        where = "/".join(p for p in (ref.get("namespace"), ref.get("name")) if p)
        target = f"{what} {where}" if where else what
    else:
        target = str(record.get("requestURI") or "?")
    status = record.get("responseStatus") or {}
    answer = ""
    if status.get("code") is not None:
        answer = f": {status['code']}"
        if status.get("reason"):
            answer += f" {status['reason']}"
    return f"{user} {verb} {target}{answer}"


_REF_FIELDS = (
    ("resource", "resource"),
    ("subresource", "subresource"),
    ("namespace", "namespace"),
    ("name", "name"),
    ("uid", "uid"),
    ("apiGroup", "api_group"),
    ("apiVersion", "api_version"),
    ("resourceVersion", "resource_version"),
)


def audit_document(event: AuditEvent) -> dict[str, Any]:
    record = event.record
    audit: dict[str, Any] = {
        "audit_id": event.uid,
        "stage": event.resource_version,
        "verb": event.reason,
    }
    for key, name in (("level", "level"), ("requestURI", "request_uri")):
        if record.get(key):
            audit[name] = record[key]
    user = _user(record.get("user"))
    if user:
        audit["user"] = user
    impersonated = _user(record.get("impersonatedUser"))
    if impersonated:
        audit["impersonated_user"] = impersonated
    ips = [ip for ip in record.get("sourceIPs") or () if isinstance(ip, str)]
    if ips:
        audit["source_ips"] = ips
    if record.get("userAgent"):
        audit["user_agent"] = record["userAgent"]
    ref = _object_ref(record)
    object_ref = {name: ref[key] for key, name in _REF_FIELDS if ref.get(key)}
    if object_ref:
        audit["object_ref"] = object_ref
    status = _response_status(record.get("responseStatus"))
    if status:
        audit["response_status"] = status
    audit["request_received_timestamp"] = event.first_timestamp
    audit["stage_timestamp"] = event.last_timestamp
    annotations = record.get("annotations") or {}
    if isinstance(annotations, dict) and annotations:
        audit["annotations"] = {str(k).replace(".", "_"): str(v) for k, v in annotations.items()}
        authorization = {}
        if annotations.get(DECISION):
            authorization["decision"] = annotations[DECISION]
        if annotations.get(DECISION_REASON):
            authorization["reason"] = annotations[DECISION_REASON]
        if authorization:
            audit["authorization"] = authorization
    for key, name in (("requestObject", "request_object"), ("responseObject", "response_object")):
        if record.get(key) is not None:
            audit[name] = orjson.dumps(record[key]).decode()
    kubernetes: dict[str, Any] = {"audit": audit}
    orchestrator: dict[str, Any] = {"type": "kubernetes"}
    if event.cluster:
        orchestrator["cluster"] = {"name": event.cluster}
    if event.object_namespace:
        kubernetes["namespace"] = event.object_namespace
        orchestrator["namespace"] = event.object_namespace
    if event.object_kind:
        orchestrator["resource"] = {"type": event.object_kind}
        if event.object_name:
            orchestrator["resource"]["name"] = event.object_name
    document: dict[str, Any] = {
        "@timestamp": event.timestamp,
        "message": event.message,
        "event": {
            "kind": "event",
            "dataset": DATASET,
            "module": "kubernetes",
            "id": event.uid,
            "action": event.reason,
            "outcome": _outcome(event.status_code),
            "created": event.seen_at,
            "start": event.first_timestamp,
            "end": event.last_timestamp,
        },
        "log": {"level": event.level},
        "orchestrator": orchestrator,
        "kubernetes": kubernetes,
    }
    if user.get("username"):
        document["user"] = {"name": user["username"]}
        if user.get("uid"):
            document["user"]["id"] = user["uid"]
    if ips:
        document["source"] = {"ip": ips[0]}
    if record.get("userAgent"):
        document["user_agent"] = {"original": record["userAgent"]}
    if event.status_code is not None:
        document["http"] = {"response": {"status_code": event.status_code}}
    return document


def _user(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        return {}
    user: dict[str, Any] = {}
    if raw.get("username"):
        user["username"] = raw["username"]
    if raw.get("uid"):
        user["uid"] = raw["uid"]
    groups = [g for g in raw.get("groups") or () if isinstance(g, str)]
    if groups:
        user["groups"] = groups
    return user


def _response_status(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        return {}
    status = {k: raw[k] for k in ("code", "status", "reason", "message") if raw.get(k)}
    return status


def _outcome(code: int | None) -> str:
    if code is None:
        return "unknown"
    return "failure" if code >= 400 else "success"


_REF_KEYS = {name: key for key, name in _REF_FIELDS}
_USER_KEYS = {"username": "username", "uid": "uid", "groups": "groups"}


def from_document(document: dict[str, Any]) -> AuditEvent:
    """The inverse of :func:`audit_document`, for the kafka source (an aggregator reading what
    the clusters' shippers wrote): ``document()`` of the result equals ``document`` but for
    ``event.created`` (when this shipper read it). Annotation keys stay de-dotted."""
    audit = document["kubernetes"]["audit"]
    record: dict[str, Any] = {
        "auditID": audit["audit_id"],
        "stage": audit["stage"],
        "verb": audit["verb"],
        "requestReceivedTimestamp": audit.get("request_received_timestamp"),
        "stageTimestamp": audit.get("stage_timestamp"),
    }
    for name, key in (
        ("level", "level"),
        ("request_uri", "requestURI"),
        ("source_ips", "sourceIPs"),
        ("user_agent", "userAgent"),
    ):
        if audit.get(name) is not None:
            record[key] = audit[name]
    for name, key in (("user", "user"), ("impersonated_user", "impersonatedUser")):
        if audit.get(name):
            record[key] = {_USER_KEYS[k]: v for k, v in audit[name].items() if k in _USER_KEYS}
    if audit.get("object_ref"):
        record["objectRef"] = {_REF_KEYS[k]: v for k, v in audit["object_ref"].items()}
    if audit.get("response_status"):
        record["responseStatus"] = dict(audit["response_status"])
    annotations = dict(audit.get("annotations") or {})
    authorization = audit.get("authorization") or {}
    if authorization:  # their real keys, which the de-dotted copies stand for
        annotations.pop("authorization_k8s_io/decision", None)
        annotations.pop("authorization_k8s_io/reason", None)
        if "decision" in authorization:
            annotations[DECISION] = authorization["decision"]
        annotations[DECISION_REASON] = authorization.get("reason", "")
    if annotations:
        record["annotations"] = annotations
    for name, key in (("request_object", "requestObject"), ("response_object", "responseObject")):
        if audit.get(name) is not None:
            record[key] = orjson.loads(audit[name])
    cluster = ((document.get("orchestrator") or {}).get("cluster") or {}).get("name") or ""
    return from_record(record, cluster)
