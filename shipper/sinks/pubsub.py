"""``pubsub:projects/PROJECT/topics/TOPIC``: Google Cloud Pub/Sub, one message per event version.

URI and config file::

    pubsub:projects/my-project/topics/kube-events
    pubsub:?project=my-project&topic=kube-events&create_topic=true&credentials_file=/s/key.json
    pubsub:projects/my-project/topics/kube-events?endpoint=europe-west1-pubsub.googleapis.com:443

kubernetes-event-exporter's ``pubsub`` receiver maps here as written (``gcloud_project_id``,
``topic``, ``create_topic``, ``sentUpdateEvent``)::

    receivers:
      - name: pubsub
        pubsub:
          gcloud_project_id: my-project
          topic: kube-event
          create_topic: false

Credentials: ``credentials_file`` (a service account key), else Application Default Credentials
(``GOOGLE_APPLICATION_CREDENTIALS``, workload identity on GKE), as the original. With
``PUBSUB_EMULATOR_HOST`` set the client talks to that emulator, unauthenticated. The client is
Google's own (``google-cloud-pubsub``, gRPC): ``pip install 'kube-event-shipper[gcp]'``.
``create_topic=true`` creates the topic at start (one that exists already is fine; the original
fails then); otherwise it must exist, and the sink needs only ``roles/pubsub.publisher``.

The message, per event version::

    data          the flattened event document as ``log`` prints it (README: The event
                  document), JSON; format=exporter: the original's body instead, the
                  EnhancedEvent as kubernetes-event-exporter's ToJSON() writes it
    ordering_key  the Event's metadata.uid: with a subscription that enables message
                  ordering, the versions of one Event arrive in the order they were made
                  (ordering=false publishes without a key)
    attributes    cluster, type (Normal|Warning), version_id (<uid>.<count>: the same for
                  every copy of one version, to deduplicate on)

With ``sentUpdateEvent: false`` only the first version of each Event is published (the
original's default skips updates; here every version is published unless it is set).

Writes: every message of a batch is published (the client groups them per ordering key) with
one attempt each within ``timeout``; the write returns once every publish future is settled.
A message Pub/Sub refuses as invalid (``INVALID_ARGUMENT``, one over 10 MB) is dead-lettered
alone. Any other failure (unavailable, deadline, a missing topic, refused credentials or
permission) retries that message with backoff, its ordering key resumed first, each failure
one line saying what to fix; the messages of the batch that were published stay published.

Guarantee: at least once per event version, ordered per uid. Pub/Sub has no idempotent
publish: a publish whose answer was lost, a crash (the last checkpoint interval) and
``--start=all`` may publish a version again, with the same ``version_id`` attribute to
deduplicate on. A clean restart and a 410 re-list publish only the versions not published yet.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from shipper.event import Event
from shipper.sinks.base import Rejected, Sink, TransientError
from shipper.sinks.delivery import Outcome, Retry
from shipper.spec import ClusterName, SinkOptions, Timeout, option
from shipper.uri import UsageError, choice, parse_bool

log = logging.getLogger(__name__)

_PATH = re.compile(r"projects/([^/]+)/topics/([^/]+)")
_TOPIC = re.compile(r"[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}")
_PROJECT = re.compile(r"[a-z][a-z0-9\-.:]{4,62}|[a-z][a-z0-9\-]{1,}")


@dataclass(frozen=True, kw_only=True)
class PubsubOptions(SinkOptions, ClusterName, Timeout):
    DEFAULTS = {"timeout": 30.0}

    project: str | None = option(None, "The Google Cloud project of the topic (or give projects/P/topics/T as the rest).", aliases=("gcloud_project_id", "project_id"), exporter="gcloud_project_id")  # fmt: skip
    topic: str | None = option(None, "The topic's name (or its full path projects/P/topics/T).", exporter="topic")  # fmt: skip
    create_topic: bool = option(False, "Create the topic at start if it does not exist.", parse=parse_bool, exporter="create_topic")  # fmt: skip
    credentials_file: str | None = option(None, "A service account key (JSON); default: Application Default Credentials.", aliases=("credentials",))  # fmt: skip
    endpoint: str | None = option(None, "The API endpoint HOST:PORT, e.g. a regional one (default: pubsub.googleapis.com:443).")  # fmt: skip
    ordering: bool = option(True, "Publish with ordering key = uid (the versions of one Event in order).", parse=parse_bool)  # fmt: skip
    format: str = option("document", "document (the flattened event document) or exporter (kubernetes-event-exporter's EnhancedEvent JSON).", parse=choice("document", "exporter"))  # fmt: skip
    sent_update_event: bool = option(True, "Publish every version; false: only the first of each Event (the original's sentUpdateEvent).", parse=parse_bool, aliases=("sentUpdateEvent",), exporter="sentUpdateEvent")  # fmt: skip


class PubsubSink(Sink):
    accepts_audit = True  # the audit document as it is (a layout is for Events)
    scheme = "pubsub"
    receiver = "pubsub"
    summary = "Google Cloud Pub/Sub: one message per event version, ordering key = uid"
    usage = "pubsub:projects/PROJECT/topics/TOPIC"
    example = "pubsub:projects/my-project/topics/kube-events?credentials_file=/secrets/sa.json"
    Options = PubsubOptions
    options: PubsubOptions
    guarantee = (
        "at least once per event version, ordered per uid (ordering key = uid): a publish whose"
        " answer was lost, a crash (the last checkpoint interval) and --start=all may publish a"
        " version again, with the same version_id attribute (<uid>.<count>) to deduplicate on"
    )
    default_batch_size = 500
    default_flush_interval = 0.5

    publisher: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        where = f"--sink {self.scheme}"
        o = self.options
        project, topic = o.project, o.topic
        for text in (self.uri.rest.strip().strip("/"), topic or ""):
            match = _PATH.fullmatch(text)
            if match:
                if project and project != match.group(1):
                    raise UsageError(
                        f"{where}: project {project!r} and the topic's path {text!r} disagree"
                    )
                project, topic = match.groups()
            elif text and text is not topic:
                raise UsageError(
                    f"{where}: {text!r} is not a topic path; expected {self.usage}"
                    " or pubsub:?project=PROJECT&topic=TOPIC"
                )
        if not project or not topic:
            missing = "project (gcloud_project_id)" if not project else "topic"
            raise UsageError(f"{where}: parameter {missing} is missing; expected {self.usage}")
        if not _TOPIC.fullmatch(topic) or topic.lower().startswith("goog"):
            raise UsageError(
                f"{where}: parameter topic={topic!r}: expected 3 to 255 letters, digits and"
                " -_.~+%, starting with a letter, not with goog"
            )
        self.project, self.topic_id = project, topic
        self.topic = f"projects/{project}/topics/{topic}"
        if importlib.util.find_spec("google.cloud.pubsub_v1") is None:
            raise UsageError(
                f"{where}: the Google Cloud Pub/Sub client is not installed;"
                " pip install 'kube-event-shipper[gcp]'"
            )
        if o.credentials_file:
            self._check_credentials_file(where, o.credentials_file)
        self.cluster = o.cluster_name or self.ctx.cluster
        self.timeout = max(o.timeout, 1.0)

    @staticmethod
    def _check_credentials_file(where: str, path: str) -> None:
        try:
            with open(path, encoding="utf-8") as handle:
                info = json.load(handle)
        except OSError as exc:
            raise UsageError(f"{where}: parameter credentials_file={path!r}: cannot read it ({exc.strerror})") from None  # fmt: skip
        except ValueError:
            raise UsageError(f"{where}: parameter credentials_file={path!r}: not JSON") from None
        if not isinstance(info, dict) or info.get("type") != "service_account":
            raise UsageError(
                f"{where}: parameter credentials_file={path!r}: not a service account key"
                ' ("type": "service_account"); for other credentials use'
                " GOOGLE_APPLICATION_CREDENTIALS"
            )

    # -- the client

    def connect(self) -> Any:
        from google.api_core import exceptions as api_exceptions
        from google.auth import exceptions as auth_exceptions
        from google.cloud import pubsub_v1

        kwargs: dict[str, Any] = {}
        try:
            if self.options.credentials_file and not os.environ.get("PUBSUB_EMULATOR_HOST"):
                from google.oauth2 import service_account

                kwargs["credentials"] = service_account.Credentials.from_service_account_file(
                    self.options.credentials_file
                )
            if self.options.endpoint and not os.environ.get("PUBSUB_EMULATOR_HOST"):
                kwargs["client_options"] = {"api_endpoint": self.options.endpoint}
            return pubsub_v1.PublisherClient(
                batch_settings=pubsub_v1.types.BatchSettings(
                    max_bytes=5_000_000, max_latency=0.005, max_messages=500
                ),
                publisher_options=pubsub_v1.types.PublisherOptions(
                    enable_message_ordering=self.options.ordering
                ),
                **kwargs,
            )
        except (auth_exceptions.GoogleAuthError, api_exceptions.GoogleAPIError, ValueError) as exc:
            raise TransientError(f"no Pub/Sub client: {_text(exc)}") from None

    def open(self) -> None:
        if self.publisher is None:
            self.publisher = self.connect()
        if self.options.create_topic:
            from google.api_core import exceptions

            try:
                self.publisher.create_topic(
                    request={"name": self.topic}, timeout=self.timeout, retry=None
                )
                log.info("Sink %s: created topic %s.", self.scheme, self.topic)
            except exceptions.AlreadyExists:
                pass
            except exceptions.GoogleAPICallError as exc:
                raise TransientError(f"cannot create {self.topic}: {self._explain(exc)}") from None
        emulator = os.environ.get("PUBSUB_EMULATOR_HOST")
        log.info(
            "Sink %s: topic %s%s, ordering %s.", self.scheme, self.topic,
            f" on the emulator at {emulator}" if emulator else "",
            "by uid" if self.options.ordering else "off",
        )  # fmt: skip

    # -- writing

    def message(self, event: Event) -> tuple[bytes, dict[str, str]]:
        if self.options.format == "exporter":
            from shipper.templates.event import event_context
            from shipper.templates.gojson import encode

            data = encode(event_context(event, self.cluster)).encode()
        else:
            document = event.document()
            if self.cluster:
                document["orchestrator"]["cluster"] = {"name": self.cluster}
            data = orjson.dumps(document)
        attributes = {
            "cluster": self.cluster,
            "type": event.type,
            "version_id": f"{event.uid}.{event.count}",
        }
        return data, attributes

    def write(self, events: Sequence[Event]) -> Outcome:
        from google.cloud.pubsub_v1.publisher import exceptions as publisher_exceptions

        if self.publisher is None:
            self.publisher = self.connect()
        publisher = self.publisher
        rejected: list[Rejected] = []
        sent: list[tuple[int, str, Any]] = []
        for index, event in enumerate(events):
            if not self.options.sent_update_event and event.watch_type == "MODIFIED":
                continue  # the original's sentUpdateEvent: false
            data, attributes = self.message(event)
            key = event.uid if self.options.ordering else ""
            try:
                future = publisher.publish(
                    self.topic, data, ordering_key=key, retry=None, timeout=self.timeout,
                    **attributes,
                )  # fmt: skip
            except publisher_exceptions.MessageTooLargeError as exc:
                rejected.append(Rejected(index, f"Pub/Sub: {_text(exc)}"))
                continue
            sent.append((index, key, future))
        retry: list[Retry] = []
        invalid: list[tuple[int, str, BaseException]] = []
        paused: set[str] = set()
        deadline = time.monotonic() + self.timeout + 10
        for index, key, future in sent:
            try:
                future.result(timeout=max(0.0, deadline - time.monotonic()))
            except Exception as exc:
                if _is_invalid(exc):
                    invalid.append((index, key, exc))
                else:
                    retry.append(Retry(index, self._explain(exc)))
                if key:
                    paused.add(key)
        self._resume(paused)
        if len(invalid) == 1:
            index, _, exc = invalid[0]
            rejected.append(Rejected(index, f"Pub/Sub refused the message: {_text(exc)}"))
        elif invalid:
            # One request held them all (the client batches): publish each alone to find
            # the ones at fault.
            for index, key, _ in invalid:
                data, attributes = self.message(events[index])
                try:
                    publisher.publish(
                        self.topic, data, ordering_key=key, retry=None, timeout=self.timeout,
                        **attributes,
                    ).result(timeout=self.timeout + 10)  # fmt: skip
                except Exception as exc:
                    if _is_invalid(exc):
                        rejected.append(Rejected(index, f"Pub/Sub refused the message: {_text(exc)}"))  # fmt: skip
                    else:
                        retry.append(Retry(index, self._explain(exc)))
                    self._resume({key} if key else set())
        if retry and len(retry) == len(sent):
            self._reason_first(retry)
        return Outcome(rejected=tuple(sorted(rejected, key=lambda r: r.index)), retry=tuple(retry))

    def _resume(self, keys: set[str]) -> None:
        """A failed publish pauses its ordering key: resume it, so a retry can go."""
        for key in keys:
            try:
                self.publisher.resume_publish(self.topic, key)
            except (ValueError, RuntimeError) as exc:
                log.debug("Sink %s: resume_publish(%s): %r", self.scheme, key, exc)

    @staticmethod
    def _reason_first(retry: list[Retry]) -> None:
        """Keep the most telling reason first (a paused key only echoes the first failure)."""
        retry.sort(key=lambda r: ("ordering key" in (r.reason or ""), r.index))

    def _explain(self, exc: BaseException) -> str:
        """One line that says what to fix."""
        from google.api_core import exceptions
        from google.cloud.pubsub_v1.publisher import exceptions as publisher_exceptions

        if isinstance(exc, publisher_exceptions.PublishToPausedOrderingKeyException):
            return "not tried: its ordering key was paused by an earlier failure"
        text = _text(exc)
        if isinstance(exc, exceptions.NotFound):
            return f"{text}; topic {self.topic} does not exist (create it, or create_topic=true)"
        if isinstance(exc, exceptions.PermissionDenied):
            return f"{text}; the credentials may not publish to {self.topic} (roles/pubsub.publisher)"  # fmt: skip
        if isinstance(exc, exceptions.Unauthenticated):
            return f"{text}; Pub/Sub refused the credentials; check credentials_file or GOOGLE_APPLICATION_CREDENTIALS"  # fmt: skip
        if isinstance(exc, TimeoutError) or type(exc).__name__ == "TimeoutError":
            return f"no answer from Pub/Sub in {self.timeout:.0f} s"
        return text

    def close(self) -> None:
        if self.publisher is not None:
            publisher, self.publisher = self.publisher, None
            try:
                publisher.stop()
            except Exception as exc:  # a publisher that failed is done with anyway
                log.debug("Sink %s: stopping the publisher: %r", self.scheme, exc)

    def describe(self) -> str:
        return f"pubsub {self.topic}"


def _is_invalid(exc: BaseException) -> bool:
    from google.api_core import exceptions

    return isinstance(exc, exceptions.InvalidArgument)


def _text(exc: BaseException) -> str:
    """A client error in one line: ``503 Service Unavailable: connection refused``, cut short."""
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    code = getattr(exc, "code", None)
    words = " ".join(str(message).split())
    head = f"{int(code)} {type(exc).__name__}" if isinstance(code, int) else type(exc).__name__
    return f"{head}: {words}"[:400]
