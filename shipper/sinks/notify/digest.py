# ruff: noqa: RUF001 - digests count with the multiplication sign, as the issue writes them
"""The digest: events held back by the rate limit, summarized in one message.

It holds counts, not events: how many, per (reason, where) group, the first and last time,
and the latest :data:`KEEP` notifications in full (for the "Latest:" lines and templates).
So a storm of any size costs a few kilobytes here. The events' tickets are held by the
pipeline (:mod:`shipper.pipeline`) until the digest message is sent, so a crash before that
loses nothing: the events are read again after the restart and folded (or sent) again.
"""

from __future__ import annotations

from collections import Counter, deque
from typing import TYPE_CHECKING

from shipper.event import Event

if TYPE_CHECKING:
    from shipper.sinks.notify.base import Notification

#: Notifications kept in full, the latest ones.
KEEP = 10
#: Distinct (reason, where) groups counted one by one; past this, events are only counted.
MAX_GROUPS = 200


class Digest:
    """Events held back by the rate limit, summarized in one message."""

    def __init__(self) -> None:
        self.notifications: deque[Notification] = deque(maxlen=KEEP)
        self.count = 0
        self.groups: Counter[tuple[str, str]] = Counter()
        self.ungrouped = 0
        self.first: str = ""
        self.last: str = ""

    def add(self, n: Notification) -> None:
        event = n.event
        self.count += 1
        where = f"ns/{event.object_namespace}" if event.object_namespace else (
            f"{(event.object_kind or 'cluster').lower()}/{event.object_name or ''}"
        )  # fmt: skip
        key = (event.reason, where)
        if key in self.groups or len(self.groups) < MAX_GROUPS:
            self.groups[key] += 1
        else:
            self.ungrouped += 1
        self.notifications.append(n)
        self.first = min(self.first or event.timestamp, event.timestamp)
        self.last = max(self.last, event.timestamp)

    def summary(self) -> str:
        shown = self.groups.most_common(10)
        text = ", ".join(f"{reason} ×{n} in {where}" for (reason, where), n in shown)
        hidden = len(self.groups) - len(shown)
        if self.ungrouped:
            text += f", and {self.ungrouped + sum(n for _, n in self.groups.most_common()[10:])} in more groups"
        elif hidden:
            text += f", and {hidden} more groups"
        return f"{self.count} more: {text}"

    def text(self, limit: str) -> str:
        lines = [self.summary()]
        period = f"{self.first[11:19]}–{self.last[11:19]} UTC" if self.first else ""
        lines.append(f"Held back by the rate limit ({limit}) {period}.".replace("  ", " "))
        lines.append("Latest:" if self.notifications else "")
        for n in list(self.notifications)[-5:]:
            lines.append(f"• {n.event.describe()} ×{n.event.count}: {n.event.message[:160]}")
        return "\n".join(line for line in lines if line)


def digest_event(digest: Digest, cluster: str) -> Event:
    """A synthetic event standing for a digest, for templates (reason ``EventDigest``) and for
    the dead letter of a digest the vendor refused."""
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
