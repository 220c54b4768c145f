"""The Open Inference Protocol's binary tensor data extension, both ways (pure, no I/O).

tritonclient (``InferInput.set_data_from_numpy``, its default) and the KServe SDK send a JSON
header followed by raw tensors: the ``Inference-Header-Content-Length`` header gives the JSON's
size, and each input that travels as bytes says how many with ``parameters.binary_data_size``,
in the order of ``inputs``. Numbers are little-endian, BOOL is one byte, and a BYTES tensor is
its elements one after another, each a 4-byte little-endian length and then the bytes (UTF-8
text here). Responses use the same layout for the outputs a client asked to get as bytes
(``parameters.binary_data_output`` on the request, or ``parameters.binary_data`` on one
requested output).

Decoded tensors become the same flat lists a JSON ``data`` array gives, so one set of checks
(:mod:`segue.serving.inputs`) judges both encodings alike.

Example::

    >>> header, rest = split_body(b'{"inputs": []}\\x01\\x00', "14")
    >>> decode(rest, "INT16", [1], "x")
    [1]
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from segue.serving.errors import RequestError

__all__ = ["HEADER", "Sections", "decode", "encode", "split_body"]

#: The HTTP header giving the size of the JSON part of a body (lower case, as ASGI has it).
HEADER = "inference-header-content-length"
_DTYPES = {
    "BOOL": np.dtype("u1"),
    **{f"INT{b}": np.dtype(f"<i{b // 8}") for b in (8, 16, 32, 64)},
    **{f"UINT{b}": np.dtype(f"<u{b // 8}") for b in (8, 16, 32, 64)},
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
_LENGTH = struct.Struct("<I")
_MAX_HEADER_DIGITS = 19


def split_body(body: bytes, header: str | None) -> tuple[bytes, bytes]:
    """The JSON part of ``body`` and the binary part after it, as ``header`` (the value of
    ``Inference-Header-Content-Length``, or None for an all-JSON body) divides them."""
    if header is None:
        return body, b""
    value = header.strip()
    if not (0 < len(value) <= _MAX_HEADER_DIGITS and value.isascii() and value.isdigit()):
        raise RequestError(
            400,
            f"{HEADER}: expected the size in bytes of the JSON part of the body, got {header!r}",
            HEADER,
        )
    size = int(value)
    if size > len(body):
        raise RequestError(
            400, f"{HEADER}: {size} bytes of JSON, but the body has only {len(body)}", HEADER
        )
    return body[:size], body[size:]


class Sections:
    """The binary part of a request, handed out input by input in the order of ``inputs``."""

    def __init__(self, data: bytes, header_given: bool) -> None:
        self.data = data
        self.header_given = header_given
        self.offset = 0

    def take(self, size: Any, where: str) -> bytes:
        """The next ``size`` bytes, for the input at ``where``."""
        field = f"{where}.parameters.binary_data_size"
        if type(size) is not int or size < 0:
            raise RequestError(400, f"{field}: expected a number of bytes (an integer >= 0)", field)
        if not self.header_given:
            raise RequestError(
                400,
                f"{field}: binary tensor data needs the {HEADER} header (the size of the "
                "JSON part of the body)",
                field,
            )
        left = len(self.data) - self.offset
        if size > left:
            raise RequestError(
                400, f"{field}: {size} bytes, but only {left} are left after the JSON", field
            )
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def finish(self) -> None:
        """Refuse bytes no input claimed."""
        left = len(self.data) - self.offset
        if left:
            raise RequestError(
                400,
                f"{left} bytes after the JSON belong to no input; give each binary input its "
                "parameters.binary_data_size",
                HEADER,
            )


def decode(chunk: bytes, datatype: str, shape: list[int], name: str) -> list[Any]:
    """One input's raw bytes as the flat list of values its JSON ``data`` would hold."""
    count = math.prod(shape)
    if datatype == "BYTES":
        return _decode_bytes(chunk, count, name)
    dtype = _DTYPES[datatype]
    if len(chunk) != count * dtype.itemsize:
        raise RequestError(
            400,
            f"input {name!r}: shape {shape} of {datatype} takes {count * dtype.itemsize} bytes, "
            f"binary_data_size says {len(chunk)}",
            name,
        )
    values = np.frombuffer(chunk, dtype=dtype)
    if datatype == "BOOL":
        if values.size and values.max() > 1:
            raise RequestError(400, f"input {name!r}: BOOL bytes must be 0 or 1", name)
        return values.astype(bool).tolist()
    return values.tolist()


def _decode_bytes(chunk: bytes, count: int, name: str) -> list[Any]:
    values: list[Any] = []
    offset, end = 0, len(chunk)
    while offset < end:
        if end - offset < _LENGTH.size:
            raise RequestError(400, f"input {name!r}: BYTES element {len(values)} is cut off", name)
        (size,) = _LENGTH.unpack_from(chunk, offset)
        offset += _LENGTH.size
        if size > end - offset:
            raise RequestError(400, f"input {name!r}: BYTES element {len(values)} is cut off", name)
        try:
            values.append(chunk[offset : offset + size].decode())
        except UnicodeDecodeError:
            raise RequestError(
                400, f"input {name!r}: BYTES element {len(values)} is not UTF-8 text", name
            ) from None
        offset += size
    if len(values) != count:
        raise RequestError(
            400, f"input {name!r}: shape holds {count} values, the bytes hold {len(values)}", name
        )
    return values


def encode(array: np.ndarray, datatype: str) -> bytes:
    """``array``'s raw bytes for a binary output (row-major, little-endian)."""
    if datatype == "BYTES":
        parts: list[bytes] = []
        for value in array.reshape(-1).tolist():
            raw = value if isinstance(value, bytes) else ("" if value is None else str(value))
            data = raw if isinstance(raw, bytes) else raw.encode()
            parts += (_LENGTH.pack(len(data)), data)
        return b"".join(parts)
    dtype = _DTYPES[datatype]
    return np.ascontiguousarray(array, dtype=dtype).tobytes()
