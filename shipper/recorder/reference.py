"""Object references (``k8s.io/client-go/tools/reference.GetReference``) from whatever a Python
controller holds: a mapping (a raw object, kopf's ``body``), a model of the official
``kubernetes`` client (``V1Pod``), or a reference already made."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FIELDS = ("apiVersion", "kind", "namespace", "name", "uid", "resourceVersion", "fieldPath")


@dataclass(frozen=True)
class ObjectReference:
    """core/v1 ObjectReference: what an Event is about (``involvedObject`` / ``regarding``)."""

    kind: str
    name: str
    namespace: str = ""
    api_version: str = ""
    uid: str = ""
    resource_version: str = ""
    field_path: str = ""

    def to_dict(self) -> dict[str, str]:
        """The JSON form, without empty fields (as Go's ``omitempty`` leaves them out)."""
        values = (
            self.api_version,
            self.kind,
            self.namespace,
            self.name,
            self.uid,
            self.resource_version,
            self.field_path,
        )
        return {key: value for key, value in zip(FIELDS, values, strict=True) if value}


def _get(obj: Any, *names: str) -> Any:
    for name in names:
        # Mapping, not dict: kopf's Body and Meta are read-only mappings
        value = obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)
        if value is not None:
            return value
    return None


def get_reference(obj: Any, field_path: str = "") -> ObjectReference:
    """A reference to ``obj``; ValueError if it has no kind or name.

    Models of the official client often lack ``kind`` when they come from a list call (the
    list has it, not its items): set it, or pass a dict or an :class:`ObjectReference`.
    """
    if isinstance(obj, ObjectReference):
        return obj
    meta = _get(obj, "metadata")
    if meta is None:  # already a reference: {"kind": ..., "name": ..., "namespace": ...}
        meta, api_version = obj, _get(obj, "apiVersion", "api_version")
    else:
        api_version = _get(obj, "apiVersion", "api_version")
    kind, name = _get(obj, "kind"), _get(meta, "name")
    if not kind or not name:
        raise ValueError(
            f"cannot make a reference to an object without kind and name ({kind!r}, {name!r})"
        )
    return ObjectReference(
        kind=str(kind),
        name=str(name),
        namespace=str(_get(meta, "namespace") or ""),
        api_version=str(api_version or ""),
        uid=str(_get(meta, "uid") or ""),
        resource_version=str(_get(meta, "resourceVersion", "resource_version") or ""),
        field_path=field_path or str(_get(obj, "fieldPath", "field_path") or ""),
    )
