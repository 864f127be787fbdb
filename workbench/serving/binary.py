"""The Open Inference Protocol's binary tensor data extension (what Triton, MLServer and KServe speak).

A request with the header ``Inference-Header-Content-Length: N`` is N bytes of JSON (the usual V2
request) followed by raw tensor bytes: each input whose ``parameters.binary_data_size`` is set takes
that many bytes, in the order of ``inputs``, instead of a ``data`` list. Numbers are little-endian,
``BOOL`` one byte per element, ``BYTES`` each element as a 4-byte little-endian length and its bytes.

An answer is binary for the outputs the request marks ``parameters.binary_data: true`` (or all, with
the request parameter ``binary_data_output: true``, which Triton's client sends when it names no
outputs): the same JSON, whose binary outputs carry ``parameters.binary_data_size`` and no ``data``,
followed by their bytes, with ``Inference-Header-Content-Length`` saying where the JSON ends.

Values are exact: the bytes are the arrays' own, so a float goes in and comes out to the last bit.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import orjson

from workbench.errors import InvalidInputError, SchemaError
from workbench.serving.codecs import V2_DATATYPES

__all__ = ["HEADER_LENGTH", "attach_binary_inputs", "binary_outputs", "encode_response", "split_request"]

#: The header that marks a binary request or answer and gives the length of its JSON part.
HEADER_LENGTH = "inference-header-content-length"


def split_request(body: bytes, header_length: str) -> tuple[bytes, memoryview]:
    """The JSON part and the binary part of a request body whose JSON part is ``header_length`` bytes."""
    if not header_length.strip().isdigit():
        raise InvalidInputError(
            f"Inference-Header-Content-Length must be the byte length of the request's JSON part, got "
            f"{header_length!r}")
    n = int(header_length)
    if n == 0 or n > len(body):
        raise InvalidInputError(
            f"Inference-Header-Content-Length says the JSON part is {n} bytes, but the body has {len(body)}: "
            "send the JSON part first and its exact length in the header")
    view = memoryview(body)
    return bytes(view[:n]), view[n:]


def attach_binary_inputs(raw_inputs: Sequence[Any], binary: memoryview) -> list[Any]:
    """The request's ``inputs`` with the binary part's bytes decoded into each binary input's
    ``data`` (a numpy array of its shape), checked against the sizes the inputs declare."""
    offset = 0
    out: list[Any] = []
    for raw in raw_inputs:
        size = raw.get("parameters", {}).get("binary_data_size") if isinstance(raw, Mapping) else None
        if size is None or not isinstance(raw.get("parameters"), Mapping):
            out.append(raw)
            continue
        name = raw.get("name")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InvalidInputError(f"input {name!r}: binary_data_size must be a whole number of bytes, got {size!r}")
        if "data" in raw:
            raise InvalidInputError(f"input {name!r} has both 'data' and binary_data_size: send one of them")
        if offset + size > len(binary):
            raise InvalidInputError(
                f"input {name!r} declares {size} bytes of binary data, but only {len(binary) - offset} are left "
                "in the body: the sizes of the binary inputs must add up to the binary part")
        chunk = binary[offset:offset + size]
        offset += size
        out.append({**raw, "data": _decode(raw, chunk)})
    if offset != len(binary):
        raise InvalidInputError(
            f"the body has {len(binary) - offset} bytes after the binary inputs it declares "
            "(binary_data_size): check Inference-Header-Content-Length and each input's binary_data_size")
    return out


def _decode(raw: Mapping[str, Any], chunk: memoryview) -> np.ndarray:
    name, datatype, shape = raw.get("name"), raw.get("datatype"), raw.get("shape")
    if datatype not in V2_DATATYPES:
        raise InvalidInputError(f"input {name!r}: datatype {datatype!r} is not one of {', '.join(V2_DATATYPES)}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise InvalidInputError(f"input {name!r}: 'shape' must be a list of whole numbers, got {shape!r}")
    count = int(np.prod(shape)) if shape else 1
    if datatype == "BYTES":
        values = _decode_bytes(chunk, name)
        if len(values) != count:
            raise SchemaError(f"input {name!r} has shape {shape} ({count} values) but {len(values)} BYTES elements")
        return np.array(values, dtype=object).reshape(shape)
    dtype = np.dtype(np.uint8) if datatype == "BOOL" else V2_DATATYPES[datatype]
    if len(chunk) != count * dtype.itemsize:
        raise SchemaError(
            f"input {name!r} has shape {shape} of {datatype} ({count * dtype.itemsize} bytes) but "
            f"binary_data_size {len(chunk)}")
    # A copy in native byte order: the array must not keep the request body alive.
    array = np.frombuffer(chunk, dtype=dtype.newbyteorder("<")).astype(dtype.newbyteorder("="), copy=True)
    if datatype == "BOOL":
        array = array != 0
    return array.reshape(shape)


def _decode_bytes(chunk: memoryview, name: Any) -> list[str | bytes]:
    """4-byte little-endian lengths, each followed by that many bytes; UTF-8 text becomes ``str``."""
    values: list[str | bytes] = []
    offset, end = 0, len(chunk)
    while offset < end:
        if offset + 4 > end:
            raise InvalidInputError(f"input {name!r}: BYTES data ends inside an element's 4-byte length")
        (length,) = struct.unpack_from("<I", chunk, offset)
        offset += 4
        if offset + length > end:
            raise InvalidInputError(f"input {name!r}: a BYTES element of {length} bytes runs past its data")
        item = bytes(chunk[offset:offset + length])
        offset += length
        try:
            values.append(item.decode("utf-8"))
        except UnicodeDecodeError:
            values.append(item)
    return values


def binary_outputs(body: Mapping[str, Any]) -> tuple[set[str], set[str], bool]:
    """Which outputs the request wants as binary: the names it marks ``binary_data: true``, those it
    marks ``binary_data: false``, and whether every other output is binary (``binary_data_output``)."""
    named: set[str] = set()
    text: set[str] = set()
    for output in body.get("outputs") or []:
        if isinstance(output, Mapping) and isinstance(output.get("parameters"), Mapping):
            flag = output["parameters"].get("binary_data")
            if flag is True:
                named.add(str(output.get("name")))
            elif flag is False:
                text.add(str(output.get("name")))
    parameters = body.get("parameters")
    every = isinstance(parameters, Mapping) and parameters.get("binary_data_output") is True
    return named, text, every


def encode_response(response: Mapping[str, Any], named: set[str], text: set[str],
                    every: bool) -> tuple[bytes, int] | None:
    """A V2 answer (its outputs as :func:`workbench.serving.codecs.encode_tensor` makes them) in the
    binary form, as (body, length of its JSON part); ``None`` when no output is to be binary.
    With ``every``, the outputs not in ``text`` (marked ``binary_data: false``) are binary too."""
    blobs: list[bytes] = []
    outputs = []
    for output in response["outputs"]:
        if output["name"] in named or (every and output["name"] not in text):
            blob = _encode(output)
            blobs.append(blob)
            output = {k: v for k, v in output.items() if k != "data"}
            output["parameters"] = {**output.get("parameters", {}), "binary_data_size": len(blob)}
        outputs.append(output)
    if not blobs:
        return None
    header = orjson.dumps({**response, "outputs": outputs}, option=orjson.OPT_SERIALIZE_NUMPY)
    return header + b"".join(blobs), len(header)


def _encode(output: Mapping[str, Any]) -> bytes:
    datatype, data = output["datatype"], output["data"]
    if datatype == "BYTES":
        parts = []
        for value in data:
            raw = value if isinstance(value, bytes) else str(value).encode("utf-8") if value is not None else b""
            parts.append(struct.pack("<I", len(raw)))
            parts.append(raw)
        return b"".join(parts)
    array = np.asarray(data)
    if datatype == "BOOL":
        return array.astype(np.uint8).tobytes()
    return np.ascontiguousarray(array, dtype=V2_DATATYPES[datatype].newbyteorder("<")).tobytes()
