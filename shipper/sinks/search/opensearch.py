"""``opensearch:https://HOST:9200?index=kube-events``: OpenSearch, also Amazon OpenSearch Service.

OpenSearch speaks the Elasticsearch bulk protocol, so the schema, the write modes, the ids and
every parameter of the ``elasticsearch`` sink apply here unchanged. This module adds
what is OpenSearch's own: the ``opensearch-py`` client, ISM instead of ILM (detected), and
SigV4 request signing for Amazon OpenSearch Service::

    opensearch:https://search-x.eu-west-1.es.amazonaws.com?aws_region=eu-west-1
    opensearch:https://abc.eu-west-1.aoss.amazonaws.com?aws_region=eu-west-1&aws_service=aoss

SigV4 takes credentials from the standard AWS chain (IRSA / EKS Pod Identity web identity,
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, instance profile) and needs the optional
dependency: ``pip install 'kube-event-shipper[aws]'`` (botocore).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shipper.sinks.search.options import SearchOptions
from shipper.sinks.search.sink import ElasticsearchSink
from shipper.sinks.search.transport import Http, OpenSearchHttp, split_userinfo
from shipper.spec import option
from shipper.uri import UsageError, choice


@dataclass(frozen=True, kw_only=True)
class OpenSearchOptions(SearchOptions):
    aws_region: str | None = option(
        None,
        "Sign requests with AWS SigV4 for this region (Amazon OpenSearch Service).",
        aliases=("awsRegion",),
        group="aws",
    )
    aws_service: str = option(
        "es",
        "SigV4 service: es (managed domains) or aoss (Serverless).",
        parse=choice("es", "aoss"),
        group="aws",
    )


class OpenSearchSink(ElasticsearchSink):
    scheme = "opensearch"
    aliases = ()
    receiver = "opensearch"
    summary = (
        "OpenSearch 1.x-3.x and Amazon OpenSearch (SigV4): same schema and modes as elasticsearch"
    )
    usage = "opensearch:https://HOST:9200"
    example = "opensearch:https://search-x.eu-west-1.es.amazonaws.com?aws_region=eu-west-1"
    Options = OpenSearchOptions
    options: OpenSearchOptions
    expects = "opensearch"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.options.aws_region and (self.options.username or self.options.api_key):
            raise UsageError(
                f"--sink {self.scheme}: aws_region signs requests with SigV4; drop"
                " username/api_key, or drop aws_region"
            )
        if self.options.api_key:
            raise UsageError(
                f"--sink {self.scheme}: parameter api_key: OpenSearch has no API keys; use"
                " username/password, a client certificate, or aws_region (SigV4)"
            )
        self._signer = self._sigv4() if self.options.aws_region else None

    def make_http(self, nodes: list[str] | None = None) -> Http:
        from opensearchpy import OpenSearch, RequestsHttpConnection

        hosts, basic = split_userinfo(nodes or self.nodes)
        kwargs: dict[str, Any] = dict(
            hosts=hosts,
            timeout=self.options.timeout,
            max_retries=self.options.max_retries,
            retry_on_timeout=True,
            retry_on_status=(),
        )
        user, password = self.options.username, self.options.password
        if user or basic:
            kwargs["http_auth"] = (user, password or "") if user else basic
        if self._signer is not None:  # signing needs the requests transport, not an SSLContext
            kwargs["http_auth"] = self._signer
            kwargs["connection_class"] = RequestsHttpConnection
            kwargs.update(self._requests_tls_kwargs())
        else:
            kwargs.update(self._tls_kwargs())
        return OpenSearchHttp(OpenSearch(**kwargs))

    def _sigv4(self) -> Any:
        try:
            import botocore.session
            from opensearchpy import RequestsAWSV4SignerAuth
        except ImportError as exc:
            raise UsageError(
                f"--sink {self.scheme}: aws_region needs botocore:"
                " pip install 'kube-event-shipper[aws]'"
            ) from exc
        credentials = botocore.session.Session().get_credentials()
        if credentials is None:
            raise UsageError(
                f"--sink {self.scheme}: aws_region is set but no AWS credentials were found"
                " (IRSA, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or an instance profile)"
            )
        return RequestsAWSV4SignerAuth(
            credentials, self.options.aws_region, self.options.aws_service
        )

    def _requests_tls_kwargs(self) -> dict[str, Any]:
        if not any(node.startswith("https:") for node in self.nodes):
            return {}
        kwargs: dict[str, Any] = {
            "verify_certs": not self.options.insecure,
            "ssl_show_warn": False,
        }
        if self.options.ca_file:
            kwargs["ca_certs"] = self.options.ca_file
        if self.options.cert_file:
            kwargs.update(client_cert=self.options.cert_file, client_key=self.options.key_file)
        return kwargs
