"""The syslog sink in process: its RFC 5424 messages parsed by an independent grammar, the
URI and receiver forms, the size cut, and TCP's reconnect after the server hangs up (a local
listener on 127.0.0.1; the real rsyslog is in tests/integration/test_syslog_sink.py)."""

from __future__ import annotations

import re
import socket
import threading

import orjson
import pytest

from shipper.sinks.base import SinkContext, TransientError
from shipper.sinks.factory import build_sink
from shipper.uri import UsageError
from tests.support.notify import event

# RFC 5424 section 6, written from the ABNF (not from the sink's code)
SD_NAME = r'[!#-\\^-~&&[^= \]"]]{1,32}'
PARAM_VALUE = r'(?:[^"\\\]]|\\["\\\]])*'
RFC5424 = re.compile(
    r"<(?P<pri>\d{1,3})>1 (?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)|-)"
    r" (?P<host>[!-~]{1,255}) (?P<app>[!-~]{1,48}) (?P<proc>[!-~]{1,128}) (?P<msgid>[!-~]{1,32})"
    r' (?P<sd>-|(?:\[[!-~]+?(?: [!-~]+?="' + PARAM_VALUE + r'")*\])+)(?: (?P<msg>.*))?',
    re.S,
)


def sink(uri: str, cluster: str = "prod"):
    built, _ = build_sink(uri, SinkContext(cluster=cluster, state_dir=None))
    return built


def parse(data: bytes) -> dict:
    match = RFC5424.fullmatch(data.decode())
    assert match, data
    fields = match.groupdict()
    params = dict(re.findall(r' ([!-~]+?)="(' + PARAM_VALUE + ')"', fields["sd"]))
    fields["params"] = {k: re.sub(r"\\(.)", r"\1", v) for k, v in params.items()}
    return fields


def test_a_warning_is_local0_warning_with_reason_as_msgid_and_the_version_in_sd():
    s = sink("syslog:tcp://127.0.0.1:1?hostname=node x&app_name=k8s.event")
    e = event(reason="BackOff", message='say "hi" ] \\ ünïcode\nline')
    got = parse(s.message(e))
    assert int(got["pri"]) == 16 * 8 + 4  # local0.warning
    assert (got["host"], got["app"], got["proc"], got["msgid"]) == (
        "node_x", "k8s.event", "-", "BackOff",
    )  # fmt: skip
    assert got["ts"] == e.timestamp
    assert got["params"] == {
        "version": f"{e.uid}.1", "uid": e.uid, "resourceVersion": e.resource_version,
        "type": "Warning", "namespace": "shop", "kind": "Pod", "name": "web-1", "count": "1",
        "cluster": "prod",
    }  # fmt: skip
    assert got["msg"].startswith("\ufeff")
    document = orjson.loads(got["msg"][1:])
    assert document["message"] == e.message
    assert document["orchestrator"]["cluster"] == {"name": "prod"}


def test_normal_is_informational_facility_and_bom_are_parameters():
    s = sink("syslog:udp://h:514?facility=local3&bom=false&sd_id=k8s@99999")
    got = parse(s.message(event(type_="Normal", reason="Pulled image")))
    assert int(got["pri"]) == 19 * 8 + 6
    assert got["msgid"] == "Pulled_image"  # no spaces in MSGID
    assert got["sd"].startswith("[k8s@99999 ")
    assert got["msg"].startswith("{")


def test_a_long_message_is_cut_with_a_marker_within_max_size():
    s = sink("syslog:udp://h:514")
    data = s.message(event(message="é" * 5000))
    assert len(data) <= 2048 and data.endswith(b"...[truncated]")
    data.decode()  # cut on a character boundary
    assert parse(data)["params"]["count"] == "1"
    tcp = sink("syslog:tcp://h:514?max_size=100000")
    assert len(tcp.message(event(message="é" * 5000))) > 10000


def test_the_layout_is_the_msg():
    s = sink(
        'syslog:tcp://h:1?bom=false&layout={"r":"{{ .Reason }}","n":"{{ .InvolvedObject.Name }}"}'
    )
    assert orjson.loads(parse(s.message(event()))["msg"]) == {"n": "web-1", "r": "BackOff"}


@pytest.mark.parametrize(
    ("uri", "network", "target"),
    [
        ("syslog:udp://10.0.0.1", "udp", "udp://10.0.0.1:514"),
        ("syslog:tcp://h:601", "tcp", "tcp://h:601"),
        ("syslog:tls://h", "tls", "tls://h:6514"),
        ("syslog:?network=tcp&address=127.0.0.1:11514&tag=k8s.event", "tcp", "tcp://127.0.0.1:11514"),
        ("syslog://h:5514", "udp", "udp://h:5514"),
        ("syslog:h:5514?insecure=true", "tls", "tls://h:5514"),
    ],
)  # fmt: skip
def test_uri_forms(uri, network, target):
    s = sink(uri)
    assert (s.network, s.target()) == (network, target)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("syslog:", "no address given"),
        ("syslog:ftp://h:1", "'ftp': expected udp://, tcp:// or tls://"),
        ("syslog:tcp://h:99999", "expected HOST:PORT"),
        ("syslog:tcp://h:1?network=udp", "network=udp but the address says tcp://"),
        ("syslog:tcp://h:1?facility=local9", "parameter facility='local9'"),
        ("syslog:tcp://h:1?max_size=100", "expected at least 480"),
        ("syslog:tcp://h:1?sd_id=nopen", "expected NAME@ENTERPRISE-NUMBER"),
        ("syslog:tcp://h:1?cert_file=/etc/hostname", "give cert_file and key_file together"),
    ],
)
def test_bad_uris_are_one_line(uri, expected):
    with pytest.raises(UsageError) as caught:
        sink(uri)
    assert expected in str(caught.value) and "\n" not in str(caught.value)


class Listener:
    """A TCP server on 127.0.0.1 that reads octet-counted frames and can hang up."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.frames: list[bytes] = []
        self.conns: list[socket.socket] = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self.read, args=(conn,), daemon=True).start()

    def read(self, conn: socket.socket) -> None:
        buffer = b""
        while True:
            try:
                chunk = conn.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while b" " in buffer:
                length, _, rest = buffer.partition(b" ")
                if len(rest) < int(length):
                    break
                self.frames.append(rest[: int(length)])
                buffer = rest[int(length) :]

    def hang_up(self) -> None:
        for conn in self.conns:
            conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self.conns.clear()


def test_tcp_frames_and_a_hang_up_is_noticed_before_the_next_batch():
    from tests.support.common import wait_for

    listener = Listener()
    s = sink(f"syslog:tcp://127.0.0.1:{listener.port}")
    s.open()
    events = [event(message="two\nlines"), event()]
    assert s.write(events) == []
    wait_for(lambda: len(listener.frames) == 2)
    assert [parse(f)["params"]["uid"] for f in listener.frames] == [e.uid for e in events]
    listener.hang_up()
    wait_for(lambda: not s._alive(), 5, "the close seen")
    later = event()
    assert s.write([later]) == []  # reconnected first: nothing written into the dead socket
    wait_for(lambda: len(listener.frames) == 3)
    assert parse(listener.frames[-1])["params"]["uid"] == later.uid
    s.close()
    listener.server.close()


def test_a_refused_connection_is_transient_in_one_line():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    s = sink(f"syslog:tcp://127.0.0.1:{port}")
    with pytest.raises(TransientError) as caught:
        s.write([event()])
    assert (
        str(caught.value) == f"syslog tcp://127.0.0.1:{port}: cannot connect (Connection refused)"
    )
