"""Reading back what a test's shipper wrote to Elasticsearch or OpenSearch."""

from __future__ import annotations

from typing import Any

import orjson
import urllib3

http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=2.0, read=30.0), retries=False)


def search_hits(
    base: str,
    target: str,
    query: dict[str, Any] | None = None,
    *,
    size: int = 1000,
    refresh: bool = True,
) -> list[dict[str, Any]]:
    """The hits of ``query`` (every document without one) in ``target``: an index, alias, data
    stream or pattern, refreshed first unless ``refresh`` is False.

    Empty while the target is not there yet (404) and while a just-created index's primary
    shard has not started: the server then answers 503 ``search_phase_execution_exception``
    ("all shards failed"), for a second or more on a freshly started server. Any other answer
    than 200 fails the test with the server's reply."""
    if refresh:
        http.request("POST", f"{base}/{target}/_refresh")
    body = orjson.dumps({"size": size, "query": query or {"match_all": {}}})
    reply = http.request(
        "POST", f"{base}/{target}/_search", body=body, headers={"Content-Type": "application/json"}
    )
    if reply.status == 404:
        return []
    answer = orjson.loads(reply.data or b"null")
    if reply.status == 503 and answer["error"]["type"] == "search_phase_execution_exception":
        return []
    assert reply.status == 200, f"{target}/_search answered {reply.status}: {answer}"
    return answer["hits"]["hits"]
