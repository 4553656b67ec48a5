"""Line ends on disk: CRLF -> LF chunk by chunk, and the wire size of a stored file."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from mailtool.protocol.wire import normalize_crlf
from mailtool.store.lineends import CRLFToLF, to_lf, wire_size


@given(st.binary(max_size=300), st.integers(1, 30))
def test_chunking_does_not_matter(data: bytes, size: int) -> None:
    conv = CRLFToLF()
    out = b"".join(conv.feed(data[i : i + size]) for i in range(0, len(data), size))
    assert out + conv.finish() == data.replace(b"\r\n", b"\n")
    assert b"".join(to_lf([data])) == data.replace(b"\r\n", b"\n")


@settings(max_examples=50)
@given(st.binary(max_size=3000), st.integers(1, 64))
def test_wire_size_of_lf_and_crlf_files(tmp_path_factory: object, data: bytes, chunk: int) -> None:
    wire = normalize_crlf(data)  # what a server sends: CRLF everywhere
    base = Path(tmp_path_factory.mktemp("w"))  # type: ignore[attr-defined]
    lf_file, crlf_file = base / "lf", base / "crlf"
    lf_file.write_bytes(b"".join(to_lf([wire])))
    crlf_file.write_bytes(wire)
    assert wire_size(str(lf_file), chunk=chunk) == len(wire)
    assert wire_size(str(crlf_file), chunk=chunk) == len(wire)
