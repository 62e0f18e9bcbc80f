"""The chat and webhook sinks (notifiers): DingTalk, WeCom, Slack, Lark / Feishu, Teams, webhook.

One module per vendor (``dingtalk``, ``wechat``, ``slack``, ``lark``, ``teams``, ``webhook``)
says how a :class:`Notification` becomes that vendor's request and how to read its reply. What
they share lives beside them:

- :mod:`~shipper.sinks.notify.base`: templates to messages, which events get a message (send,
  digest, suppress), vendor errors, :class:`NotifierSink`;
- :mod:`~shipper.sinks.notify.options`: the options every notifier and every chat takes;
- :mod:`~shipper.sinks.notify.digest`: the digest of events held back by the rate limit;
- :mod:`~shipper.sinks.notify.http`: the HTTP client and network errors in words.

They are ordinary sinks: the pipeline (:mod:`shipper.pipeline`) queues, batches, retries and
paces them, holds the tickets of events folded into a digest until it is sent, and calls
``tick()`` when the vendor's rate lets the digest go. The vendor's rate is a
:class:`~shipper.sinks.delivery.Pace` the sink declares.
"""

from shipper.sinks.notify.base import (
    COLORS,
    DEFAULT_FIELDS,
    DEFAULT_TITLE,
    KUBE_EVENTER_MESSAGE,
    Notification,
    NotifierSink,
    RateLimited,
    Refused,
    truncate,
)
from shipper.sinks.notify.digest import Digest, digest_event
from shipper.sinks.notify.http import Http, Reply, hmac_sha256_b64, network_error, safe_url
from shipper.sinks.notify.options import ChatOptions, NotifyOptions

__all__ = [
    "COLORS",
    "DEFAULT_FIELDS",
    "DEFAULT_TITLE",
    "KUBE_EVENTER_MESSAGE",
    "ChatOptions",
    "Digest",
    "Http",
    "Notification",
    "NotifierSink",
    "NotifyOptions",
    "RateLimited",
    "Refused",
    "Reply",
    "digest_event",
    "hmac_sha256_b64",
    "network_error",
    "safe_url",
    "truncate",
]
