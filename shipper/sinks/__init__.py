"""The sink registry: URI scheme -> the class that writes there.

Classes are named, not imported, so a sink's client library (elasticsearch, kafka, ...) is only
imported when a ``--sink`` uses it. Adding a sink is one module and one line here.
"""

from __future__ import annotations

import importlib

from shipper.sinks.base import Sink

REGISTRY: dict[str, str] = {
    "log": "shipper.sinks.log:LogSink",
    "stdout": "shipper.sinks.log:LogSink",
    "sqlite": "shipper.sinks.sqlite:SqliteSink",
    "file": "shipper.sinks.file:FileSink",
    "elasticsearch": "shipper.sinks.elasticsearch:ElasticsearchSink",
    "es": "shipper.sinks.elasticsearch:ElasticsearchSink",
    "opensearch": "shipper.sinks.opensearch:OpenSearchSink",
    "mysql": "shipper.sinks.mysql:MySQLSink",
    "mariadb": "shipper.sinks.mysql:MySQLSink",
    "influxdb": "shipper.sinks.influxdb:InfluxDBSink",
    "kafka": "shipper.sinks.kafka:KafkaSink",
    "dingtalk": "shipper.sinks.dingtalk:DingTalkSink",
    "wechat": "shipper.sinks.wechat:WeChatSink",
    "wecom": "shipper.sinks.wechat:WeChatSink",
    "slack": "shipper.sinks.slack:SlackSink",
    "lark": "shipper.sinks.lark:LarkSink",
    "feishu": "shipper.sinks.lark:LarkSink",
    "teams": "shipper.sinks.teams:TeamsSink",
    "webhook": "shipper.sinks.webhook:WebhookSink",
}


def sink_class(scheme: str) -> type[Sink]:
    """The class for ``scheme``; KeyError if there is none."""
    module, _, name = REGISTRY[scheme].partition(":")
    cls: type[Sink] = getattr(importlib.import_module(module), name)
    return cls
