"""Writes reference.safetensors byte by byte from the format's specification
(https://github.com/huggingface/safetensors#format), independently of the Go writer:
an 8-byte little-endian header length, a JSON header padded with spaces to 8 bytes,
then the tensors' little-endian bytes back to back. Run: python3 reference.py"""
import json
import struct

vals = [1.0, -2.5, 0.1, 65504.0]


def bf16(x):
    bits = struct.unpack("<I", struct.pack("<f", x))[0]
    bits += 0x7FFF + ((bits >> 16) & 1)  # round to nearest even
    return struct.pack("<H", bits >> 16)


tensors = [
    ("f32", "F32", [4], b"".join(struct.pack("<f", v) for v in vals)),
    ("f16", "F16", [2, 2], b"".join(struct.pack("<e", v) for v in vals)),
    ("bf16", "BF16", [4], b"".join(bf16(v) for v in vals)),
    ("i32", "I32", [2], struct.pack("<ii", 5, -3)),
    ("i64", "I64", [3, 1], struct.pack("<qqq", 0, -1, 1 << 40)),
]
header, data = {"__metadata__": {"source": "reference.py"}}, b""
for name, dtype, shape, raw in tensors:
    header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
    data += raw
h = json.dumps(header, separators=(",", ":")).encode()
h += b" " * (-len(h) % 8)
with open("reference.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + data)
