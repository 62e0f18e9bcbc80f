"""kubernetes-event-exporter's deDot: dots in label and annotation keys become underscores, in
the event a layout sees and in the document a store indexes (where dots would become paths)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from shipper.event import Event


def dedotted(event: Event) -> Event:
    """The event as kubernetes-event-exporter's DeDot leaves it for a layout: dots in the
    involved object's label and annotation keys become underscores."""
    return replace(
        event,
        labels={k.replace(".", "_"): v for k, v in event.labels.items()}
        if event.labels
        else event.labels,
        annotations={k.replace(".", "_"): v for k, v in event.annotations.items()}
        if event.annotations
        else event.annotations,
    )


def dedot(document: dict[str, Any]) -> None:
    """Dots in label/annotation keys would become object paths, and app=x would then clash with
    app.kubernetes.io/name=x. Metricbeat's answer: replace them with underscores."""
    kubernetes = document.get("kubernetes", {})
    for name in ("labels", "annotations"):
        values = kubernetes.get(name)
        if values:
            kubernetes[name] = {key.replace(".", "_"): value for key, value in values.items()}
    owner_labels = kubernetes.get("owner", {}).get("labels")
    if owner_labels:
        kubernetes["owner"]["labels"] = {k.replace(".", "_"): v for k, v in owner_labels.items()}
