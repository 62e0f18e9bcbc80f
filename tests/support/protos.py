"""Protobuf messages (and gRPC stubs) compiled at test time from a vendor's published .proto,
with grpcio-tools' protoc: the receivers decode what a sink sends with the vendor's own
definitions, never with the sink's encoder.

    sls = compile_proto("sls.proto", SLS_PROTO)          # -> the sls_pb2 module
    pubsub, grpc_stubs = compile_proto("pubsub.proto", TEXT, grpc=True)
"""

from __future__ import annotations

import functools
import importlib.util
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

_OUT = Path(tempfile.mkdtemp(prefix="kes-protos-"))


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@functools.cache
def compile_proto(filename: str, text: str, grpc: bool = False) -> Any:
    """The ``<name>_pb2`` module of ``text`` (and ``<name>_pb2_grpc`` with ``grpc``)."""
    from grpc_tools import protoc

    source = _OUT / "src"
    source.mkdir(exist_ok=True)
    (source / filename).write_text(text)
    include = str(Path(protoc.__file__).parent / "_proto")  # google/protobuf/*.proto
    args = ["protoc", f"-I{source}", f"-I{include}", f"--python_out={_OUT}"]
    if grpc:
        args.append(f"--grpc_python_out={_OUT}")
    if protoc.main([*args, str(source / filename)]) != 0:
        raise RuntimeError(f"protoc could not compile {filename}")
    stem = filename.removesuffix(".proto")
    if str(_OUT) not in sys.path:
        sys.path.insert(0, str(_OUT))
    messages = _load(f"{stem}_pb2", _OUT / f"{stem}_pb2.py")
    if not grpc:
        return messages
    return messages, _load(f"{stem}_pb2_grpc", _OUT / f"{stem}_pb2_grpc.py")
