"""A light client for the API server: the kubeconfig's or the pod's credentials, over urllib3.

The official ``kubernetes`` package imports its ~700 generated models (pydantic classes) with
any of its modules: some 27 MiB of resident memory before the first event (bench/README.md).
The shipper sends raw requests (:mod:`shipper.kube`) and needs none of them, so for the usual
credentials it uses this client instead:

* in a pod: the ServiceAccount token (read again every minute, as client-go does: projected
  tokens rotate) and CA, ``KUBERNETES_SERVICE_HOST``/``_PORT``;
* a kubeconfig (one file; its current context): the server, the CA (file or data),
  ``insecure-skip-tls-verify``, ``tls-server-name``, a bearer ``token`` or ``tokenFile``, a
  client certificate and key (files or data).

Anything else (exec plugins, auth providers, basic auth, proxies, several files in
``KUBECONFIG``) is left to the official client: :func:`light_client` returns None and the caller
builds that. The object answers the two calls :func:`shipper.kube.request` makes of the official
``ApiClient`` (``param_serialize``, ``call_api``) and has ``configuration.host``.
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson
import urllib3

SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_REFRESH = 60.0  # seconds, as client-go re-reads a projected token
#: kubeconfig user keys this client handles; any other one sends the caller to the official one.
USER_KEYS = {
    "token", "tokenFile", "client-certificate", "client-certificate-data", "client-key",
    "client-key-data",
}  # fmt: skip
CLUSTER_KEYS = {
    "server", "certificate-authority", "certificate-authority-data", "insecure-skip-tls-verify",
    "tls-server-name", "extensions",
}  # fmt: skip


@dataclass
class Configuration:
    """What callers read of the official client's configuration."""

    host: str
    verify_ssl: bool = True


class _Reply:
    """The official ``RESTResponse``'s one attribute the shipper reads."""

    __slots__ = ("response",)

    def __init__(self, response: Any) -> None:
        self.response = response


class LightClient:
    """Raw requests to one API server with one identity; thread-safe (urllib3's pool)."""

    def __init__(
        self,
        host: str,
        context: ssl.SSLContext,
        *,
        token: str | None = None,
        token_file: str | None = None,
        server_hostname: str | None = None,
        verify: bool = True,
    ) -> None:
        self.configuration = Configuration(host.rstrip("/"), verify)
        self._token, self._token_file = token, token_file
        self._token_read = 0.0
        self._lock = threading.Lock()
        pool: dict[str, Any] = {"ssl_context": context, "maxsize": 8}
        if server_hostname:
            pool["server_hostname"] = server_hostname
        if not verify:
            pool["cert_reqs"] = ssl.CERT_NONE
            pool["assert_hostname"] = False
        self.pool = urllib3.PoolManager(**pool)

    def token(self) -> str | None:
        if self._token_file is None:
            return self._token
        with self._lock:
            if time.monotonic() - self._token_read > TOKEN_REFRESH or self._token is None:
                with open(self._token_file, encoding="utf-8") as handle:
                    self._token = handle.read().strip()
                self._token_read = time.monotonic()
            return self._token

    def param_serialize(
        self,
        method: str,
        resource_path: str,
        query_params: list[tuple[str, Any]] | None = None,
        header_params: dict[str, str] | None = None,
        body: Any = None,
        auth_settings: list[str] | None = None,
    ) -> tuple[str, str, dict[str, str], bytes | None, None]:
        url = self.configuration.host + resource_path
        if query_params:  # quoted as the official client quotes them
            url += "?" + "&".join(f"{quote(k)}={quote(_text(v))}" for k, v in query_params)
        headers = dict(header_params or {})
        token = self.token()
        if token and auth_settings:
            headers["Authorization"] = f"Bearer {token}"
        data = body if body is None or isinstance(body, bytes) else orjson.dumps(body)
        return method, url, headers, data, None

    def call_api(
        self,
        method: str,
        url: str,
        header_params: dict[str, str] | None = None,
        body: bytes | None = None,
        post_params: Any = None,
        _request_timeout: tuple[float, float] | float | None = None,
    ) -> _Reply:
        timeout: Any = urllib3.Timeout.DEFAULT_TIMEOUT
        if isinstance(_request_timeout, tuple):
            timeout = urllib3.Timeout(connect=_request_timeout[0], read=_request_timeout[1])
        elif _request_timeout is not None:
            timeout = urllib3.Timeout(total=_request_timeout)
        response = self.pool.request(
            method, url, body=body, headers=header_params, timeout=timeout, preload_content=False
        )
        return _Reply(response)

    def close(self) -> None:
        self.pool.clear()

    def __enter__(self) -> LightClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def in_cluster() -> LightClient | None:
    """The pod's ServiceAccount, or None when something the official loader would explain is
    missing (it then says what)."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    port = os.environ.get("KUBERNETES_SERVICE_PORT")
    token, ca = f"{SERVICE_ACCOUNT}/token", f"{SERVICE_ACCOUNT}/ca.crt"
    if not host or not port or not os.path.isfile(token) or not os.path.isfile(ca):
        return None
    if ":" in host or "%" in host:
        host = f"[{host}]"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=ca)
    return LightClient(f"https://{host}:{port}", context, token_file=token)


def from_kubeconfig(path: str) -> LightClient | None:
    """The kubeconfig's current context, or None if it asks for more than this client does
    (or is not one it can read: the official loader then gives its own error)."""
    import yaml

    try:
        with open(path, encoding="utf-8") as handle:
            config = yaml.safe_load(handle)
        context = _named(config, "contexts", config["current-context"])["context"]
        cluster = _named(config, "clusters", context["cluster"])["cluster"]
        user = _named(config, "users", context["user"]).get("user") or {}
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
        return None
    if not isinstance(user, dict) or not isinstance(cluster, dict):
        return None
    if set(user) - USER_KEYS or set(cluster) - CLUSTER_KEYS or not cluster.get("server"):
        return None
    base = os.path.dirname(os.path.abspath(path))
    try:
        return _build(cluster, user, base)
    except (OSError, ssl.SSLError, ValueError):
        return None


def _named(config: dict[str, Any], section: str, name: str) -> dict[str, Any]:
    for item in config[section]:
        if item.get("name") == name:
            return item
    raise KeyError(name)


def _build(cluster: dict[str, Any], user: dict[str, Any], base: str) -> LightClient:
    verify = not cluster.get("insecure-skip-tls-verify", False)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, and checks the host name
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif cluster.get("certificate-authority-data"):  # the cluster's CA only, as client-go
        pem = base64.b64decode(cluster["certificate-authority-data"]).decode()
        context.load_verify_locations(cadata=pem)
    elif cluster.get("certificate-authority"):
        context.load_verify_locations(cafile=_path(cluster["certificate-authority"], base))
    else:
        context.load_default_certs()
    _client_certificate(context, user, base)
    token_file = _path(user["tokenFile"], base) if user.get("tokenFile") else None
    return LightClient(
        str(cluster["server"]),
        context,
        token=user.get("token") if not token_file else None,
        token_file=token_file,
        server_hostname=cluster.get("tls-server-name"),
        verify=verify,
    )


def _client_certificate(context: ssl.SSLContext, user: dict[str, Any], base: str) -> None:
    """ssl loads a certificate and key only from files: inline data goes through a private
    temporary directory that is removed as soon as they are loaded."""
    cert, key = user.get("client-certificate-data"), user.get("client-key-data")
    if cert or key:
        with tempfile.TemporaryDirectory() as tmp:
            cert_path, key_path = os.path.join(tmp, "cert"), os.path.join(tmp, "key")
            for where, data in ((cert_path, cert), (key_path, key)):
                with open(os.open(where, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as handle:
                    handle.write(base64.b64decode(data or ""))
            context.load_cert_chain(cert_path, key_path)
    elif user.get("client-certificate"):
        key_file = _path(user["client-key"], base) if user.get("client-key") else None
        context.load_cert_chain(_path(user["client-certificate"], base), key_file)


def _path(value: str, base: str) -> str:
    """A kubeconfig path, relative to the kubeconfig's directory as kubectl reads it."""
    return value if os.path.isabs(value) else os.path.join(base, value)
