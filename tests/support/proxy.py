"""A checking reverse proxy in front of a real server: TLS, basic auth, client certs, AWS SigV4.

Amazon OpenSearch Service and secured clusters cannot run here, so the test stack's plain HTTP
servers stand behind this proxy, which enforces what those would: it verifies the request the way
the real service does (SigV4 recomputed from AWS's documented algorithm, independently of
botocore), refuses what fails (401/403), and forwards the rest to the real server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import urllib3


@dataclass
class Checks:
    basic: tuple[str, str] | None = None
    sigv4: tuple[str, str, str, str] | None = None  # access key, secret, region, service
    #: statuses to answer, in order, to requests whose path contains the key (then forward)
    inject: dict[str, list[int]] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)  # "METHOD /path -> status"
    refused: list[str] = field(default_factory=list)


def sigv4_problem(
    method: str, target: str, headers: dict[str, str], body: bytes, creds: tuple[str, str, str, str]
) -> str | None:
    """None if the request carries a valid AWS Signature Version 4, else what is wrong.

    https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html
    """
    access_key, secret, region, service = creds
    auth = headers.get("authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return "no AWS4-HMAC-SHA256 Authorization header"
    parts = dict(item.strip().split("=", 1) for item in auth[len("AWS4-HMAC-SHA256 ") :].split(","))
    key_id, date, cred_region, cred_service, terminal = parts["Credential"].split("/")
    if (key_id, cred_region, cred_service, terminal) != (
        access_key,
        region,
        service,
        "aws4_request",
    ):
        return f"wrong credential scope {parts['Credential']}"
    amz_date = headers.get("x-amz-date", "")
    if not amz_date.startswith(date):
        return "x-amz-date does not match the credential date"
    payload_hash = hashlib.sha256(body).hexdigest()
    if headers.get("x-amz-content-sha256", payload_hash) != payload_hash:
        return "x-amz-content-sha256 does not match the body"
    signed = parts["SignedHeaders"].split(";")
    if "host" not in signed:
        return "host is not signed"
    url = urlsplit(target)
    canonical_query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
        for k, v in sorted(parse_qsl(url.query, keep_blank_values=True))
    )
    canonical_headers = "".join(
        f"{name}:{' '.join(headers.get(name, '').split())}\n" for name in signed
    )
    canonical_request = "\n".join(
        [
            method,
            quote(url.path or "/", safe="/-_.~%"),
            canonical_query,
            canonical_headers,
            ";".join(signed),
            payload_hash,
        ]
    )
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            amz_date,
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, parts["Signature"]):
        return "signature does not match"
    return None


class CheckingProxy:
    """``with CheckingProxy(upstream, checks, tls=...) as proxy: proxy.url``."""

    def __init__(self, upstream: str, checks: Checks, tls: ssl.SSLContext | None = None) -> None:
        self.upstream, self.checks = upstream.rstrip("/"), checks
        pool = urllib3.PoolManager(retries=False, timeout=30.0)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def handle_any(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                problem = proxy.problem(self.command, self.path, headers, body)
                if problem:
                    proxy.checks.refused.append(f"{self.command} {self.path}: {problem}")
                    status, data, ctype = problem[0], problem[1].encode(), "application/json"
                else:
                    reply = pool.request(
                        self.command,
                        proxy.upstream + self.path,
                        body=body or None,
                        headers={
                            k: v for k, v in headers.items() if k in ("content-type", "accept")
                        },
                    )
                    status, data = reply.status, reply.data
                    ctype = reply.headers.get("content-type", "application/json")
                proxy.checks.seen.append(f"{self.command} {self.path} -> {status}")
                self.send_response(status)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = handle_any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def problem(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Any:
        for fragment, statuses in self.checks.inject.items():
            if fragment in target and statuses:
                status = statuses.pop(0)
                kind = "es_rejected_execution_exception" if status == 429 else "unavailable"
                error = {
                    "error": {"type": kind, "reason": "injected by the test"},
                    "status": status,
                }
                return status, json.dumps(error)
        if self.checks.basic is not None:
            wanted = base64.b64encode(":".join(self.checks.basic).encode()).decode()
            if headers.get("authorization") != f"Basic {wanted}":
                return 401, '{"error":"missing or wrong basic auth"}'
        if self.checks.sigv4 is not None:
            wrong = sigv4_problem(method, target, headers, body, self.checks.sigv4)
            if wrong:
                return (
                    403,
                    '{"message":"The request signature we calculated does not match: '
                    + wrong
                    + '"}',
                )
        return None

    def __enter__(self) -> CheckingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_pki(folder: Path) -> Pki:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, with openssl."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
        "-keyout", "ca.key", "-out", "ca.crt")  # fmt: skip
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name in ("server", "client"):
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr")  # fmt: skip
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", f"{name}.crt")  # fmt: skip
    return Pki(folder / "ca.crt", folder / "server.crt", folder / "server.key",
               folder / "client.crt", folder / "client.key")  # fmt: skip


def server_tls(pki: Pki, *, require_client_cert: bool) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    if require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(pki.ca)
    return context
