"""Just enough of the Kubernetes protobuf encoding to read what kubectl's typed clients send.

kubectl's generators (``kubectl create namespace|secret|configmap``) post protobuf
bodies, not JSON, and do not fall back when refused. Decoding the wire format
needs each kind's field numbers (from the upstream ``generated.proto``), so only
those kinds are understood; anything else is refused with 415.
"""
from __future__ import annotations

import base64
from typing import Any, Iterator

from .status import UnsupportedMediaType

MAGIC = b"k8s\x00"


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, Any]]:
    """(field number, value) pairs; length-delimited values stay bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, value


def _map_entry(buf: bytes) -> tuple[str, bytes]:
    entry = dict(_fields(buf))
    return entry.get(1, b"").decode(), entry.get(2, b"")


def _object_meta(buf: bytes) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    names = {1: "name", 2: "generateName", 3: "namespace"}
    for number, value in _fields(buf):
        if number in names:
            meta[names[number]] = value.decode()
        elif number in (11, 12):
            k, v = _map_entry(value)
            meta.setdefault("labels" if number == 11 else "annotations", {})[k] = v.decode()
        elif number == 14:
            meta.setdefault("finalizers", []).append(value.decode())
    return meta


def _secret(buf: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for number, value in _fields(buf):
        if number == 1:
            obj["metadata"] = _object_meta(value)
        elif number == 2:
            k, v = _map_entry(value)
            obj.setdefault("data", {})[k] = base64.b64encode(v).decode()
        elif number == 3:
            obj["type"] = value.decode()
        elif number == 4:
            k, v = _map_entry(value)
            obj.setdefault("stringData", {})[k] = v.decode()
        elif number == 5:
            obj["immutable"] = bool(value)
    return obj


def _config_map(buf: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for number, value in _fields(buf):
        if number == 1:
            obj["metadata"] = _object_meta(value)
        elif number == 2:
            k, v = _map_entry(value)
            obj.setdefault("data", {})[k] = v.decode()
        elif number == 3:
            k, v = _map_entry(value)
            obj.setdefault("binaryData", {})[k] = base64.b64encode(v).decode()
        elif number == 4:
            obj["immutable"] = bool(value)
    return obj


def _namespace(buf: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for number, value in _fields(buf):
        if number == 1:
            obj["metadata"] = _object_meta(value)
    return obj


_DECODERS = {("v1", "Secret"): _secret, ("v1", "ConfigMap"): _config_map, ("v1", "Namespace"): _namespace}


def decode(body: bytes) -> dict[str, Any]:
    """The JSON-shaped object in a protobuf request body; ``UnsupportedMediaType`` if not understood."""
    if not body.startswith(MAGIC):
        raise UnsupportedMediaType("protobuf body without the k8s envelope")
    try:
        unknown = dict(_fields(body[len(MAGIC):]))
        type_meta = dict(_fields(unknown.get(1, b"")))
        api_version, kind = type_meta.get(1, b"").decode(), type_meta.get(2, b"").decode()
        decoder = _DECODERS.get((api_version, kind))
        if decoder is None:
            raise UnsupportedMediaType(f"the lab API reads protobuf only for {sorted(k for _, k in _DECODERS)}, "
                                       f"not {api_version} {kind}; send JSON")
        return {"apiVersion": api_version, "kind": kind, **decoder(unknown.get(2, b""))}
    except (ValueError, UnicodeDecodeError) as exc:
        raise UnsupportedMediaType(f"undecodable protobuf body: {exc}") from exc
