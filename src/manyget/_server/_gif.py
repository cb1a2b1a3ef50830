"""Deterministic, flag-like GIF89a images, one per country code.

Theory of operation
-------------------
The real flags of the book weigh from about 1 KB to 36 KB (mean about 12 KB); a download
benchmark is only honest if ours spread the same way. GIF sizes are set by how well LZW
compresses the pixels, so each flag is drawn in two layers:

* a *design* (bands, a cross, a disc, a canton with stripes) in up to four of eight base
  colours. Flat colour compresses to almost nothing;
* a *texture*: every pixel takes one of ``amplitude`` shades of its base colour, picked by a
  PRNG. The palette holds 32 shades of each base colour (8 x 32 = 256 entries), so a pixel
  index is ``base * 32 + shade``. More shades means more entropy per pixel, hence more bytes.

``random.Random(cc)`` (seeded from the code's SHA-512, independent of ``PYTHONHASHSEED``)
draws a target size from a skewed distribution, a design and colours. The target picks the
richest texture that still leaves the image at least about 110 x 73 pixels and then the image
area that hits it; rich textures keep the pixel count, hence the pure-Python LZW loop, short.

Pixels are produced with ``bytes.translate`` over PRNG bytes, one call per run of a base colour
in a row, so only the LZW encoder loops per pixel in Python.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Iterator

from ._countries import normalize_cc

__all__ = ["flag_gif", "lzw_encode"]

_BASE_COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 255, 255),  # white
    (206, 17, 38),  # red
    (0, 56, 168),  # blue
    (0, 122, 61),  # green
    (252, 209, 22),  # yellow
    (20, 20, 20),  # black
    (255, 130, 0),  # orange
    (117, 170, 219),  # sky blue
)
_SHADES = 32
_CENTER = _SHADES // 2

# Approximate LZW cost in bits per pixel of a texture with this many shades (measured on
# 40k-pixel samples); it only steers the choice of image area, exact sizes come from encoding.
_BITS_PER_PIXEL: dict[int, float] = {32: 7.3, 16: 5.8, 8: 4.2, 4: 3.0, 2: 1.65}
_MIN_AREA = 8_000
_FIXED_BYTES = 800  # header, 768-byte colour table, descriptors, trailer (about)
_MIN_TARGET = 1_000
_MAX_TARGET = 35_000


def _palette() -> bytes:
    out = bytearray()
    for color in _BASE_COLORS:
        for shade in range(_SHADES):
            t = (shade - (_SHADES - 1) / 2) / ((_SHADES - 1) / 2)  # -1 .. 1
            for c in color:
                # Darken towards black below the centre shade, lighten towards white above.
                v = c * (1 + 0.35 * t) if t < 0 else c + (255 - c) * 0.35 * t
                out.append(min(255, max(0, round(v))))
    return bytes(out)


_PALETTE = _palette()


def _texture_tables(amplitude: int) -> list[bytes]:
    """Per base colour, a translate table from a random byte to a palette index."""
    low = _CENTER - amplitude // 2
    return [
        bytes(base * _SHADES + low + (x % amplitude) for x in range(256))
        for base in range(len(_BASE_COLORS))
    ]


Segments = list[tuple[int, int, int]]  # (base colour, x0, x1) runs covering one row


class _Design:
    """A flag layout: for each row, the runs of base colours that cover it."""

    def __init__(self, rng: random.Random, width: int, height: int, kind: str) -> None:
        self.w, self.h, self.kind = width, height, kind
        self.colors = rng.sample(range(len(_BASE_COLORS)), 4)
        self.bands = rng.choice((2, 3, 3, 3, 4, 5))
        self.stripes = rng.choice((5, 7, 9, 11, 13))
        self.disc = (
            rng.uniform(0.35, 0.6) * width,
            rng.uniform(0.4, 0.6) * height,
            rng.uniform(0.2, 0.32) * height,
        )

    def row(self, y: int) -> Segments:
        w, h, c = self.w, self.h, self.colors
        if self.kind == "hbands":
            return [(c[min(y * self.bands // h, 3)], 0, w)]
        if self.kind == "vbands":
            n = min(self.bands, 4)
            return [(c[i], i * w // n, (i + 1) * w // n) for i in range(n)]
        if self.kind == "cross":
            arm = max(2, h // 6)
            x0 = int(w * 0.36) - arm // 2
            if abs(y - h // 2) <= arm // 2:
                return [(c[1], 0, w)]
            return [(c[0], 0, x0), (c[1], x0, x0 + arm), (c[0], x0 + arm, w)]
        if self.kind == "canton":
            stripe = c[min(y * self.stripes // h, self.stripes - 1) % 2]
            if y < h * 7 // 13:
                cut = int(w * 0.4)
                return [(c[2], 0, cut), (stripe, cut, w)]
            return [(stripe, 0, w)]
        # "disc" on a plain field, or on three bands
        field = c[min(y * 3 // h, 2)] if self.kind == "banded_disc" else c[0]
        cx, cy, r = self.disc
        dy = y + 0.5 - cy
        if abs(dy) >= r:
            return [(field, 0, w)]
        half = math.sqrt(r * r - dy * dy)
        x0 = max(0, min(w, round(cx - half)))
        x1 = max(x0, min(w, round(cx + half)))
        return [(field, 0, x0), (c[3], x0, x1), (field, x1, w)]


_KINDS = ("hbands", "hbands", "vbands", "cross", "canton", "disc", "banded_disc")
_ASPECTS = (1.5, 1.5, 1.5, 2.0, 2.0, 5 / 3, 1.25, 1.0)


def _plan(cc: str) -> tuple[random.Random, int, int, int, str]:
    """Draw (rng, width, height, texture amplitude, design kind) for a country code."""
    rng = random.Random(cc)
    # u ** 2.2 skews towards small files: mean of the target is about 12 KB.
    target = _MIN_TARGET + (_MAX_TARGET - _MIN_TARGET) * rng.random() ** 2.2
    aspect = rng.choice(_ASPECTS)
    kind = rng.choice(_KINDS)
    bits = (target - _FIXED_BYTES) * 8
    amplitude, area = 1, rng.uniform(_MIN_AREA, 2 * _MIN_AREA)
    for shades, bpp in _BITS_PER_PIXEL.items():  # richest texture first
        if bits / bpp >= _MIN_AREA:
            amplitude, area = shades, bits / bpp
            break
    width = max(8, round(math.sqrt(area * aspect)))
    height = max(8, round(width / aspect))
    return rng, width, height, amplitude, kind


def _pixels(cc: str) -> tuple[int, int, bytes]:
    rng, width, height, amplitude, kind = _plan(cc)
    design = _Design(rng, width, height, kind)
    tables = _texture_tables(amplitude)
    noise = rng.randbytes(width * height)
    rows = []
    for y in range(height):
        offset = y * width
        for base, x0, x1 in design.row(y):
            if x1 > x0:
                rows.append(noise[offset + x0 : offset + x1].translate(tables[base]))
    return width, height, b"".join(rows)


def lzw_encode(pixels: bytes, min_code_size: int = 8) -> bytes:
    """GIF-flavoured LZW: LSB-first variable-width codes (up to 12 bits), clear on a full table.

    The code width grows when the *decoder's* table, which lags one entry behind ours, reaches
    the next power of two; that is why the test is ``next_code > limit`` rather than ``>=``.
    When the table would exceed 4096 entries we emit a clear code and start over.
    """
    if not pixels:
        raise ValueError("no pixels to encode")
    clear = 1 << min_code_size
    end = clear + 1
    first_free = clear + 2
    out = bytearray()
    acc = clear  # bit accumulator, LSB first
    nbits = size = min_code_size + 1
    limit = 1 << size
    next_code = first_free
    table: dict[int, int] = {}  # (prefix code << 8 | pixel) -> code
    get = table.get
    it = iter(pixels)
    prefix = next(it)
    for pixel in it:
        key = (prefix << 8) | pixel
        code = get(key)
        if code is not None:
            prefix = code
            continue
        acc |= prefix << nbits
        nbits += size
        if nbits >= 64:
            out += (acc & 0xFFFF_FFFF_FFFF_FFFF).to_bytes(8, "little")
            acc >>= 64
            nbits -= 64
        table[key] = next_code
        next_code += 1
        if next_code == 4096:
            acc |= clear << nbits
            nbits += size
            table.clear()
            next_code = first_free
            size = min_code_size + 1
            limit = 1 << size
        elif next_code > limit:
            size += 1
            limit <<= 1
        prefix = pixel
    acc |= prefix << nbits
    nbits += size
    # The decoder adds one more entry on reading that last code; the end code follows suit.
    if next_code + 1 > limit and size < 12:
        size += 1
    acc |= end << nbits
    nbits += size
    out += acc.to_bytes((nbits + 7) // 8, "little")
    return bytes(out)


def _sub_blocks(data: bytes) -> Iterator[bytes]:
    for i in range(0, len(data), 255):
        chunk = data[i : i + 255]
        yield bytes((len(chunk),))
        yield chunk
    yield b"\x00"


@functools.cache
def _flag_gif(cc: str) -> bytes:
    width, height, pixels = _pixels(cc)
    size = width.to_bytes(2, "little") + height.to_bytes(2, "little")
    return b"".join(
        (
            b"GIF89a",
            size,
            b"\xf7\x00\x00",  # global colour table of 256 entries, 8 bits per primary
            _PALETTE,
            b"\x2c\x00\x00\x00\x00",  # image descriptor at (0, 0)
            size,
            b"\x00",  # no local colour table, not interlaced
            b"\x08",  # LZW minimum code size
            *_sub_blocks(lzw_encode(pixels, 8)),
            b"\x3b",  # trailer
        )
    )


def flag_gif(cc: str) -> bytes:
    """The GIF89a image of the flag for one of the 194 codes (any case); cached.

    Raises ``ValueError`` for an unknown code.
    """
    return _flag_gif(normalize_cc(cc))
