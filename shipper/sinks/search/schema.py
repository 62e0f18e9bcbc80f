"""The search sinks' schema, in one place: the mapping, the index settings, the lifecycle
policies (ILM for Elasticsearch, ISM for OpenSearch) and the templates that compose them.

``setup`` (:mod:`shipper.sinks.search.setup`) installs them; ``index-templates/`` holds the same
bodies rendered to files for curl users (``scripts/render-index-templates`` writes them; a test
keeps them equal). The field names are Metricbeat's ``kubernetes.event`` dataset's, plus a few
ECS fields (README: The event document). :data:`AUDIT_MAPPING` maps the audit source's
``kubernetes.audit`` documents (shipper/audit/record.py), which go to an index of their own.
"""

from __future__ import annotations

from typing import Any

KEYWORD = {"type": "keyword"}
DATE = {"type": "date"}


def _obj(**properties: dict[str, Any]) -> dict[str, Any]:
    return {"properties": properties}


MAPPING: dict[str, Any] = {
    "date_detection": False,
    "dynamic_templates": [
        {"labels": {"path_match": "kubernetes.labels.*", "mapping": {**KEYWORD, "ignore_above": 1024}}},
        {"annotations": {"path_match": "kubernetes.annotations.*", "mapping": {**KEYWORD, "ignore_above": 1024}}},
        {"owner_labels": {"path_match": "kubernetes.owner.labels.*", "mapping": {**KEYWORD, "ignore_above": 1024}}},
        {"strings_as_keywords": {"match_mapping_type": "string", "mapping": {**KEYWORD, "ignore_above": 1024}}},
    ],
    "properties": {
        "@timestamp": DATE,
        "message": {"type": "text"},
        "event": _obj(kind=KEYWORD, dataset=KEYWORD, module=KEYWORD, created=DATE, start=DATE, end=DATE),
        "log": _obj(level=KEYWORD),
        "orchestrator": _obj(type=KEYWORD, namespace=KEYWORD, cluster=_obj(name=KEYWORD)),
        "kubernetes": _obj(
            namespace=KEYWORD,
            labels={"type": "object", "dynamic": True},
            annotations={"type": "object", "dynamic": True},
            owner=_obj(
                kind=KEYWORD, name=KEYWORD, uid=KEYWORD, api_version=KEYWORD,
                labels={"type": "object", "dynamic": True},
            ),
            event=_obj(
                reason=KEYWORD, type=KEYWORD, action=KEYWORD,
                reporting_controller=KEYWORD, reporting_instance=KEYWORD,
                source=_obj(component=KEYWORD, host=KEYWORD),
                count={"type": "long"},
                timestamp=_obj(first_occurrence=DATE, last_occurrence=DATE),
                metadata=_obj(name=KEYWORD, namespace=KEYWORD, uid=KEYWORD, resource_version=KEYWORD),
                involved_object=_obj(
                    kind=KEYWORD, name=KEYWORD, namespace=KEYWORD, uid=KEYWORD,
                    api_version=KEYWORD, resource_version=KEYWORD, field_path=KEYWORD,
                ),
            ),
        ),
    },
}  # fmt: skip

_IGNORE_ABOVE = {**KEYWORD, "ignore_above": 1024}
#: Searchable words and an exact, aggregatable value (ECS's ``user_agent.original``).
KEYWORD_AND_TEXT = {**_IGNORE_ABOVE, "fields": {"text": {"type": "text"}}}
TEXT_AND_KEYWORD = {"type": "text", "fields": {"keyword": _IGNORE_ABOVE}}
#: Kept in _source, not indexed: an object's whole body (RequestResponse level) as JSON text.
STORED_ONLY = {"type": "keyword", "index": False, "doc_values": False}
#: A malformed address (never from a kube-apiserver) loses the field, not the document.
IP = {"type": "ip", "ignore_malformed": True}
LONG = {"type": "long"}


def _user() -> dict[str, Any]:
    return _obj(username=KEYWORD, uid=KEYWORD, groups=KEYWORD)


#: The ``kubernetes.audit`` document (shipper/audit/record.py, docs/audit.md): ECS fields where
#: ECS has one, the API server's audit event under ``kubernetes.audit``.
AUDIT_MAPPING: dict[str, Any] = {
    "date_detection": False,
    "dynamic_templates": [
        {"annotations": {"path_match": "kubernetes.audit.annotations.*", "mapping": _IGNORE_ABOVE}},
        {"strings_as_keywords": {"match_mapping_type": "string", "mapping": _IGNORE_ABOVE}},
    ],
    "properties": {
        "@timestamp": DATE,
        "message": TEXT_AND_KEYWORD,
        "event": _obj(
            kind=KEYWORD, dataset=KEYWORD, module=KEYWORD, id=KEYWORD, action=KEYWORD,
            outcome=KEYWORD, created=DATE, start=DATE, end=DATE,
        ),
        "log": _obj(level=KEYWORD),
        "orchestrator": _obj(
            type=KEYWORD, namespace=KEYWORD, cluster=_obj(name=KEYWORD),
            resource=_obj(type=KEYWORD, name=KEYWORD),
        ),
        "user": _obj(name=KEYWORD, id=KEYWORD),
        "source": _obj(ip=IP),
        "user_agent": _obj(original=KEYWORD_AND_TEXT),
        "http": _obj(response=_obj(status_code=LONG)),
        "kubernetes": _obj(
            namespace=KEYWORD,
            audit=_obj(
                audit_id=KEYWORD, stage=KEYWORD, verb=KEYWORD, level=KEYWORD,
                request_uri={**KEYWORD, "ignore_above": 4096},
                user=_user(), impersonated_user=_user(),
                source_ips=IP,
                user_agent=KEYWORD_AND_TEXT,
                object_ref=_obj(
                    resource=KEYWORD, subresource=KEYWORD, namespace=KEYWORD, name=KEYWORD,
                    uid=KEYWORD, api_group=KEYWORD, api_version=KEYWORD,
                    resource_version=KEYWORD,
                ),
                response_status=_obj(
                    code=LONG, status=KEYWORD, reason=KEYWORD, message=TEXT_AND_KEYWORD
                ),
                request_received_timestamp=DATE,
                stage_timestamp=DATE,
                annotations={"type": "object", "dynamic": True},
                authorization=_obj(decision=KEYWORD, reason=TEXT_AND_KEYWORD),
                request_object=STORED_ONLY,
                response_object=STORED_ONLY,
            ),
        ),
    },
}  # fmt: skip

SETTINGS: dict[str, Any] = {
    "index": {"number_of_shards": 1, "refresh_interval": "5s", "codec": "best_compression"}
}
MANAGED = {"managed_by": "kube-event-shipper"}


def priority(index: str) -> int:
    """200 plus the name's length. Servers refuse two templates of equal priority whose patterns
    overlap (``kube-events-*`` and ``kube-events-prod-*``, or a data stream ``kube-events-x``):
    this way a longer, more specific name always wins, and equal lengths cannot overlap."""
    return 200 + len(index)


#: Elasticsearch ILM: roll over daily or at 50 GB a primary shard, delete after 30 days.
ILM_POLICY: dict[str, Any] = {
    "policy": {
        "phases": {
            "hot": {"actions": {"rollover": {"max_age": "1d", "max_primary_shard_size": "50gb"}}},
            "delete": {"min_age": "30d", "actions": {"delete": {}}},
        },
        "_meta": MANAGED,
    }
}


def ism_policy(patterns: list[str], index: str) -> dict[str, Any]:
    """OpenSearch ISM: the same lifecycle; ``ism_template`` attaches it to new indices."""
    return {
        "policy": {
            "description": "kube-event-shipper: roll over daily or at 50gb, delete after 30 days",
            "default_state": "hot",
            "states": [
                {
                    "name": "hot",
                    "actions": [
                        {"rollover": {"min_index_age": "1d", "min_primary_shard_size": "50gb"}}
                    ],
                    "transitions": [
                        {"state_name": "delete", "conditions": {"min_index_age": "30d"}}
                    ],
                },
                {"name": "delete", "actions": [{"delete": {}}], "transitions": []},
            ],
            "ism_template": [{"index_patterns": patterns, "priority": priority(index)}],
        }
    }


MODES = ("data_stream", "dated", "alias")


def index_patterns(index: str, mode: str) -> list[str]:
    """What the index template matches: the data stream itself, or the concrete indices."""
    return [index] if mode == "data_stream" else [f"{index}-*"]


def component(**template: Any) -> dict[str, Any]:
    return {"template": template, "_meta": MANAGED}


def index_template(
    index: str,
    mode: str,
    settings: dict[str, Any],
    patterns: list[str] | None = None,
    *,
    mappings: bool = True,
    description: str = "Kubernetes events shipped by kube-event-shipper",
) -> dict[str, Any]:
    composed = [f"{index}-settings", f"{index}-mappings"] if mappings else [f"{index}-settings"]
    body: dict[str, Any] = {
        "index_patterns": patterns or index_patterns(index, mode),
        "priority": priority(index),
        "composed_of": composed,
        "_meta": {"description": description, **MANAGED},
    }
    if settings:
        body["template"] = {"settings": settings}
    if mode == "data_stream":
        body["data_stream"] = {}
    return body
