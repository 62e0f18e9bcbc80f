"""``honeycomb:?dataset=kube-events&writekey=KEY``: events to Honeycomb's batch events API.

URI: kube-eventer's form, its parameters as written (``dataset``, ``writekey``, ``apihost``;
the key may also come from ``$HONEYCOMB_WRITEKEY`` as kube-eventer read it), plus
``sample_rate``::

    honeycomb:?dataset=mydataset&writekey=secretwritekey
    honeycomb:?dataset=k8s-events&writekey_file=/secrets/honeycomb&apihost=https://api.eu1.honeycomb.io
    honeycomb:?dataset=k8s-events&sample_rate=10&level=Normal

Each pipeline batch is one ``POST {apihost}/1/batch/{dataset}`` (split further to stay under
Honeycomb's 5 MB per request) with ``X-Honeycomb-Team: <writekey>``; the body is a JSON array,
one element per event version::

    {"time": "<when the event last happened, RFC 3339>", "samplerate": N, "data": {
        "namespace", "kind", "name", "subobject", "source.component", "source.host", "count",
        "type", "reason", "message"      -- kube-eventer's fields, as it named them
        "uid", "resource_version", "version_id" (<uid>.<count>), "first_timestamp",
        "action", "reporting_controller", "cluster"     -- added here}}

``sample_rate=N`` (default 1: every event) sends one event version in N, chosen by a hash of
its version id (so a replay keeps the same ones), with ``samplerate`` N so that Honeycomb
counts each as N, as its own SDKs do.

Replies: HTTP 200 carries one status per event, in order, each handled alone: 202 is done; 400
(the event refused: too large, a bad field) dead-letters that event with Honeycomb's ``error``;
429 and 5xx retry that event only, after Retry-After if given. For the whole request, 401 (an
unknown write key) and 403 are one log line each try and retried for an operator to fix, 429
and 5xx are retried with backoff, another 4xx (a body Honeycomb cannot read) dead-letters the
batch's events with the reply.

Guarantee: at least once per event version: a request that timed out after Honeycomb took it,
a crash (the last checkpoint interval) and ``--start=all`` send a version again, with the same
``version_id`` to deduplicate on in queries. With ``sample_rate`` above 1 the others are not
sent, by design.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import orjson

from shipper.event import Event
from shipper.sinks.base import Rejected, Sink, TransientError
from shipper.sinks.delivery import Outcome, Retry
from shipper.spec import ClusterName, SinkOptions, Timeout, TLSTrust, option
from shipper.uri import UsageError, parse_positive_int

MAX_REQUEST = 5_000_000  # Honeycomb's limit per batch request, bytes
MAX_EVENT = 1_000_000  # and per event


@dataclass(frozen=True, kw_only=True)
class HoneycombOptions(SinkOptions, TLSTrust, ClusterName, Timeout):
    DEFAULTS = {"timeout": 30.0}

    dataset: str = option("heapster", "Dataset (kube-eventer's default: heapster).")
    writekey: str | None = option(None, "Write (ingest) key; default $HONEYCOMB_WRITEKEY, as kube-eventer.", secret=True, aliases=("write_key", "api_key"))  # fmt: skip
    apihost: str = option("https://api.honeycomb.io", "API host (EU: https://api.eu1.honeycomb.io; a proxy).", aliases=("api_host", "api_url"))  # fmt: skip
    sample_rate: int = option(1, "Send one event version in N, with samplerate N.", parse=parse_positive_int, aliases=("samplerate",))  # fmt: skip


class HoneycombSink(Sink):
    scheme = "honeycomb"
    Options = HoneycombOptions
    options: HoneycombOptions
    summary = "Honeycomb batch events API: one event per version, per-event status handled"
    usage = "honeycomb:?dataset=DATASET&writekey=KEY"
    example = "honeycomb:?dataset=k8s-events&writekey=$HONEYCOMB_WRITEKEY"
    guarantee = (
        "at least once per event version (per-event statuses: 202 done, 400 dead-lettered,"
        " 429/5xx retried alone); a timeout, a crash and --start=all may send a version again,"
        " with the same version_id"
    )
    default_batch_size = 500
    default_flush_interval = 1.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from shipper.sinks.notify.http import Http

        o = self.options
        where = f"--sink {self.scheme}"
        self.key = o.writekey or os.environ.get("HONEYCOMB_WRITEKEY", "")
        if not self.key:
            raise UsageError(
                f"{where}: no write key; give writekey=... (or writekey_file=) or set"
                " $HONEYCOMB_WRITEKEY"
            )
        if not o.dataset.strip():
            raise UsageError(f"{where}: parameter dataset: empty")
        host = o.apihost if "://" in o.apihost else f"https://{o.apihost}"
        parts = urlsplit(host)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"{where}: parameter apihost={o.apihost!r}: expected https://HOST")
        self.url = f"{host.rstrip('/')}/1/batch/{quote(o.dataset, safe='')}"
        self.host = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
        self.cluster = o.cluster_name or self.ctx.cluster
        self.http = Http(
            timeout=o.timeout, ca_file=o.ca_file, insecure=o.insecure, scrub=self.scrub
        )

    def scrub(self, text: str) -> str:
        return text.replace(self.key, "***") if len(self.key) >= 4 else text

    def describe(self) -> str:
        return f"honeycomb {self.host} dataset={self.options.dataset}"

    def sampled(self, event: Event) -> bool:
        rate = self.options.sample_rate
        if rate == 1:
            return True
        digest = hashlib.sha1(f"{event.uid}.{event.count}".encode()).digest()
        return int.from_bytes(digest[:8], "big") % rate == 0

    def element(self, event: Event) -> dict[str, Any]:
        data = {
            "namespace": event.object_namespace or "",
            "kind": event.object_kind or "",
            "name": event.object_name or "",
            "subobject": event.object_field_path or "",
            "source.component": event.source_component or "",
            "source.host": event.source_host or "",
            "count": event.count,
            "type": event.type,
            "reason": event.reason,
            "message": event.message,
            "uid": event.uid,
            "resource_version": event.resource_version,
            "version_id": f"{event.uid}.{event.count}",
            "first_timestamp": event.first_timestamp,
            "action": event.action or "",
            "reporting_controller": event.reporting_controller or "",
        }
        if self.cluster:
            data["cluster"] = self.cluster
        return {"time": event.timestamp, "samplerate": self.options.sample_rate, "data": data}

    def write(self, events: Sequence[Event]) -> Outcome:
        rejected: list[Rejected] = []
        retry: list[Retry] = []
        chunk: list[tuple[int, bytes]] = []
        size = 2
        for index, event in enumerate(events):
            if not self.sampled(event):
                continue
            encoded = orjson.dumps(self.element(event))
            if len(encoded) > MAX_EVENT:
                rejected.append(Rejected(index, f"the event is {len(encoded)} bytes; Honeycomb takes at most 1 MB"))  # fmt: skip
                continue
            if chunk and size + len(encoded) + 1 > MAX_REQUEST:
                self._send(chunk, rejected, retry)
                chunk, size = [], 2
            chunk.append((index, encoded))
            size += len(encoded) + 1
        if chunk:
            self._send(chunk, rejected, retry)
        return Outcome(tuple(sorted(rejected, key=lambda r: r.index)), tuple(retry))

    def _send(
        self, chunk: list[tuple[int, bytes]], rejected: list[Rejected], retry: list[Retry]
    ) -> None:
        if retry:  # an earlier request of this batch failed whole: do not send more now
            retry.extend(Retry(i, retry[-1].reason, retry[-1].after) for i, _ in chunk)
            return
        body = b"[" + b",".join(data for _, data in chunk) + b"]"
        headers = {
            "Content-Type": "application/json",
            "X-Honeycomb-Team": self.key,
            "User-Agent": "kube-event-shipper",
        }
        try:
            reply = self.http.request("POST", self.url, body=body, headers=headers)
        except TransientError as exc:
            retry.extend(Retry(i, f"Honeycomb: {exc}") for i, _ in chunk)
            return
        answer = reply.json()
        error = answer.get("error") if isinstance(answer, dict) else None
        detail = self.scrub(str(error or reply.text() or f"HTTP {reply.status}"))[:300]
        if reply.status == 200 and isinstance(answer, list) and len(answer) == len(chunk):
            for (index, _), item in zip(chunk, answer, strict=True):
                status = item.get("status") if isinstance(item, dict) else None
                why = self.scrub(str(item.get("error", ""))) if isinstance(item, dict) else ""
                if status in (200, 202):
                    continue
                if status == 429 or (isinstance(status, int) and status >= 500):
                    retry.append(Retry(index, f"Honeycomb answered {status} for the event: {why}", reply.retry_after()))  # fmt: skip
                else:
                    rejected.append(Rejected(index, f"Honeycomb refused the event ({status}): {why}"))  # fmt: skip
            return
        if reply.status == 200:
            reason = f"Honeycomb answered 200 with no status per event: {detail}"
        elif reply.status in (401, 403):
            reason = (
                f"Honeycomb refused the write key (HTTP {reply.status}: {detail}); check writekey"
                f" and that it may write to dataset {self.options.dataset!r}"
            )
        elif reply.status in (408, 429) or reply.status >= 500:
            reason = f"Honeycomb answered HTTP {reply.status}: {detail}"
        else:
            for index, _ in chunk:
                rejected.append(Rejected(index, f"Honeycomb refused the batch (HTTP {reply.status}): {detail}"))  # fmt: skip
            return
        retry.extend(Retry(i, reason, reply.retry_after()) for i, _ in chunk)

    def close(self) -> None:
        self.http.close()
