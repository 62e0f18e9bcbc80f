"""A sink is declared once (shipper/spec.py): everything else is derived from its class.

The first test is the promise of CONTRIBUTING.md's "Adding a sink": a throwaway sink class,
defined here and nowhere else, is found by the registry, parsed from a ``--sink`` URI, listed
by ``sinks``, given a README row and a docs page, and built from a config-file receiver.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest

from shipper import spec
from shipper.config import Receiver, Where
from shipper.event import Event
from shipper.sinks import describe, register, registry
from shipper.sinks.base import Rejected, Sink, SinkContext
from shipper.sinks.factory import build_sink, build_sink_from, receiver_uri
from shipper.sinks.registry import unregister
from shipper.spec import ClientCert, SinkOptions, TLSTrust, option
from shipper.uri import Uri, UsageError, parse_positive_int

CTX = SinkContext(cluster="c1", state_dir=None)


@pytest.fixture(scope="module")
def throwaway() -> Iterator[type[Sink]]:
    """One throwaway sink class for this module; gone from the registry afterwards."""

    @dataclass(frozen=True, kw_only=True)
    class GreetOptions(SinkOptions, TLSTrust, ClientCert):
        REST = "endpoint"
        IGNORED = {"colour": "greetings are colourless"}

        greeting: str = option("hello", "What to say.", aliases=("salute",), exporter="greeting")
        times: int = option(1, "How often.", parse=parse_positive_int, exporter="repeat.times")
        token: str | None = option(None, "A secret.", secret=True, exporter="auth.token")

    class GreetSink(Sink):
        scheme = "greet"
        aliases = ("hi",)
        receiver = "greeter"
        summary = "says hello to every event"
        usage = "greet:https://HOST/PATH"
        example = "greet:https://greeter?greeting=hey"
        guarantee = "none, it only greets"
        Options = GreetOptions

        def write(self, events: Sequence[Event]) -> Sequence[Rejected]:
            return []

    register(GreetSink)  # a class outside shipper/sinks/ says so; one inside is found by itself
    yield GreetSink
    unregister(GreetSink)
    assert "greet" not in registry().by_scheme


def test_a_new_sink_class_is_found_everywhere_without_touching_another_file(throwaway):
    assert registry().by_scheme["greet"] is throwaway
    assert registry().by_scheme["hi"] is throwaway
    assert registry().by_receiver["greeter"] is throwaway

    sink, settings = build_sink("hi:https://greeter.example?salute=hey&times=3&ca_file=", CTX)
    assert isinstance(sink.options, throwaway.Options)
    assert (sink.options.greeting, sink.options.times) == ("hey", 3)
    assert settings.name == "greet" and sink.uri.rest == "https://greeter.example"

    text = describe.sink_text(throwaway, verbose=True)
    assert "greet (also: hi): says hello to every event" in text
    assert "times (int, default 1): How often." in text
    assert "token (text, secret, default —)" in text
    assert "config: repeat.times" in text

    row = next(r for r in describe.sink_table().splitlines() if "[greet]" in r)
    assert "`greet:https://HOST/PATH`" in row and "`greeter`" in row and "`times`" in row
    page = describe.docs_pages()["greet.md"]
    assert "| `repeat.times` | `times` |" in page and "| `colour` | accepted, no effect" in page

    section = {
        "endpoint": "https://greeter.example/in",
        "greeting": "moin",
        "repeat": {"times": 2},
        "auth": {"token": "s3cret"},
        "tls": {"insecureSkipVerify": True, "caFile": ""},
        "colour": "blue",
    }
    uri = receiver_uri(Receiver("g", "greeter", section, 7), Where("config.yaml"))
    built, _ = build_sink_from(uri, CTX, where="--config config.yaml:7 receiver g:")
    o = built.options
    assert (o.greeting, o.times, o.token, o.insecure, o.ca_file) == (
        "moin",
        2,
        "s3cret",
        True,
        None,
    )
    assert built.uri.rest == "https://greeter.example/in"


def test_an_unknown_receiver_key_names_the_file_line_and_the_known_keys(throwaway, caplog):
    receiver = Receiver("g", "greeter", {"greting": "x"}, 12)
    with pytest.raises(UsageError) as caught:
        receiver_uri(receiver, Where("c.yaml", strict=True))
    message = str(caught.value)
    assert message.startswith("--config c.yaml:12: receiver 'g': unknown greeter option 'greting'")
    assert "greeting" in message and "repeat.times" in message and "(--strict)" in message
    # the original ignores it: so do we, aloud
    uri = receiver_uri(receiver, Where("c.yaml"))
    assert uri.scheme == "greet" and ("greting", "x") not in uri.query
    assert "c.yaml:12: receiver 'g': unknown greeter option 'greting' is ignored" in caplog.text


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("greet:?greting=x", "unknown parameter 'greting'; did you mean 'greeting'?"),
        ("greet:?times=0", "parameter times='0': expected a whole number of at least 1"),
        ("greet:?insecure=maybe", "parameter insecure='maybe': expected true or false"),
    ],
)
def test_uri_errors_come_from_the_declaration(throwaway, uri, message):
    with pytest.raises(UsageError, match=message.replace("?", r"\?")):
        build_sink(uri, CTX)


def test_a_parameter_given_twice_takes_the_first_as_kube_eventer_does(throwaway, caplog):
    sink, _ = build_sink("greet:?times=1&times=2&token=abc&token=def", CTX)
    assert (sink.options.times, sink.options.token) == (1, "abc")
    assert "parameter 'times' is given more than once; the first one counts" in caplog.text
    assert "abc" not in caplog.text and "def" not in caplog.text


def test_a_secret_value_is_never_echoed_in_an_error(throwaway):
    with pytest.raises(UsageError) as caught:
        spec.build(throwaway.Options, [("token", "a"), ("times", "x")], where="--sink greet")
    assert "times='x'" in str(caught.value)
    with pytest.raises(UsageError) as caught:
        spec.build(throwaway.Options, [("token_file", "/nonexistent/tok")], where="--sink greet")
    assert "cannot read /nonexistent/tok" in str(caught.value)


def test_shared_groups_are_declared_once_with_the_peers_spellings():
    for alias in ("caFile", "cacert", "ca", "tls_ca", "ssl_ca"):
        options, _ = spec.build(
            registry().by_scheme["kafka"].Options, [(alias, "/etc/ssl/ca.pem")], where="x"
        )
        assert options.ca_file == "/etc/ssl/ca.pem"
    names = {d.name for cls in registry().classes() for d in spec.declared(cls.Options)}
    assert not names & {"caFile", "cacert", "tls_ca", "certFile", "insecuressl"}


def test_every_sink_declares_what_its_docs_need():
    for cls in registry().classes():
        assert cls.summary and cls.guarantee and cls.usage, cls
        for d in spec.declared(cls.Options):
            assert d.meta.doc.endswith((".", ")")), (cls.scheme, d.name)
    # the options are typed objects, frozen after validation
    sink, _ = build_sink("sqlite:?retention=1h", CTX)
    with pytest.raises(AttributeError):
        sink.options.retention = 5  # type: ignore[misc]


def test_sinks_command_shows_one_sink(capsys):
    from shipper.cli import main

    assert main(["sinks", "kafka"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("kafka: ") and "dingtalk" not in out
    assert "ca_file" in out and "also: caFile, cacert" in out
    assert main(["sinks", "kafak"]) == 2
    assert "did you mean 'kafka'" in capsys.readouterr().err


def test_docs_are_generated_from_the_code():
    from tests.support.common import ROOT

    done = __import__("subprocess").run(
        [__import__("sys").executable, str(ROOT / "scripts" / "render-docs"), "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, textwrap.dedent(
        f"""\
        README's sink table or docs/sinks/ differ from the code; run scripts/render-docs.
        {done.stdout}"""
    )


def test_uri_keeps_vendor_query_for_passthrough_sinks():
    sink, _ = build_sink(
        "dingtalk:https://oapi.dingtalk.com/robot/send?access_token=T&level=Normal&label=c1", CTX
    )
    assert sink.leftover == [("access_token", "T")]
    assert sink.options.label == ["c1"] and sink.options.rate == ["20/1m"]
    assert Uri.parse("log", what="--sink").scheme == "log"
