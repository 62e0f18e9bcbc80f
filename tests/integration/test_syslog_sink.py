"""The syslog sink against the stack's rsyslog, fed by the real kube-apiserver.

rsyslog writes every message it receives as one JSON line (SYSLOG_OUTPUT: transport, pri,
facility, severity, hostname, app-name, msgid, structured-data, msg); each test sends with an
app-name of its own and reads back only those lines. What is shown: UDP, TCP and TLS deliver
RFC 5424 as rsyslog parses it (severity from the type, msgid = reason, the version in the SD,
the document as MSG); nothing lost or repeated across a clean restart and a 410, --start=all
re-sends with the same versions; an rsyslog outage over TCP loses nothing; a wrong CA is one
clear line; kubernetes-event-exporter's README syslog receiver loads as written and delivers.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.support.common import ROOT, STACK, stack_up, wait_for
from tests.support.kube import bump, core_event, etcd_compact, now

OUTAGE_SECONDS = float(os.environ.get("KES_OUTAGE_SECONDS", "60"))
CORPUS = ROOT / "tests" / "corpus" / "exporter" / "18-resmoio-readme-syslog.yaml"


@pytest.fixture(scope="session")
def syslog_env() -> dict[str, str]:
    return stack_up("syslog")


def received(env: dict[str, str], app: str) -> list[dict[str, Any]]:
    path = Path(env["SYSLOG_OUTPUT"])
    if not path.exists():
        return []
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record.get("app-name") == app:
            sd = dict(re.findall(r' ([^ =]+)="((?:[^"\\]|\\.)*)"', record["structured-data"]))
            record["sd"] = sd
            found.append(record)
    return found


def versions(records: list[dict[str, Any]]) -> Counter[str]:
    return Counter(r["sd"]["version"] for r in records)


def version_id(obj: dict[str, Any]) -> str:
    return f"{obj['metadata']['uid']}.{obj.get('count') or 1}"


@pytest.fixture
def run(shipper_factory, kube_env, namespace, tmp_path):
    def make(*args: str) -> Any:
        return shipper_factory([
            f"--source=kubernetes:?auth={kube_env['KUBECONFIG']}&namespaces={namespace}",
            *args, f"--state-dir={tmp_path / 'state'}", "--cluster-name=stack",
        ])  # fmt: skip

    return make


def shipped(shipper: Any, sink: str = "syslog", outcome: str = "shipped") -> float:
    return shipper.metric("kube_event_shipper_sink_events_total", sink=sink, outcome=outcome)


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_each_transport_delivers_rfc5424_as_rsyslog_parses_it(
    transport, syslog_env, run, kube_api, namespace
):
    app = f"kes-{uuid.uuid4().hex[:8]}"
    address = syslog_env[f"SYSLOG_{transport.upper()}"]
    ca = f"&ca_file={syslog_env['SYSLOG_CA']}" if transport == "tls" else ""
    shipper = run(
        f"--sink=syslog:{transport}://{address}?app_name={app}&hostname=node-x&facility=local4{ca}"
        "&flush_interval=0.2s"
    ).start()
    hostile = 'quotes " ] \\ and ünïcødé 🔥\nsecond line'
    warning = core_event(kube_api, namespace, reason="BackOff", obj="web-1", message=hostile)
    normal = core_event(kube_api, namespace, type_="Normal", reason="Pulled", obj="web-2")
    records = wait_for(lambda: len(received(syslog_env, app)) == 2 and received(syslog_env, app),
                       what="two messages at rsyslog")  # fmt: skip
    assert shipper.stop() == 0
    by_reason = {r["msgid"]: r for r in records}
    w, n = by_reason["BackOff"], by_reason["Pulled"]
    assert (w["transport"], w["facility"], w["severity"], n["severity"]) == (
        transport,
        "20",
        "4",
        "6",
    )
    assert (w["hostname"], w["version"]) == ("node-x", "1")
    assert w["sd"]["version"] == version_id(warning) and n["sd"]["uid"] == normal["metadata"]["uid"]
    assert w["sd"]["namespace"] == namespace and w["sd"]["cluster"] == "stack"
    assert w["msg"].startswith("\ufeff")
    document = json.loads(w["msg"][1:])
    assert document["message"] == hostile
    assert document["kubernetes"]["event"]["metadata"]["uid"] == warning["metadata"]["uid"]


def test_tcp_once_across_restart_and_410_and_start_all_resends_same_versions(
    syslog_env, run, kube_api, kube_env, namespace
):
    app = f"kes-{uuid.uuid4().hex[:8]}"
    shipper = run(
        f"--sink=syslog:tcp://{syslog_env['SYSLOG_TCP']}?app_name={app}&flush_interval=0.2s"
    )
    shipper.start()
    first = [core_event(kube_api, namespace, obj=f"p{i}") for i in range(3)]
    update = bump(kube_api, namespace, first[0]["metadata"]["name"], 2, now(2))
    wait_for(lambda: len(received(syslog_env, app)) == 4, what="4 versions")
    shipper.proc.kill()  # SIGKILL: the checkpoint may be behind, repeats are allowed
    shipper.proc.wait()
    shipper.start()
    wait_for(lambda: shipper.ready(), what="restarted")
    assert shipper.stop() == 0
    after_crash = versions(received(syslog_env, app))
    assert set(after_crash) == {version_id(o) for o in [*first, update]}

    during = core_event(kube_api, namespace, obj="q0")
    etcd_compact(kube_env["ETCD_URL"])
    shipper.start()
    wait_for(lambda: version_id(during) in versions(received(syslog_env, app)), what="during")
    time.sleep(1.5)
    assert shipper.stop() == 0
    # a 410 (compacted past the checkpoint) or a resume the watch cache still serves: either
    # way only the version made while stopped is sent
    now_seen = versions(received(syslog_env, app))
    assert now_seen - after_crash == Counter({version_id(during): 1})  # only the new one

    shipper.start("--start=all")
    wait_for(lambda: shipped(shipper) == 4, what="the 4 retained events re-sent")
    assert shipper.stop() == 0
    final = versions(received(syslog_env, app))
    current = {version_id(o) for o in (update, first[1], first[2], during)}
    assert {v for v in final if final[v] > now_seen[v]} == current


def test_an_event_the_layout_fails_on_is_dead_lettered_alone(
    syslog_env, run, kube_api, namespace, tmp_path
):
    """rsyslog never refuses a message (the protocol has no answer); what can refuse one event
    is its layout, and that event alone goes to the dead letters."""
    app = f"kes-{uuid.uuid4().hex[:8]}"
    layout = quote(
        '{"r":"{{ if eq .Reason \\"Poison\\" }}{{ fail \\"poison\\" }}{{ end }}{{ .Reason }}"}'
    )
    shipper = run(
        f"--sink=syslog:tcp://{syslog_env['SYSLOG_TCP']}?app_name={app}&flush_interval=0.2s"
        f"&layout={layout}"
    ).start()
    poison = core_event(kube_api, namespace, obj="x0", reason="Poison")
    good = core_event(kube_api, namespace, obj="x1", reason="BackOff")
    wait_for(lambda: shipped(shipper, outcome="dead_lettered") == 1, what="one dead letter")
    wait_for(lambda: len(received(syslog_env, app)) == 1, what="the good one")
    assert shipper.stop() == 0
    [record] = received(syslog_env, app)
    assert record["sd"]["version"] == version_id(good)
    assert json.loads(record["msg"].removeprefix("\ufeff")) == {"r": "BackOff"}  # the BOM
    [letter] = (tmp_path / "state" / "dead-letters" / "syslog.jsonl").read_text().splitlines()
    assert json.loads(letter)["document"]["kubernetes"]["event"]["metadata"]["uid"] == poison["metadata"]["uid"]  # fmt: skip
    assert "poison" in json.loads(letter)["reason"]


def stack(command: str, component: str) -> None:
    subprocess.run([sys.executable, str(STACK), command, component], cwd=ROOT, check=True,
                   capture_output=True)  # fmt: skip


def test_an_rsyslog_outage_over_tcp_loses_nothing(syslog_env, run, kube_api, namespace):
    app = f"kes-{uuid.uuid4().hex[:8]}"
    shipper = run(
        f"--sink=syslog:tcp://{syslog_env['SYSLOG_TCP']}?app_name={app}&flush_interval=0.2s"
        "&max_backoff=5s&timeout=3s"
    ).start()
    before = [core_event(kube_api, namespace, obj=f"a{i}") for i in range(2)]
    wait_for(lambda: len(received(syslog_env, app)) == 2, what="two before")
    stack("down", "syslog")
    try:
        down_at = time.monotonic()
        during = [core_event(kube_api, namespace, obj=f"b{i}") for i in range(5)]
        wait_for(lambda: shipper.metric("kube_event_shipper_sink_up", sink="syslog") == 0,
                 60, "the sink to notice")  # fmt: skip
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
        assert shipper.proc.poll() is None and shipped(shipper, outcome="retried") > 0
    finally:
        stack_up("syslog")
    expected = {version_id(o) for o in [*before, *during]}
    wait_for(lambda: set(versions(received(syslog_env, app))) == expected, 120,
             "every version made during the outage")  # fmt: skip
    assert shipper.stop() == 0
    assert "Traceback" not in shipper.stderr()


def test_a_wrong_ca_is_one_clear_line(syslog_env, run, kube_api, namespace, tmp_path):
    import certifi

    shipper = run(
        f"--sink=syslog:tls://{syslog_env['SYSLOG_TLS']}?ca_file={certifi.where()}&timeout=3s",
        "--grace-period=2s",
    ).start()
    core_event(kube_api, namespace)
    wait_for(lambda: "certificate verify failed" in shipper.stderr(), 60, "the TLS failure")
    assert shipper.stop() == 0
    lines = [line for line in shipper.stderr().splitlines() if "certificate verify failed" in line]
    assert f"syslog tls://{syslog_env['SYSLOG_TLS']}: TLS handshake failed (certificate verify failed" in lines[0]  # fmt: skip
    assert "Traceback" not in shipper.stderr()


def test_the_exporter_readme_syslog_receiver_loads_as_written_and_delivers(
    syslog_env, run, kube_api, namespace, tmp_path
):
    text = CORPUS.read_text()
    receivers = text[text.index("receivers:") :]
    assert 'address: "127.0.0.1:11514"' in receivers
    config = tmp_path / "config.yaml"
    config.write_text(
        "route: {routes: [{match: [{receiver: syslog}]}]}\n"
        + receivers.replace("127.0.0.1:11514", syslog_env["SYSLOG_TCP"])  # our rsyslog's port
    )
    shipper = run(f"--config={config}").start()
    made = core_event(kube_api, namespace, type_="Normal", reason="Started", obj="c0")
    [record] = wait_for(lambda: received(syslog_env, "k8s.event") and [
        r for r in received(syslog_env, "k8s.event") if r["sd"]["uid"] == made["metadata"]["uid"]
    ], what="the event at rsyslog")  # fmt: skip
    assert shipper.stop() == 0
    assert (record["transport"], record["facility"], record["msgid"]) == ("tcp", "16", "Started")
    assert textwrap.dedent("").strip() == ""
