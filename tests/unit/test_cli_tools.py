"""``check --events`` and ``query``, in process, on files and a store made here."""

from __future__ import annotations

import json

import pytest

from shipper.cli import main
from shipper.event import normalize
from shipper.sinks.base import SinkContext
from shipper.sinks.sqlite import SqliteOptions, SqliteSink
from shipper.uri import Uri


def core(uid: str, ns: str | None, kind: str, name: str, reason: str, type_: str = "Warning"):
    involved = {"kind": kind, "name": name} | ({"namespace": ns} if ns else {})
    return {
        "metadata": {"uid": uid, "resourceVersion": "1", "name": f"{name}.1",
                     "namespace": ns or "default", "creationTimestamp": "2026-12-01T10:00:00Z"},
        "involvedObject": involved, "reason": reason, "message": f"{reason} happened",
        "type": type_, "count": 2, "lastTimestamp": "2026-12-01T10:00:00Z",
    }  # fmt: skip


EVENTS = [
    core("u1", "shop", "Pod", "web-1", "BackOff"),
    core("u2", "kube-system", "Pod", "dns-1", "Pulled", "Normal"),
    core("u3", None, "Node", "node-a", "NodeNotReady"),
]


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "events.db"
    sink = SqliteSink(Uri("sqlite", str(path)), SqliteOptions(), [], SinkContext("c1", None))
    sink.open()
    sink.write([normalize(e, "ADDED") for e in EVENTS])
    sink.close()
    return path


def test_query_shows_the_namespace_column_and_takes_kubectl_spellings(store, capsys):
    assert main(["query", f"--db={store}", "-A", "--since=100000d"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["NAMESPACE", "LAST", "SEEN"]
    assert any(line.startswith("shop ") and "pod/web-1" in line for line in lines)
    assert main(["query", f"--db={store}", "--kind=pod", "--type=warning", "-n", "shop"]) == 0
    out = capsys.readouterr().out
    assert "pod/web-1" in out and "NAMESPACE" not in out and "dns-1" not in out
    assert main(["query", f"--db={store}", "-o", "yaml", "--kind=NODE"]) == 0
    assert "reason: NodeNotReady" in capsys.readouterr().out
    assert main(["query", f"--db={store}", "-A", "-n", "shop"]) == 2
    assert "not allowed with" in capsys.readouterr().err


def test_check_events_reads_a_list_json_lines_and_query_output(store, tmp_path, capsys):
    as_list = tmp_path / "list.json"
    as_list.write_text(json.dumps({"kind": "EventList", "items": EVENTS}))
    as_lines = tmp_path / "lines.jsonl"
    as_lines.write_text("".join(json.dumps({"type": "ADDED", "object": e}) + "\n" for e in EVENTS))
    assert main(["query", f"--db={store}", "-o", "json"]) == 0
    rows = tmp_path / "rows.json"
    rows.write_text(capsys.readouterr().out)
    for path in (as_list, as_lines, rows):
        assert main(["check", "--sink=log?namespaces=shop", f"--events={path}"]) == 0
        out = capsys.readouterr().out
        assert "pod/shop/web-1 -> log" in out and "pod/kube-system/dns-1 -> (none)" in out, path


def test_check_events_refuses_what_is_not_an_event(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(EVENTS[0]) + "\n" + json.dumps({"hello": "world"}) + "\n")
    assert main(["check", "--sink=log", f"--events={bad}"]) == 2
    err = capsys.readouterr().err
    assert "line 2 is not an Event" in err and len(err.strip().splitlines()) == 1


def test_setup_print_for_an_alias_shows_the_write_index_the_sink_makes(capsys):
    assert main(["setup", "--print", "elasticsearch:http://127.0.0.1:9?mode=alias&index=ev"]) == 0
    out = capsys.readouterr().out
    assert "PUT /_index_template/ev" in out
    first = out.index("PUT /ev-000001")
    assert json.loads(out[first:].split("\n", 1)[1].split("\nPUT ")[0]) == {
        "aliases": {"ev": {"is_write_index": True}}
    }
    assert main(["setup", "--print", "elasticsearch:http://127.0.0.1:9?mode=dated"]) == 0
    assert "000001" not in capsys.readouterr().out


def test_setup_print_shows_the_audit_index_as_the_documents_parameter_asks(capsys):
    uri = "elasticsearch:http://127.0.0.1:9?mode=alias&index=ev"
    assert main(["setup", "--print", uri]) == 0
    both = capsys.readouterr().out
    assert "PUT /_index_template/ev\n" in both and "PUT /_index_template/ev-audit\n" in both
    assert main(["setup", "--print", f"{uri}&documents=audit"]) == 0
    audit = capsys.readouterr().out
    assert "PUT /_index_template/ev-audit\n" in audit and "PUT /ev-audit-000001" in audit
    assert "PUT /_index_template/ev\n" not in audit and "PUT /ev-000001" not in audit
    assert main(["setup", "--print", f"{uri}&documents=events"]) == 0
    assert "-audit" not in capsys.readouterr().out
