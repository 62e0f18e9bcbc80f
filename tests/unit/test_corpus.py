"""Drop-in: every real config in tests/corpus loads here as written, or fails for a stated reason.

The corpus (tests/corpus/README.md) holds 73 kubernetes-event-exporter config files and 74
kube-eventer ``--sink``/``--source`` values as their users published them, each with its source.
This module runs them through the same code ``kube-event-shipper check`` runs, in-process; what
the ORIGINAL does with them (which receiver gets which event, the bodies of layouts) is compared
in tests/integration/test_dropin.py against the peer oracle (tests/peer).

Every refusal below has a reason; "theirs too" means kubernetes-event-exporter v1.7 refuses the
file as well (the oracle says so). The rest are the README's migration section, or work still to
come (a sink not yet built), and each shrinks this table when it lands.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytest

from shipper.config import load
from shipper.sinks.base import SinkContext
from shipper.sinks.factory import build_sink, build_sinks
from shipper.source.kubernetes import SourceSettings
from shipper.uri import UsageError

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
CONFIGS = sorted((CORPUS / "exporter").glob("*.yaml"))

#: The environment the configs' ${VAR}s expect (the original expands the whole file).
ENV = {
    "ELASTIC_API_KEY": "aWQ6a2V5",
    "SLACK_TOKEN": "xoxb-0000-test",
    "OS_HOST": "https://os.example:9200",
    "OS_USERNAME": "shipper",
    "OS_PASSWORD": "secret",
    "cluster_name": "prod-eu",
}

THEIRS_TOO = "kubernetes-event-exporter v1.7 refuses it too"
PLACEHOLDER = "a placeholder where a value belongs (the original starts, then cannot connect)"
NOT_YET = "a receiver type or option not built yet"
BLANK_KEY = 'apiKey: "" (the Opsgenie Go SDK the original uses refuses a blank key when the sink is created)'

#: file -> (why it is refused, the message it is refused with)
REFUSED = {
    "12-resmoio-readme-stdout.yaml": (THEIRS_TOO, "de_dot='true|false': expected true or false"),
    "14-resmoio-readme-opscenter.invalid.yaml": (THEIRS_TOO, "not valid YAML"),
    "23-opsgenie-readme-route-tree.yaml": (THEIRS_TOO, "match: expected a list"),
    "24-opsgenie-readme-kinesis-typo.yaml": (THEIRS_TOO, "got ['kineis']"),
    "27-resmoio-config-example.yaml": (THEIRS_TOO, "prometheus: expected a mapping of options"),
    "30-opsgenie-configuration-draft.invalid.yaml": (THEIRS_TOO, "not valid YAML"),
    "37-charleslin-appd-appdynamics.yaml": (THEIRS_TOO, "got ['appdynamics']"),
    "57-issue-68-bitnami-es-route-match.yaml": (THEIRS_TOO, "throttlePeriod is the old name"),
    "60-issue-og136-teams-drop-receiver.yaml": (PLACEHOLDER, "expected teams:https://"),
    "66-issue-224-kafka-sasl-sha256.yaml": (PLACEHOLDER, "'ip1:port' is not HOST:PORT"),
    "29-opsgenie-config-bigquery.yaml": (NOT_YET, "type 'bigquery' is not supported"),
    "28-opsgenie-config-example.yaml": (BLANK_KEY, "opsgenie: no API key"),
    "35-davidhernandez21-config-example.yaml": (BLANK_KEY, "opsgenie: no API key"),
    "62-issue-og97-es-cloudid-slack-teams.yaml": (
        PLACEHOLDER,
        "cloud_id='...': expected NAME:BASE64",
    ),
}


def test_the_corpus_is_what_its_readme_says():
    assert len(CONFIGS) >= 40
    for path in CONFIGS:
        assert path.read_text().startswith("# source: "), path.name
    assert set(REFUSED) <= {p.name for p in CONFIGS}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name[:40] for p in CONFIGS])
def test_an_exporter_config_loads_as_written(path, monkeypatch, caplog):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.WARNING)
    refused = REFUSED.get(path.name)
    if refused is None:
        build_sinks([], SinkContext("", None), load(str(path)))
        assert "Traceback" not in caplog.text
        return
    _, message = refused
    with pytest.raises(UsageError) as caught:
        build_sinks([], SinkContext("", None), load(str(path)))
    text = str(caught.value)
    assert message in text, text
    assert "\n" not in text.strip(), "one line"
    assert text.startswith("--config "), "it names the file"


def test_most_of_the_corpus_loads():
    """The share that loads, kept from going back: the original loads 61 of the 73."""
    assert len(CONFIGS) - len(REFUSED) >= 48


FLAGS = [row for row in csv.DictReader((CORPUS / "kube-eventer-flags.tsv").open(), delimiter="\t")]


def _value(flag: str) -> str:
    value = flag.split("=", 1)[1] if "=" in flag.split(":", 1)[0] else flag.split(":", 1)[1]
    if len(value) > 1 and value[0] in "'\"" and value[-1] == value[0]:
        value = value[1:-1]
    return value


#: Documentation placeholders (<...>, [...]) are not values; these schemes are not built.
UNSUPPORTED = ("mongo:", "pulsar:", "riemann:")

#: The environment kube-eventer's deploy files give it (docs/en/sls-sink.md: the AccessKey in
#: AccessKeyId / AccessKeySecret; RegionId, which its sls sink reads before the URI's host).
FLAG_ENV = {"AccessKeyId": "LTAI-test", "AccessKeySecret": "secret", "RegionId": "cn-hangzhou"}


def _is_placeholder(value: str) -> bool:
    return any(mark in value for mark in ("<", "[", "xxxxx", "${", "$Config"))


#: Real values refused today, with the reason: the flag's text -> (why, message).
FLAG_REFUSED = {
    "index=test": ("Elasticsearch refuses upper-case index names (kube-eventer fails when it first writes)", "expected a lowercase name"),
    "--sink=https://hooks.slack.com/": ("no scheme: kube-eventer refuses it too", "unknown scheme 'https'"),
}  # fmt: skip


@pytest.mark.parametrize("row", FLAGS, ids=[f"{i}" for i in range(len(FLAGS))])
def test_a_kube_eventer_flag_is_accepted_or_refused_in_one_line(row, monkeypatch):
    for name, value in FLAG_ENV.items():
        monkeypatch.setenv(name, value)
    flag = row["flag"]
    value = _value(flag)
    refused = next((r for key, r in FLAG_REFUSED.items() if key in flag), None)
    if refused is not None:
        with pytest.raises(UsageError, match=refused[1]):
            build_sink(value, SinkContext("", None))
        return
    build = (
        (lambda: SourceSettings.from_uri(value))
        if "-source" in flag
        else (lambda: build_sink(value, SinkContext("", None)))
    )
    if value.lower().startswith(UNSUPPORTED) or _is_placeholder(value):
        try:
            build()
        except UsageError as exc:
            assert "\n" not in str(exc)
        return
    build()  # a real value from kube-eventer's docs, deploy files or issues: must be accepted
