"""A local Pub/Sub Publisher service on 127.0.0.1, in memory: what the official client talks to
when ``PUBSUB_EMULATOR_HOST`` points at it (Google's emulator is not on the package
registries this project may use).

The service is built from the published ``google/pubsub/v1/pubsub.proto`` (the messages of
the Publisher RPCs this sink uses, field numbers as published), compiled by protoc at test time
(:mod:`tests.support.protos`), so requests are decoded independently of the client's own types.
It implements ``CreateTopic`` (``ALREADY_EXISTS`` when it exists), ``GetTopic`` and ``Publish``
(``NOT_FOUND`` for a missing topic; ``INVALID_ARGUMENT`` for an empty message, more than 100
attributes, an ordering key over 1024 bytes, or a message over ``max_message_bytes``) as the
service documents them; ``inject`` makes the next calls fail with a status (``UNAVAILABLE``,
``UNAUTHENTICATED`` ...); ``pause()``/``resume()`` close and reopen the port (an outage).

    with PubsubServer(topics=["projects/p/topics/t"]) as server:
        env = {"PUBSUB_EMULATOR_HOST": server.host}
        server.messages   # [{"topic", "data", "attributes", "ordering_key", "message_id"}]
"""

from __future__ import annotations

import threading
from concurrent import futures
from typing import Any

import grpc

from tests.support.common import free_port
from tests.support.protos import compile_proto

#: From googleapis google/pubsub/v1/pubsub.proto: the messages and RPCs used here, as published
#: (field numbers and names unchanged; the fields left out are skipped by protobuf as unknown).
PUBSUB_PROTO = """
syntax = "proto3";
// google.pubsub.v1 in the published file: renamed so that these definitions never meet the
// client's own in one descriptor pool (only the service's name is on the wire, kept below).
package kes_test.pubsub.v1;
import "google/protobuf/timestamp.proto";

// service google.pubsub.v1.Publisher {
//   rpc CreateTopic(Topic) returns (Topic);
//   rpc Publish(PublishRequest) returns (PublishResponse);
//   rpc GetTopic(GetTopicRequest) returns (Topic);
// }

message Topic {
  string name = 1;
  map<string, string> labels = 2;
  string kms_key_name = 5;
}

message PubsubMessage {
  bytes data = 1;
  map<string, string> attributes = 2;
  string message_id = 3;
  google.protobuf.Timestamp publish_time = 4;
  string ordering_key = 5;
}

message GetTopicRequest {
  string topic = 1;
}

message PublishRequest {
  string topic = 1;
  repeated PubsubMessage messages = 2;
}

message PublishResponse {
  repeated string message_ids = 1;
}
"""


#: The service's name on the wire (the gRPC method paths are /SERVICE/METHOD).
SERVICE = "google.pubsub.v1.Publisher"


def messages() -> Any:
    return compile_proto("kes_pubsub.proto", PUBSUB_PROTO)


class PubsubServer:
    def __init__(self, topics: list[str] = (), max_message_bytes: int = 10_000_000) -> None:  # type: ignore[assignment]
        self.pb = messages()
        self.topics: set[str] = set(topics)
        self.max_message_bytes = max_message_bytes
        self.messages: list[dict[str, Any]] = []
        self.requests: list[tuple[str, int]] = []  # (rpc, messages in it)
        self.inject: list[tuple[grpc.StatusCode, str]] = []
        self.lock = threading.Lock()
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.server: grpc.Server | None = None

    # -- lifecycle

    def __enter__(self) -> PubsubServer:
        self.resume()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.pause()

    def resume(self) -> None:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        servicer, pb = _Publisher(self), self.pb
        rpcs = {
            "CreateTopic": (servicer.CreateTopic, pb.Topic, pb.Topic),
            "GetTopic": (servicer.GetTopic, pb.GetTopicRequest, pb.Topic),
            "Publish": (servicer.Publish, pb.PublishRequest, pb.PublishResponse),
        }
        handlers = {
            name: grpc.unary_unary_rpc_method_handler(
                method,
                request_deserializer=request.FromString,
                response_serializer=reply.SerializeToString,
            )
            for name, (method, request, reply) in rpcs.items()
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        if server.add_insecure_port(self.host) != self.port:
            raise RuntimeError(f"cannot listen on {self.host}")
        server.start()
        self.server = server

    def pause(self) -> None:
        if self.server is not None:
            self.server.stop(grace=0).wait()
            self.server = None

    # -- what tests read

    def on(self, topic: str) -> list[dict[str, Any]]:
        with self.lock:
            return [m for m in self.messages if m["topic"] == topic]


class _Publisher:
    """The Publisher service's methods, in memory."""

    def __init__(self, state: PubsubServer) -> None:
        self.state = state

    def _injected(self, context: grpc.ServicerContext) -> bool:
        with self.state.lock:
            if not self.state.inject:
                return False
            code, text = self.state.inject.pop(0)
        context.abort(code, text)
        return True

    def CreateTopic(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.state.requests.append(("CreateTopic", 0))
        self._injected(context)
        if not request.name.startswith("projects/") or "/topics/" not in request.name:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid [topics] name: ({request.name})")  # fmt: skip
        with self.state.lock:
            if request.name in self.state.topics:
                context.abort(grpc.StatusCode.ALREADY_EXISTS, "Topic already exists")
            self.state.topics.add(request.name)
        return self.state.pb.Topic(name=request.name)

    def GetTopic(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.state.requests.append(("GetTopic", 0))
        self._injected(context)
        if request.topic not in self.state.topics:
            context.abort(grpc.StatusCode.NOT_FOUND, "Topic not found")
        return self.state.pb.Topic(name=request.topic)

    def Publish(self, request: Any, context: grpc.ServicerContext) -> Any:
        state = self.state
        state.requests.append(("Publish", len(request.messages)))
        self._injected(context)
        if request.topic not in state.topics:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Resource not found (resource={request.topic.rsplit('/', 1)[-1]}).")  # fmt: skip
        if not request.messages:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "The request contains no messages.")
        for message in request.messages:
            if not message.data and not message.attributes:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Some messages are empty.")
            if len(message.attributes) > 100:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Too many attributes.")
            if len(message.ordering_key.encode()) > 1024:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Ordering key too long.")
            if message.ByteSize() > state.max_message_bytes:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"Request payload size exceeds the limit: {state.max_message_bytes} bytes.")  # fmt: skip
        ids = []
        with state.lock:
            for message in request.messages:
                message_id = str(len(state.messages) + 1)
                state.messages.append(
                    {
                        "topic": request.topic,
                        "data": bytes(message.data),
                        "attributes": dict(message.attributes),
                        "ordering_key": message.ordering_key,
                        "message_id": message_id,
                        "messages_in_request": len(request.messages),
                    }
                )
                ids.append(message_id)
        return state.pb.PublishResponse(message_ids=ids)
