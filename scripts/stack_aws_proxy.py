#!/usr/bin/env python3
"""The test stack's AWS front door: verifies SigV4 like AWS does, injects faults, forwards to moto.

moto does not check request signatures, so `scripts/stack up aws` puts this proxy in front of
it. Standard library only; scripts/stack runs it as its own process.

Every request must carry an `AWS4-HMAC-SHA256` Authorization header for the stack's access key,
signed with its secret for the stack's region. The signature is recomputed here from AWS's
documented algorithm (https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html),
independently of botocore's signer. A request that fails gets HTTP 403 in its protocol's error
shape, as AWS answers:

    protocol (services)                     unknown key / session token   bad signature
    JSON (kinesis firehose events logs)     UnrecognizedClientException   InvalidSignatureException
    JSON, query-compatible (sqs)            InvalidClientTokenId          SignatureDoesNotMatch
    query XML (sns, sqs legacy query)       InvalidClientTokenId          SignatureDoesNotMatch
    REST XML (s3)                           InvalidAccessKeyId            SignatureDoesNotMatch

No Authorization header at all: MissingAuthenticationToken (JSON services:
MissingAuthenticationTokenException; S3: AccessDenied). (SQS's JSON errors carry the query code
in the x-amzn-query-error header, which botocore prefers.) Valid requests go to moto
unchanged, unless a fault set on the admin port matches.

Admin port (plain JSON; loopback):
    POST /_fault     {"service": "sqs", "action": "SendMessageBatch", "fail_entries": [1],
                      "error_code": "InternalError", "times": 1, "match": "my-queue"}
        fail_entries: indexes (0-based) of the batch's entries to fail (SQS: JSON protocol, as
            botocore speaks it, not the legacy query protocol). Those entries are taken
            out of the request before moto sees it (so they are really not stored) and put back
            into the reply as failed, in the API's own shape: SQS *Batch `Failed`, SNS
            PublishBatch `Failed`, Kinesis PutRecords / Firehose PutRecordBatch / EventBridge
            PutEvents `ErrorCode`+`ErrorMessage` at the entry's position and the failed count,
            CloudWatch Logs PutLogEvents `rejectedLogEventsInfo` (it can only name a prefix or a
            suffix: error_code tooOldLogEventEndIndex / expiredLogEventEndIndex drop entries
            0..max(fail_entries), tooNewLogEventStartIndex drops min(fail_entries)..end; the
            default is tooOld when 0 is listed, else tooNew).
        without fail_entries: the whole request fails with error_code (status: default 500 for
            codes naming Internal, 503 for Unavailable, else 400), in the protocol's error shape.
        times (default 1): how many matching requests it hits. match: a substring the request
            body must contain (e.g. a queue or stream name), so tests running at once do not
            steal each other's faults. message, status: optional.
    GET /_fault | DELETE /_fault     the faults still armed | disarm all
    GET /_requests | DELETE /_requests   {service, action, status, fault} of requests so far
    GET /_health     200 once moto answers
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import hmac
import http.client
import json
import sys
import threading
import uuid
import xml.etree.ElementTree as ET
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

# Not passed on: hop-by-hop headers, and those each side's HTTP server sets itself.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"}
HOP_BY_HOP |= {"transfer-encoding", "content-length", "expect", "server", "date"}
SNS_NS = "http://sns.amazonaws.com/doc/2010-03-31/"
ET.register_namespace("", SNS_NS)
MAX_SKEW = dt.timedelta(minutes=15)
BAD_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details."
)
BAD_TOKEN = "The security token included in the request is invalid."


class Refusal(Exception):
    """A request refused before it reaches moto: `kind` is "missing", "token" or "signature"."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind, self.message = kind, message


# ---------------------------------------------------------------------------------------------
# SigV4, from the AWS documentation


def sign(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def uri_encode(text: str) -> str:
    return quote(text, safe="-_.~")


def canonical_query(query: str) -> str:
    pairs = []
    for item in query.split("&") if query else []:
        name, _, value = item.partition("=")
        pairs.append((uri_encode(unquote(name)), uri_encode(unquote(value))))
    return "&".join(f"{n}={v}" for n, v in sorted(pairs))


def verify_sigv4(
    method: str, target: str, headers: dict[str, str], body: bytes, creds: tuple[str, str, str]
) -> str:
    """Check the request's signature; return the service of its credential scope."""
    access_key, secret, region = creds
    auth = headers.get("authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        raise Refusal(
            "missing", "Missing Authentication Token (an AWS4-HMAC-SHA256 Authorization header)."
        )
    try:
        fields = dict(p.strip().split("=", 1) for p in auth.split(" ", 1)[1].split(","))
        key_id, date, scope_region, service, terminal = fields["Credential"].split("/")
        signed = fields["SignedHeaders"].split(";")
        signature = fields["Signature"]
    except (KeyError, ValueError):
        raise Refusal("signature", f"Malformed Authorization header: {auth[:200]}") from None
    if key_id != access_key or "x-amz-security-token" in headers:
        raise Refusal("token", BAD_TOKEN)
    if terminal != "aws4_request" or scope_region != region:
        wrong = f"Credential should be scoped to a valid region, not '{scope_region}'."
        raise Refusal("signature", wrong)
    amz_date = headers.get("x-amz-date", "")
    try:
        when = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        raise Refusal("signature", "Missing or malformed X-Amz-Date header.") from None
    if not amz_date.startswith(date):
        raise Refusal("signature", "Credential date does not match X-Amz-Date.")
    if abs(dt.datetime.now(dt.UTC) - when) > MAX_SKEW:
        raise Refusal("signature", f"Signature expired: {amz_date} is more than 15 min off.")
    if "host" not in signed:
        raise Refusal("signature", "The Host header must be signed.")
    payload_hash = headers.get("x-amz-content-sha256") or hashlib.sha256(body).hexdigest()
    if payload_hash != "UNSIGNED-PAYLOAD" and payload_hash != hashlib.sha256(body).hexdigest():
        raise Refusal("signature", "The provided x-amz-content-sha256 does not match the body.")
    url = urlsplit(target)
    path = url.path or "/"
    # Every service but S3 encodes the (already encoded) path a second time.
    canonical_uri = path if service == "s3" else quote(path, safe="/-_.~")
    canonical_headers = "".join(
        f"{name}:{' '.join(headers.get(name, '').split())}\n" for name in signed
    )
    canonical_request = (
        f"{method}\n{canonical_uri}\n{canonical_query(url.query)}\n"
        f"{canonical_headers}\n{';'.join(signed)}\n{payload_hash}"
    )
    scope = f"{date}/{region}/{service}/aws4_request"
    digest = hashlib.sha256(canonical_request.encode()).hexdigest()
    string_to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{digest}"
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, "aws4_request"):
        key = sign(key, part)
    expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise Refusal("signature", BAD_SIGNATURE)
    return service


# ---------------------------------------------------------------------------------------------
# Protocols: what a request is, and errors in its shape


def protocol_of(headers: dict[str, str], body: bytes) -> str:
    target = headers.get("x-amz-target", "")
    if target:
        return "json-sqs" if target.startswith("AmazonSQS.") else "json"
    if "x-www-form-urlencoded" in headers.get("content-type", "") and b"Action=" in body:
        return "query"
    return "rest-xml"


def action_of(method: str, target: str, headers: dict[str, str], body: bytes) -> str:
    if headers.get("x-amz-target"):
        return headers["x-amz-target"].rsplit(".", 1)[-1]
    if protocol_of(headers, body) == "query":
        return dict(parse_qsl(body.decode())).get("Action", "")
    return f"{method} {urlsplit(target).path}"


AUTH_CODES = {  # protocol -> Refusal.kind -> error code
    "json": {"missing": "MissingAuthenticationTokenException",
             "token": "UnrecognizedClientException", "signature": "InvalidSignatureException"},
    "json-sqs": {"missing": "MissingAuthenticationToken", "token": "InvalidClientTokenId",
                 "signature": "SignatureDoesNotMatch"},
    "query": {"missing": "MissingAuthenticationToken", "token": "InvalidClientTokenId",
              "signature": "SignatureDoesNotMatch"},
    "rest-xml": {"missing": "AccessDenied", "token": "InvalidAccessKeyId",
                 "signature": "SignatureDoesNotMatch"},
}  # fmt: skip


def error_reply(protocol: str, status: int, code: str, message: str) -> Reply:
    request_id = str(uuid.uuid4())
    headers = {"x-amzn-RequestId": request_id}
    fault = "Receiver" if status >= 500 else "Sender"
    if protocol.startswith("json"):
        body = {"__type": code, "message": message}
        if protocol == "json-sqs":  # awsQueryCompatible: the query code rides in a header
            body["__type"] = f"com.amazon.coral.service#{code}"
            headers["x-amzn-query-error"] = f"{code};{fault}"
        ctype = "application/x-amz-json-" + ("1.0" if protocol == "json-sqs" else "1.1")
        return Reply(status, {**headers, "Content-Type": ctype}, json.dumps(body).encode())
    error = f"<Code>{code}</Code><Message>{xml_escape(message)}</Message>"
    if protocol == "query":
        text = (
            f'<ErrorResponse xmlns="{SNS_NS}"><Error><Type>{fault}</Type>{error}</Error>'
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        )
    else:
        text = f"<Error>{error}<RequestId>{request_id}</RequestId></Error>"
    return Reply(status, {**headers, "Content-Type": "text/xml"}, text.encode())


def xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body


# ---------------------------------------------------------------------------------------------
# Per-entry faults: take entries out of the request, put them back into the reply as failed


def split_json(body: bytes, key: str, failed: set[int]) -> tuple[dict, list, list[int]]:
    request = json.loads(body)
    entries = request.get(key) or []
    kept = [i for i in range(len(entries)) if i not in failed]
    request[key] = [entries[i] for i in kept]
    return request, entries, kept


class Batch:
    """How one batch API carries its entries and reports failed ones."""

    def __init__(self, fault: dict, forward: Any) -> None:
        self.fault, self.forward = fault, forward
        self.code = fault["error_code"]
        self.message = fault.get("message") or f"{self.code} (injected by the stack's AWS proxy)"

    def run(self, body: bytes) -> Reply:
        raise NotImplementedError


class SqsBatch(Batch):  # SendMessageBatch, DeleteMessageBatch, ChangeMessageVisibilityBatch
    def run(self, body: bytes) -> Reply:
        request, entries, kept = split_json(body, "Entries", set(self.fault["fail_entries"]))
        reply = self.forward(json.dumps(request).encode()) if kept else None
        if reply is not None and reply.status != 200:
            return reply
        result = json.loads(reply.body) if reply else {"Successful": []}
        result.setdefault("Failed", [])
        for i, entry in enumerate(entries):
            if i not in kept:
                result["Failed"].append(
                    {
                        "Id": entry.get("Id"),
                        "SenderFault": False,
                        "Code": self.code,
                        "Message": self.message,
                    }
                )
        headers = reply.headers if reply else {"Content-Type": "application/x-amz-json-1.0"}
        return Reply(200, headers, json.dumps(result).encode())


class PositionalBatch(Batch):  # Kinesis PutRecords, Firehose PutRecordBatch, EventBridge PutEvents
    keys = ("", "", "")  # request list, reply list, failed count

    def run(self, body: bytes) -> Reply:
        req_key, reply_key, count_key = self.keys
        request, entries, kept = split_json(body, req_key, set(self.fault["fail_entries"]))
        reply = self.forward(json.dumps(request).encode()) if kept else None
        if reply is not None and reply.status != 200:
            return reply
        result = json.loads(reply.body) if reply else {count_key: 0}
        done = iter(result.get(reply_key, []))
        merged = [
            next(done) if i in kept else {"ErrorCode": self.code, "ErrorMessage": self.message}
            for i in range(len(entries))
        ]
        result[reply_key] = merged
        result[count_key] = sum(1 for r in merged if "ErrorCode" in r)
        headers = reply.headers if reply else {"Content-Type": "application/x-amz-json-1.1"}
        return Reply(200, headers, json.dumps(result).encode())


class KinesisBatch(PositionalBatch):
    keys = ("Records", "Records", "FailedRecordCount")


class FirehoseBatch(PositionalBatch):
    keys = ("Records", "RequestResponses", "FailedPutCount")


class EventsBatch(PositionalBatch):
    keys = ("Entries", "Entries", "FailedEntryCount")


LOGS_REJECTED = ("tooOldLogEventEndIndex", "expiredLogEventEndIndex", "tooNewLogEventStartIndex")


class LogsBatch(Batch):  # PutLogEvents: rejectedLogEventsInfo names a prefix or a suffix
    def run(self, body: bytes) -> Reply:
        indexes = self.fault["fail_entries"]
        field = self.fault["error_code"]
        if field not in LOGS_REJECTED:
            field = "tooOldLogEventEndIndex" if 0 in indexes else "tooNewLogEventStartIndex"
        n = len(json.loads(body).get("logEvents") or [])
        if field == "tooNewLogEventStartIndex":
            index = min(indexes)
            failed = set(range(index, n))
        else:
            index = max(indexes)
            failed = set(range(index + 1))
        request, _, kept = split_json(body, "logEvents", failed)
        reply = self.forward(json.dumps(request).encode()) if kept else None
        if reply is not None and reply.status != 200:
            return reply
        result = json.loads(reply.body) if reply else {}
        result["rejectedLogEventsInfo"] = {field: index}
        headers = reply.headers if reply else {"Content-Type": "application/x-amz-json-1.1"}
        return Reply(200, headers, json.dumps(result).encode())


class SnsBatch(Batch):  # PublishBatch, query protocol: form members in, XML members out
    prefix = "PublishBatchRequestEntries.member."

    def run(self, body: bytes) -> Reply:
        failed = set(self.fault["fail_entries"])
        params = parse_qsl(body.decode(), keep_blank_values=True)
        members: dict[int, dict[str, str]] = {}
        other = []
        for name, value in params:
            if name.startswith(self.prefix):
                number, _, rest = name[len(self.prefix) :].partition(".")
                members.setdefault(int(number), {})[rest] = value
            else:
                other.append((name, value))
        ordered = [members[k] for k in sorted(members)]
        kept = [m for i, m in enumerate(ordered) if i not in failed]
        for n, member in enumerate(kept, 1):
            other += [(f"{self.prefix}{n}.{rest}", value) for rest, value in member.items()]
        reply = self.forward(urlencode(other, quote_via=quote).encode()) if kept else None
        if reply is not None and reply.status != 200:
            return reply
        ns = f"{{{SNS_NS}}}"
        if reply is not None:
            root = ET.fromstring(reply.body)
        else:
            root = ET.fromstring(
                f'<PublishBatchResponse xmlns="{SNS_NS}"><PublishBatchResult>'
                "<Successful/><Failed/></PublishBatchResult><ResponseMetadata>"
                f"<RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
                "</PublishBatchResponse>"
            )
        result = root.find(f"{ns}PublishBatchResult")
        assert result is not None
        failed_list = result.find(f"{ns}Failed")
        if failed_list is None:
            failed_list = ET.SubElement(result, f"{ns}Failed")
        for i, member in enumerate(ordered):
            if i in failed:
                item = ET.SubElement(failed_list, f"{ns}member")
                for tag, text in (
                    ("Id", member.get("Id", "")),
                    ("Code", self.code),
                    ("Message", self.message),
                    ("SenderFault", "false"),
                ):
                    ET.SubElement(item, f"{ns}{tag}").text = text
        headers = reply.headers if reply else {"Content-Type": "text/xml"}
        return Reply(200, headers, ET.tostring(root, encoding="utf-8"))


BATCHES: dict[tuple[str, str], type[Batch]] = {
    ("sqs", "SendMessageBatch"): SqsBatch,
    ("sqs", "DeleteMessageBatch"): SqsBatch,
    ("sqs", "ChangeMessageVisibilityBatch"): SqsBatch,
    ("sns", "PublishBatch"): SnsBatch,
    ("kinesis", "PutRecords"): KinesisBatch,
    ("firehose", "PutRecordBatch"): FirehoseBatch,
    ("events", "PutEvents"): EventsBatch,
    ("logs", "PutLogEvents"): LogsBatch,
}


# ---------------------------------------------------------------------------------------------
# The servers


class State:
    def __init__(self, args: argparse.Namespace) -> None:
        self.creds = (args.access_key, args.secret_key, args.region)
        self.upstream = urlsplit(args.upstream)
        self.lock = threading.Lock()
        self.faults: list[dict] = []
        self.requests: deque[dict] = deque(maxlen=10_000)

    def take_fault(self, service: str, action: str, body: bytes) -> dict | None:
        with self.lock:
            for fault in self.faults:
                if (fault["service"], fault["action"]) != (service, action):
                    continue
                if fault.get("match") and fault["match"].encode() not in body:
                    continue
                fault["times"] -= 1
                if fault["times"] <= 0:
                    self.faults.remove(fault)
                return dict(fault)
        return None

    def upstream_request(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Reply:
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=120)
        try:
            headers = {**headers, "Content-Length": str(len(body))}
            conn.request(method, target, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            out = {k: v for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP}
            if method == "HEAD" and resp.getheader("content-length"):
                out["Content-Length"] = resp.getheader("content-length", "")
            return Reply(resp.status, out, data)
        finally:
            conn.close()


def make_proxy_handler(state: State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def handle_any(self) -> None:
            if self.headers.get("transfer-encoding", "").lower() == "chunked":
                text = b"chunked bodies are not supported by the stack proxy"
                self.send(Reply(411, {"Content-Type": "text/plain"}, text))
                return
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            headers = {k.lower(): ", ".join(self.headers.get_all(k) or []) for k in self.headers}
            protocol = protocol_of(headers, body)
            action = action_of(self.command, self.path, headers, body)
            service, fault = "?", None
            try:
                service = verify_sigv4(self.command, self.path, headers, body, state.creds)
            except Refusal as refusal:
                code = AUTH_CODES[protocol][refusal.kind]
                reply = error_reply(protocol, 403, code, refusal.message)
                print(f"refused {action}: {code}: {refusal.message}", flush=True)
            else:
                fault = state.take_fault(service, action, body)
                try:
                    reply = self.answer(protocol, service, action, headers, body, fault)
                except (OSError, ValueError, KeyError, ET.ParseError) as e:
                    print(f"proxy failure on {service} {action}: {e!r}", flush=True)
                    reply = error_reply(protocol, 500, "InternalFailure", f"stack proxy: {e!r}")
            state.requests.append(
                {
                    "service": service,
                    "action": action,
                    "status": reply.status,
                    "fault": fault is not None,
                }
            )
            self.send(reply)

        def answer(
            self,
            protocol: str,
            service: str,
            action: str,
            headers: dict[str, str],
            body: bytes,
            fault: dict | None,
        ) -> Reply:
            forward_headers = {k: v for k, v in headers.items() if k not in HOP_BY_HOP}

            def forward(new_body: bytes) -> Reply:
                return state.upstream_request(self.command, self.path, forward_headers, new_body)

            if fault is None:
                return forward(body)
            print(f"fault on {service} {action}: {json.dumps(fault)}", flush=True)
            if fault.get("fail_entries") is not None:
                return BATCHES[(service, action)](fault, forward).run(body)
            code = fault["error_code"]
            status = fault.get("status") or (
                500 if "Internal" in code else 503 if "Unavailable" in code else 400
            )
            message = fault.get("message") or f"{code} (injected by the stack's AWS proxy)"
            return error_reply(protocol, status, code, message)

        def send(self, reply: Reply) -> None:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                if name.lower() != "content-length":
                    self.send_header(name, value)
            length = reply.headers.get("Content-Length") if self.command == "HEAD" else None
            self.send_header("Content-Length", length or str(len(reply.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = handle_any

    return Handler


def check_fault(fault: Any) -> str | None:
    """What is wrong with a POSTed fault, or None."""
    if not isinstance(fault, dict):
        return "a JSON object is expected"
    for key in ("service", "action", "error_code"):
        if not isinstance(fault.get(key), str) or not fault[key]:
            return f"{key} (a string) is required"
    entries = fault.get("fail_entries")
    if entries is not None:
        if (
            not isinstance(entries, list)
            or not entries
            or not all(isinstance(i, int) and i >= 0 for i in entries)
        ):
            return "fail_entries must be a non-empty list of entry indexes (0-based)"
        if (fault["service"], fault["action"]) not in BATCHES:
            known = ", ".join(f"{s} {a}" for s, a in BATCHES)
            return f"per-entry faults exist for: {known}"
    if not isinstance(fault.get("times", 1), int) or fault.get("times", 1) < 1:
        return "times must be a positive integer"
    return None


def make_admin_handler(state: State) -> type[BaseHTTPRequestHandler]:
    class Admin(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def reply(self, status: int, data: Any) -> None:
            body = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/_fault":
                with state.lock:
                    self.reply(200, list(state.faults))
            elif self.path == "/_requests":
                self.reply(200, list(state.requests))
            elif self.path == "/_health":
                try:
                    state.upstream_request("GET", "/moto-api/", {}, b"")
                except OSError as e:
                    self.reply(503, {"moto": str(e)})
                else:
                    self.reply(200, {"moto": "ok"})
            else:
                self.reply(404, {"error": "unknown path"})

        def do_POST(self) -> None:
            if self.path != "/_fault":
                self.reply(404, {"error": "unknown path"})
                return
            try:
                fault = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
            except ValueError:
                fault = None
            problem = check_fault(fault)
            if problem:
                self.reply(400, {"error": problem})
                return
            fault.setdefault("times", 1)
            with state.lock:
                state.faults.append(fault)
            self.reply(200, fault)

        def do_DELETE(self) -> None:
            if self.path == "/_fault":
                with state.lock:
                    state.faults.clear()
            elif self.path == "/_requests":
                state.requests.clear()
            else:
                self.reply(404, {"error": "unknown path"})
                return
            self.reply(200, {})

    return Admin


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--admin-port", type=int, required=True)
    ap.add_argument("--upstream", required=True, help="moto's URL, e.g. http://127.0.0.1:24567")
    ap.add_argument("--region", required=True)
    ap.add_argument("--access-key", required=True)
    ap.add_argument("--secret-key", required=True)
    ap.add_argument("--rev", help="ignored (scripts/stack passes a hash of this file)")
    args = ap.parse_args(argv)
    state = State(args)
    proxy = ThreadingHTTPServer(("127.0.0.1", args.port), make_proxy_handler(state))
    admin = ThreadingHTTPServer(("127.0.0.1", args.admin_port), make_admin_handler(state))
    proxy.daemon_threads = admin.daemon_threads = True
    threading.Thread(target=admin.serve_forever, daemon=True).start()
    print(
        f"AWS proxy on 127.0.0.1:{args.port} -> {args.upstream}, admin on "
        f"127.0.0.1:{args.admin_port}",
        flush=True,
    )
    proxy.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
