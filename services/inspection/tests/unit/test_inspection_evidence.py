"""Evidence photo checks: whole JPEG/PNG files labelled as what they are, nothing else."""

from __future__ import annotations

import struct
import zlib

import pytest

from inspection.adapters.evidence import (
    JPEG,
    PNG,
    EvidenceError,
    check_jpeg,
    check_photo,
    check_png,
)

pytestmark = pytest.mark.unit

LIMIT = 64 * 1024


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png(width: int = 2, height: int = 1, *, extra: bytes = b"") -> bytes:
    """A real greyscale PNG: one filter byte and ``width`` pixels per row."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = b"".join(b"\x00" + bytes(i % 256 for i in range(width)) for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + extra
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body


def jpeg(width: int = 1, height: int = 1, *, app1: bytes = b"", scan: bytes = b"\x3f") -> bytes:
    """A baseline greyscale JPEG (one Huffman code each for DC 0 and AC end-of-block)."""
    one_code = bytes([1] + [0] * 15) + b"\x00"
    return (
        b"\xff\xd8"
        + segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
        + (segment(0xE1, app1) if app1 else b"")
        + segment(0xDB, b"\x00" + bytes([1] * 64))
        + segment(0xC0, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")
        + segment(0xC4, b"\x00" + one_code)
        + segment(0xC4, b"\x10" + one_code)
        + segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
        + scan
        + b"\xff\xd9"
    )


def refused(data: bytes, content_type: str, max_bytes: int = LIMIT) -> tuple[str, int, str]:
    with pytest.raises(EvidenceError) as caught:
        check_photo(data, content_type, max_bytes)
    return caught.value.code, caught.value.status, caught.value.detail or ""


def test_whole_png_and_jpeg_files_are_accepted_with_their_size() -> None:
    assert check_photo(png(), "image/png", LIMIT) == PNG
    assert check_photo(jpeg(), "image/jpeg; charset=binary", LIMIT) == JPEG
    assert check_png(png(3, 2)) == (3, 2)
    assert check_jpeg(jpeg(640, 480)) == (640, 480)


def test_jpeg_structure_is_walked_not_searched_for_markers() -> None:
    # An EXIF segment holding an end-of-image marker (its thumbnail) does not end the file,
    # and stuffed 0xFF bytes and restart markers inside the scan are image data.
    assert check_jpeg(jpeg(app1=b"Exif\x00\x00\xff\xd8\xff\xd9")) == (1, 1)
    assert check_jpeg(jpeg(scan=b"\x12\xff\x00\x34\xff\xd0\x56")) == (1, 1)
    # Phones append their own data after EOI.
    assert check_photo(jpeg() + b"trailer", "image/jpeg", LIMIT) == JPEG


@pytest.mark.parametrize("kind", ["png", "jpeg"])
def test_every_truncated_copy_is_refused_as_corrupt(kind: str) -> None:
    whole = png() if kind == "png" else jpeg()
    for cut in range(1, len(whole)):
        code, status, _ = refused(whole[:cut], f"image/{kind}")
        assert (code, status) == ("evidence_corrupt", 422), cut


def test_damaged_png_chunks_and_headers_are_refused() -> None:
    good = png()
    flipped = bytearray(good)
    flipped[-20] ^= 0x01  # inside IDAT
    assert refused(bytes(flipped), "image/png")[2] == "PNG chunk IDAT has a bad CRC"
    assert "between 1 and" in refused(png(width=0), "image/png")[2]
    assert "between 1 and" in refused(png(width=100_000, height=1), "image/png")[2]
    no_idat = good[:33] + chunk(b"IEND", b"")
    assert "no image data" in refused(no_idat, "image/png")[2]
    assert "after its IEND" in refused(good + b"\x00", "image/png")[2]
    text_first = good[:8] + chunk(b"tEXt", b"a\x00b") + good[8:]
    assert "IHDR" in refused(text_first, "image/png")[2]


def test_jpeg_without_a_frame_header_or_with_bad_sizes_is_refused() -> None:
    no_sof = b"\xff\xd8" + segment(0xE0, b"JFIF\x00") + b"\xff\xd9"
    assert "no frame header" in refused(no_sof, "image/jpeg")[2]
    scan_first = b"\xff\xd8" + segment(0xDA, b"\x01\x01\x00\x00\x3f\x00") + b"\x3f\xff\xd9"
    assert "before its frame header" in refused(scan_first, "image/jpeg")[2]
    assert "between 1 and" in refused(jpeg(width=0), "image/jpeg")[2]
    overlong = b"\xff\xd8\xff\xe0\xff\xff" + b"\x00" * 10
    assert "runs past the end" in refused(overlong, "image/jpeg")[2]


def test_wrong_magic_is_corrupt_and_other_image_formats_are_unsupported() -> None:
    assert refused(b"hello, not a photo", "image/jpeg")[:2] == ("evidence_corrupt", 422)
    assert refused(b"\x89PNX\r\n\x1a\n" + png()[8:], "image/png")[:2] == ("evidence_corrupt", 422)
    gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"
    code, status, detail = refused(gif, "image/jpeg")
    assert (code, status) == ("evidence_type_unsupported", 415)
    assert "image/gif" in detail
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00"
    assert "image/heic" in refused(heic, "image/jpeg")[2]


def test_the_content_type_must_be_jpeg_or_png_and_match_the_bytes() -> None:
    assert refused(png(), "image/jpeg") == (
        "evidence_type_unsupported", 415, "the bytes are image/png, not image/jpeg",
    )  # fmt: skip
    assert refused(jpeg(), "image/png")[:2] == ("evidence_type_unsupported", 415)
    for label in ("image/gif", "application/octet-stream", "", "text/plain"):
        assert refused(png(), label)[:2] == ("evidence_type_unsupported", 415), label


def test_empty_and_too_large_files_are_refused() -> None:
    assert refused(b"", "image/png") == ("evidence_corrupt", 422, "the file is empty")
    big = png(width=1000, height=50, extra=chunk(b"tEXt", b"note\x00" + b"x" * 5000))
    assert check_photo(big, "image/png", len(big)) == PNG
    code, status, _ = refused(big, "image/png", max_bytes=len(big) - 1)
    assert (code, status) == ("evidence_too_large", 413)
