"""What the AWS sinks share: credentials, endpoint, batching to the API's limits, per-entry
failures mapped to the pipeline's :class:`~shipper.sinks.delivery.Outcome`, errors in one line.

Credentials are the AWS SDK's default chain and nothing else: ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` (/ ``AWS_SESSION_TOKEN``) from the environment (a Secret through
``secretKeyRef``), the shared files (``AWS_PROFILE``), a web identity token (IRSA:
``AWS_ROLE_ARN`` + ``AWS_WEB_IDENTITY_TOKEN_FILE``), EKS Pod Identity
(``AWS_CONTAINER_CREDENTIALS_FULL_URI``), the instance role. No parameter takes a key: secrets
never travel in arguments. ``role_arn`` assumes a role on top of those (STS AssumeRole with
``external_id`` and ``session_name``; the temporary credentials are refreshed before they
expire). The endpoint is ``endpoint=``, else ``AWS_ENDPOINT_URL_<SERVICE>`` /
``AWS_ENDPOINT_URL`` (botocore reads them), else the region's.

One ``write()`` turns the pipeline's batch into as many API calls as the service's limits need
(:func:`chunks`): at most N entries and B bytes per call, and at most one version of an Event
per call where order matters, so that a failed entry is retried before a later version of the
same Event is sent. A :class:`Tally` collects what each call did to each entry: done, to retry
(throttled, a server fault: :class:`~shipper.sinks.delivery.Retry`), or refused for good
(:class:`~shipper.sinks.base.Rejected`, dead-lettered). After a call with entries to retry, the
rest of the batch is not sent in this write (``Retry`` with no reason: not tried) and follows
the retried entries in the next attempt, so order per Event holds and a throttled stream is
not hammered. botocore's own retries are off: the pipeline retries, only what failed.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from shipper.event import Event
from shipper.sinks.aws.bodies import (  # re-exported: the services import them from here
    TooLarge as TooLarge,
)
from shipper.sinks.aws.bodies import (
    attributes as attributes,
)
from shipper.sinks.aws.bodies import (
    attributes_size as attributes_size,
)
from shipper.sinks.aws.bodies import (
    dedup_id as dedup_id,
)
from shipper.sinks.aws.bodies import (
    document as document,
)
from shipper.sinks.aws.bodies import (
    encode_body as encode_body,
)
from shipper.sinks.aws.bodies import (
    now_ms as now_ms,
)
from shipper.sinks.aws.bodies import (
    skip_update as skip_update,
)
from shipper.sinks.aws.bodies import (
    version_id as version_id,
)
from shipper.sinks.base import Rejected, Sink, TransientError
from shipper.sinks.delivery import Outcome, Retry
from shipper.uri import UsageError

log = logging.getLogger(__name__)

USER_AGENT = "kube-event-shipper"

#: Error codes (any service) that mean "slow down": retried after backoff.
THROTTLING = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "Throttled",
    "RequestThrottledException", "RequestThrottled", "TooManyRequestsException",
    "ProvisionedThroughputExceededException", "LimitExceededException", "RequestLimitExceeded",
    "SlowDown", "KMSThrottlingException", "KMS.ThrottlingException",
    "ServiceQuotaExceededException",
})  # fmt: skip
#: The signature or the key is wrong, or the session expired: the credentials are at fault.
AUTH = {
    "SignatureDoesNotMatch": "the signature does not match: check AWS_SECRET_ACCESS_KEY (it does not belong to the access key)",
    "InvalidSignatureException": "the signature does not match: check AWS_SECRET_ACCESS_KEY (it does not belong to the access key)",
    "InvalidClientTokenId": "AWS does not know the access key: check AWS_ACCESS_KEY_ID (or the session token)",
    "UnrecognizedClientException": "AWS does not know the access key: check AWS_ACCESS_KEY_ID (or the session token)",
    "InvalidAccessKeyId": "AWS does not know the access key: check AWS_ACCESS_KEY_ID",
    "MissingAuthenticationToken": "the request was not signed",
    "MissingAuthenticationTokenException": "the request was not signed",
    "ExpiredToken": "the session credentials expired",
    "ExpiredTokenException": "the session credentials expired",
    "RequestExpired": "the request expired: is the clock right?",
    "IncompleteSignature": "the signature is incomplete",
}  # fmt: skip
DENIED = frozenset({
    "AccessDenied", "AccessDeniedException", "AuthorizationError", "AuthorizationErrorException",
    "NotAuthorized", "KMSAccessDeniedException", "KMS.AccessDeniedException",
})  # fmt: skip
MISSING = frozenset({
    "ResourceNotFoundException", "NotFound", "NotFoundException", "QueueDoesNotExist",
    "AWS.SimpleQueueService.NonExistentQueue",
})  # fmt: skip
#: Per-entry codes that may succeed later (besides throttling): server faults, and KMS or IAM
#: trouble an operator fixes; everything else an entry fails with is the entry's own fault.
RETRYABLE_ENTRY = frozenset({
    "InternalError", "InternalFailure", "InternalServerError", "ServiceUnavailable",
    "ServiceUnavailableException", "ServiceFailure",
    "KMSDisabledException", "KMSInvalidStateException", "KMSNotFoundException",
    "KMSOptInRequired", "KMSInternalException", "KMS.DisabledException",
    "KMS.InvalidStateException", "KMS.NotFoundException", "KMS.OptInRequired",
    "NotAuthorizedForSourceException", "NotAuthorizedForDetailTypeException",
})  # fmt: skip


def retryable_entry(code: str, sender_fault: bool = False) -> bool:
    """Whether an entry that failed with ``code`` may succeed if sent again."""
    if code in THROTTLING or code in RETRYABLE_ENTRY or code in DENIED:
        return True
    return not sender_fault and code not in _ENTRY_FAULTS


#: Per-entry codes that are the entry's fault even where the API says nothing of the sender.
_ENTRY_FAULTS = frozenset({
    "InvalidParameter", "InvalidParameterValue", "InvalidParameterException",
    "InvalidArgument", "ValidationException", "MalformedDetail", "InvalidMessageContents",
    "MessageTooLong", "BatchEntryTooLong", "InvalidAttributeName", "InvalidAttributeValue",
    "InvalidRecordException",
})  # fmt: skip


# -- a region, an endpoint, a client


ARN = re.compile(r"arn:(aws[a-z-]*):([a-z0-9-]+):([a-z0-9-]*):(\d*):(.+)")


def arn_region(text: str) -> str | None:
    match = ARN.fullmatch(text)
    return (match.group(3) or None) if match else None


def check_endpoint(url: str | None, where: str) -> None:
    if url is not None and not re.fullmatch(r"https?://[^/\s?#]+(/[^\s?#]*)?", url):
        raise UsageError(
            f"{where}: parameter endpoint={url!r}: expected a URL such as"
            " https://vpce-0abc.sqs.eu-west-1.vpce.amazonaws.com"
        )


class AwsAccess:
    """Region, endpoint and credentials of one sink; :meth:`client` makes its boto3 client.

    ``resource_region`` is the region an ARN names (an SNS topic): AWS serves a resource only in
    its own region, so it wins over ``region`` (with a warning when they differ)."""

    def __init__(
        self, options: Any, service: str, where: str, *, resource_region: str | None = None
    ) -> None:
        try:
            import boto3
        except ImportError:
            raise UsageError(
                f"{where}: boto3 is not installed; pip install 'kube-event-shipper[aws]'"
            ) from None
        check_endpoint(options.endpoint, where)
        self.options, self.service, self.where = options, service, where
        region = options.region
        if resource_region and region and region != resource_region:
            log.warning(
                "%s: region %s differs from the region in the ARN (%s); using %s, where the"
                " resource is.", where, region, resource_region, resource_region,
            )  # fmt: skip
        # botocore reads AWS_DEFAULT_REGION and the profile; the other SDKs (and the EKS
        # webhooks) use AWS_REGION too
        region = (
            resource_region or region or os.environ.get("AWS_REGION") or boto3.Session().region_name
        )
        if not region:
            raise UsageError(
                f"{where}: no AWS region: give region=... or set AWS_REGION (the EKS Pod"
                " Identity and IRSA webhooks set it)"
            )
        if options.external_id and not options.role_arn:
            raise UsageError(f"{where}: parameter external_id needs role_arn")
        if options.role_arn and not ARN.fullmatch(options.role_arn):
            raise UsageError(
                f"{where}: parameter role_arn={options.role_arn!r}: expected an ARN such as"
                " arn:aws:iam::123456789012:role/kube-event-shipper"
            )
        self.region = region
        self.timeout = max(float(getattr(options, "timeout", 30.0)), 1.0)

    def session(self) -> Any:
        """A boto3 session: the default credential chain, or a role assumed on top of it."""
        import boto3

        base = boto3.Session(region_name=self.region)
        role = self.options.role_arn
        if not role:
            return base
        import botocore.session
        from botocore.credentials import (
            AssumeRoleCredentialFetcher,
            DeferredRefreshableCredentials,
        )

        source = base._session  # the botocore session, with the default chain
        source_credentials = source.get_credentials()
        if source_credentials is None:
            raise NoCredentials()
        extra: dict[str, Any] = {"RoleSessionName": self.options.session_name}
        if self.options.external_id:
            extra["ExternalId"] = self.options.external_id
        fetcher = AssumeRoleCredentialFetcher(
            client_creator=source.create_client,
            source_credentials=source_credentials,
            role_arn=role,
            extra_args=extra,
        )
        assumed = botocore.session.Session()
        assumed._credentials = DeferredRefreshableCredentials(
            method="assume-role", refresh_using=fetcher.fetch_credentials
        )
        return boto3.Session(botocore_session=assumed, region_name=self.region)

    def client(self) -> Any:
        from botocore.config import Config

        if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
            # "Found credentials in environment variables", per client: the sink says where
            # it writes itself, once
            for name in ("botocore", "boto3"):
                logging.getLogger(name).setLevel(logging.WARNING)

        config = Config(
            region_name=self.region,
            retries={"mode": "standard", "total_max_attempts": 1},  # the pipeline retries
            connect_timeout=min(self.timeout, 10.0),
            read_timeout=self.timeout,
            user_agent_extra=USER_AGENT,
            tcp_keepalive=True,
            # the entries are built here, to the API's shapes and limits: botocore's check of
            # every one costs more CPU than the rest of the write (bench/README.md)
            parameter_validation=False,
        )
        try:
            return self.session().client(
                self.service, endpoint_url=self.options.endpoint or None, config=config
            )
        except Exception as exc:
            raise TransientError(self.explain(exc, "creating the client")) from None

    def explain(self, exc: BaseException, action: str) -> str:
        return explain(exc, action, self.region)


class NoCredentials(Exception):
    pass


NO_CREDENTIALS = (
    "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY from a Secret,"
    " or use IRSA (AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE), EKS Pod Identity or an"
    " instance role"
)


def error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return (response.get("Error") or {}).get("Code")
    return None


def explain(exc: BaseException, action: str, region: str = "") -> str:
    """One line: which call, AWS's code and words, and what to check. No secrets: botocore's
    messages carry none (the access key id is not a secret and is never printed either)."""
    from botocore import exceptions as bx

    where = f"{action}" + (f" ({region})" if region else "")
    if isinstance(exc, NoCredentials | bx.NoCredentialsError):
        return f"{where}: {NO_CREDENTIALS}"
    if isinstance(exc, bx.ClientError):
        error = exc.response.get("Error") or {}
        code = error.get("Code") or "Error"
        message = " ".join(str(error.get("Message") or "").split())
        status = (exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        text = f"{where}: {code}" + (f" (HTTP {status})" if status else "")
        if message:
            text += f": {message}"
        if code in AUTH:
            text += f"; {AUTH[code]}"
        elif code in DENIED:
            text += "; the credentials' identity may not do this: grant it in the role's policy"
        return text[:600]
    if isinstance(exc, bx.EndpointConnectionError | bx.ConnectionClosedError):
        return f"{where}: cannot reach {getattr(exc, 'kwargs', {}).get('endpoint_url', 'the endpoint')}: {_words(exc)}"[:600]  # fmt: skip
    if isinstance(exc, bx.ReadTimeoutError | bx.ConnectTimeoutError):
        return f"{where}: timed out: {_words(exc)}"[:600]
    if isinstance(exc, bx.CredentialRetrievalError | bx.PartialCredentialsError):
        return f"{where}: could not get AWS credentials: {_words(exc)}"[:600]
    if isinstance(exc, bx.BotoCoreError):
        return f"{where}: {_words(exc)}"[:600]
    return f"{where}: {type(exc).__name__}: {_words(exc)}"[:600]


def _words(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def retry_after(exc: BaseException) -> float | None:
    """The service's Retry-After, when it sent one (most AWS APIs do not)."""
    response = getattr(exc, "response", None) or {}
    headers = (response.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}
    try:
        value = float(headers.get("retry-after", ""))
    except ValueError:
        return None
    return value if value >= 0 else None


def whole_request_kind(exc: BaseException) -> str:
    """``retry`` (outage, throttling, credentials, a missing resource: wait and send again) or
    ``refused`` (the request itself is invalid: split it, refuse the entry at fault)."""
    code = error_code(exc)
    if code is None:
        return "retry"  # connection, timeout, credentials
    status = (getattr(exc, "response", {}).get("ResponseMetadata") or {}).get("HTTPStatusCode")
    if code in THROTTLING or code in AUTH or code in DENIED or code in MISSING:
        return "retry"
    if status is None or status >= 500 or status in (408, 429):
        return "retry"
    if code in RETRYABLE_ENTRY:
        return "retry"
    return "refused"


# -- entries, limits, batches


@dataclass
class Entry:
    """One event's part of a request: ``index`` into the pipeline's batch, the request item,
    its ``size`` as the API counts it, and an ``order`` key (one per request, if not None)."""

    index: int
    item: dict[str, Any]
    size: int
    order: str | None = None
    extra: Any = None


def chunks(
    entries: Iterable[Entry], max_entries: int, max_bytes: int, *, ordered: bool = True
) -> list[list[Entry]]:
    """Split into requests of at most ``max_entries`` and ``max_bytes`` (each entry already fits
    alone). With ``ordered`` a request holds at most one entry per ``order`` key and a key's
    entries go to requests in their order (each after the request with its previous one);
    otherwise, and among different keys, an entry takes the first request with room, so the
    versions of one busy Event do not split the batch into many small calls."""
    requests: list[list[Entry]] = []
    sizes: list[int] = []
    after: dict[str, int] = {}  # key -> the first request its next entry may go to
    first_open = 0  # requests before it are full by count
    for entry in entries:
        keyed = ordered and entry.order is not None
        r = max(first_open, after.get(entry.order, 0) if keyed else 0)  # type: ignore[arg-type]
        while r < len(requests) and (
            len(requests[r]) >= max_entries or sizes[r] + entry.size > max_bytes
        ):
            r += 1
        if r == len(requests):
            requests.append([])
            sizes.append(0)
        requests[r].append(entry)
        sizes[r] += entry.size
        if keyed:
            after[entry.order] = r + 1  # type: ignore[index]
        while first_open < len(requests) and len(requests[first_open]) >= max_entries:
            first_open += 1
    return requests


@dataclass
class Tally:
    """What one write did to each event of the pipeline's batch."""

    rejected: list[Rejected] = field(default_factory=list)
    retry: list[Retry] = field(default_factory=list)
    #: Set after a call left entries to retry: the rest of the batch waits (not tried).
    stopped: bool = False
    calls: int = 0

    def reject(self, index: int, reason: str) -> None:
        self.rejected.append(Rejected(index, reason))

    def again(self, index: int, reason: str | None, after: float | None = None) -> None:
        self.retry.append(Retry(index, reason, after))
        if reason is not None:
            self.stopped = True

    def wait(self, entries: Iterable[Entry]) -> None:
        for entry in entries:
            self.retry.append(Retry(entry.index, None))

    def outcome(self) -> Outcome:
        return Outcome(
            rejected=tuple(sorted(self.rejected, key=lambda r: r.index)),
            retry=tuple(sorted(self.retry, key=lambda r: r.index)),
        )


def send_all(
    requests: Sequence[list[Entry]],
    send: Callable[[list[Entry], Tally], None],
    tally: Tally,
    describe: Callable[[BaseException], str],
) -> None:
    """Send each request with ``send`` (which records per-entry failures in ``tally``); a whole
    request that fails transiently puts it and the rest up for retry; one the service finds
    invalid is sent again entry by entry, so only the entry at fault is refused."""
    for number, request in enumerate(requests):
        if tally.stopped:
            for rest in requests[number:]:
                tally.wait(rest)
            return
        try:
            tally.calls += 1
            send(request, tally)
        except NoCredentials as exc:
            _retry_rest(tally, requests, number, describe(exc), None)
            return
        except Exception as exc:
            if not _is_aws_error(exc):
                raise
            if whole_request_kind(exc) == "retry":
                _retry_rest(tally, requests, number, describe(exc), retry_after(exc))
                return
            if len(request) > 1:
                send_all([[e] for e in request], send, tally, describe)
            else:
                tally.reject(request[0].index, describe(exc))


def _retry_rest(
    tally: Tally, requests: Sequence[list[Entry]], number: int, reason: str, after: float | None
) -> None:
    for entry in requests[number]:
        tally.again(entry.index, reason, after)
    for rest in requests[number + 1 :]:
        tally.wait(rest)


def _is_aws_error(exc: BaseException) -> bool:
    from botocore.exceptions import BotoCoreError, ClientError

    return isinstance(exc, ClientError | BotoCoreError)


# -- the shared sink


class AwsSink(Sink):
    """A sink that sends batches to one AWS API. A subclass says what it sends to
    (:meth:`target`), checks it at start (:meth:`check`), makes one request entry per event
    (:meth:`entry`) and sends one request, recording per-entry failures (:meth:`send`)."""

    accepts_audit = True  # the audit document as it is (a layout is for Events)

    service: ClassVar[str]  # botocore's name: sqs, sns, kinesis, firehose, events, logs
    action: ClassVar[str]  # the batch call, for messages
    max_entries: ClassVar[int]
    max_request_bytes: ClassVar[int]
    #: A request carries at most one version per Event (FIFO groups, Kinesis shards).
    ordered: ClassVar[bool] = True
    #: The one-message limit as the API counts it (options may lower it).
    max_entry_bytes: ClassVar[int]

    client: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.where = f"--sink {self.scheme}"
        self.cluster = getattr(self.options, "cluster_name", None) or self.ctx.cluster
        self.setup()
        self.access = AwsAccess(
            self.options, self.service, self.where, resource_region=self.resource_region()
        )
        self.cut = 0

    def setup(self) -> None:
        """Validate the target (UsageError); called before the region is resolved."""

    def resource_region(self) -> str | None:
        return None

    def target(self) -> str:
        raise NotImplementedError

    def check(self) -> None:
        """One cheap call that fails if the target does not exist or the credentials are bad."""

    def open(self) -> None:
        if self.client is None:
            self.client = self.access.client()
        try:
            self.check()
        except Exception as exc:
            if not (_is_aws_error(exc) or isinstance(exc, NoCredentials)):
                raise
            code = error_code(exc)
            if code in DENIED:  # may not describe it; the writes will tell whether it may send
                log.warning(
                    "Sink %s: %s; going on (the writes need only the send permission).",
                    self.scheme, self.access.explain(exc, f"checking {self.target()}"),
                )  # fmt: skip
            else:
                raise TransientError(self.access.explain(exc, f"checking {self.target()}")) from None  # fmt: skip
        log.info(
            "Sink %s: %s in %s via %s.",
            self.scheme, self.target(), self.access.region, self.client.meta.endpoint_url,
        )  # fmt: skip

    def entry(self, index: int, event: Event) -> Entry | None:
        """The request entry of one event; None to skip it (sentUpdateEvent); raises TooLarge."""
        raise NotImplementedError

    def send(self, request: list[Entry], tally: Tally) -> None:
        raise NotImplementedError

    def body(self, event: Event, limit: int) -> bytes:
        body, cut = encode_body(event, getattr(self.options, "layout", None), self.cluster, limit)
        if cut:
            self.cut += 1
            log.warning(
                "Sink %s: the message of %s (%s) was cut to fit the %d-byte limit.",
                self.scheme, event.describe(), version_id(event), limit,
            )  # fmt: skip
        return body

    def write(self, events: Sequence[Event]) -> Outcome:
        if self.client is None:
            self.open()
        tally = Tally()
        entries = []
        for index, event in enumerate(events):
            try:
                entry = self.entry(index, event)
            except TooLarge as exc:
                tally.reject(index, f"{self.scheme}: {exc}")
                continue
            if entry is not None:
                entries.append(entry)
        requests = self.requests(entries)
        send_all(requests, self.send, tally, self.explain)
        return tally.outcome()

    def requests(self, entries: list[Entry]) -> list[list[Entry]]:
        return chunks(entries, self.max_entries, self.max_request_bytes, ordered=self.ordered)

    def explain(self, exc: BaseException) -> str:
        return self.access.explain(exc, f"{self.action} to {self.target()}")

    def close(self) -> None:
        if self.client is not None:
            client, self.client = self.client, None
            try:
                client.close()
            except Exception as exc:  # closing a connection pool: nothing to lose
                log.debug("Sink %s: closing the client: %r", self.scheme, exc)

    def describe(self) -> str:
        if self.client is not None:
            endpoint = self.client.meta.endpoint_url
        else:
            names = {"logs": "CLOUDWATCH_LOGS", "events": "EVENTBRIDGE"}
            env = f"AWS_ENDPOINT_URL_{names.get(self.service, self.service.upper())}"
            endpoint = self.options.endpoint or os.environ.get(env) or os.environ.get("AWS_ENDPOINT_URL") or "the region's endpoint"  # fmt: skip
        role = f" as {self.options.role_arn}" if self.options.role_arn else ""
        return f"{self.scheme} {self.target()} ({self.access.region}, {endpoint}){role}"
