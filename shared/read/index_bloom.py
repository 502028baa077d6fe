"""The indicator index's bloom filter: which (kind, value) entries an index may hold, so a search skips reading a row
group of the days that hold none of its values.

The filter sits in the index's footer (its own key-value entry, its parameters in the manifest), so the footer
digest in the index's name verifies it before it is used: a damaged filter makes the footer not the one named, and
the day is read whole. It can only answer "maybe" for an entry it was built from, so it never hides a hit; a false
"maybe" reads the row group, as without it.

The hash is written once here for the writer (index_build) and the reader (indicator_index, DuckDB's and Spark's
search), with numpy over the Arrow string buffers, vectorized: pyarrow exposes no row hash, DuckDB's hash is not in
the Spark reader, Python's hash() is salted per process. Scheme 1: of each value's UTF-8 bytes a polynomial
(each byte plus one times a power of an odd constant, modulo 2**64) xor its length times a constant, through
splitmix64's finalizer; xor the same hash of its kind, through the finalizer again: h1. h2 = the finalizer of h1,
made odd; probe i is h1 + i*h2 (modulo 2**64), its high 32 bits scaled to [0, bits).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SCHEME = 1
BITS_PER_ENTRY = 8  # one byte per distinct (kind, value): 2.2% of absent values answer "maybe" with 5 probes
HASHES = 5
_P = np.uint64(0x100000001B3)  # FNV's 64-bit prime: odd, so its powers never collapse to zero modulo 2**64
_LENGTH = np.uint64(0x9E3779B97F4A7C15)
_CHUNK = 1 << 16  # strings hashed at once: bounds the per-byte temporaries to a few MB


@dataclass(frozen=True)
class Bloom:
    bits: int
    hashes: int
    data: bytes  # bits // 8 bytes, bit b of byte i is probe position 8*i + b

    def may_hold(self, kind: str, values: set[str]) -> bool:
        """Whether one of the (kind, value) entries may be in the filter (False: certainly none is)."""
        if not values or len(self.data) * 8 != self.bits or self.bits <= 0 or self.hashes <= 0:
            return bool(values)  # not a filter of these parameters, or nothing to probe: every value may be there
        hashes = key_hashes(kind, tuple(sorted(values)))
        positions = _positions(hashes, self.bits, self.hashes)
        table = np.frombuffer(self.data, np.uint8)
        set_bits = (table[positions >> 3] >> (positions & 7).astype(np.uint8)) & 1
        return bool(set_bits.all(axis=1).any())


@functools.lru_cache(maxsize=256)
def key_hashes(kind: str, values: tuple[str, ...]) -> np.ndarray:
    """The hashes of (kind, value) entries; cached, as a sweep looks the same values up in every day's filter."""
    encoded = [v.encode() for v in values]
    offsets = np.cumsum([0] + [len(v) for v in encoded], dtype=np.int64)
    hashes = _with_kind(kind, _hash(np.frombuffer(b"".join(encoded), np.uint8), offsets))
    hashes.setflags(write=False)
    return hashes


def build(kinds: pa.Array, values: pa.Array) -> Bloom:
    """The filter of these (kind, value) entries, sorted (repeats set the same bits; it is sized by the distinct
    ones)."""
    kinds, values = _plain(kinds), _plain(values)
    if len(values) > 1:  # an index repeats a (kind, value) for each file and row group holding it: hashed once
        first = pc.or_(pc.not_equal(values.slice(1), values.slice(0, len(values) - 1)),
                       pc.not_equal(kinds.slice(1), kinds.slice(0, len(kinds) - 1)))
        first = pa.concat_arrays([pa.array([True]), first])
        kinds, values = kinds.filter(first), values.filter(first)
    bits = max(64, -(-len(values) * BITS_PER_ENTRY // 64) * 64)
    table = np.zeros(bits, np.bool_)
    runs = pc.run_end_encode(kinds)
    ends, start = runs.run_ends.to_numpy(), 0
    for kind, end in zip(runs.values.to_pylist(), ends, strict=True):
        for at in range(start, int(end), _CHUNK):
            chunk = values.slice(at, min(_CHUNK, int(end) - at))
            offsets = np.frombuffer(chunk.buffers()[1], np.int64)[chunk.offset:chunk.offset + len(chunk) + 1]
            data = chunk.buffers()[2]
            data = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
            table[_positions(_with_kind(kind, _hash(data, offsets)), bits, HASHES).ravel()] = True
        start = int(end)
    return Bloom(bits, HASHES, np.packbits(table, bitorder="little").tobytes())


def _plain(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    return (array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array).cast(pa.large_string())


def _with_kind(kind: str, hashes: np.ndarray) -> np.ndarray:
    encoded = kind.encode()
    return _mix(hashes ^ _hash(np.frombuffer(encoded, np.uint8), np.array([0, len(encoded)], np.int64))[0])


def _positions(hashes: np.ndarray, bits: int, probes: int) -> np.ndarray:
    """The probe positions of each hash: int64, shape (hashes, probes). Probe i is h1 + i*h2 (h2 odd), its high 32
    bits scaled to [0, bits) by a multiply and shift (no division)."""
    h2 = _mix(hashes) | np.uint64(1)
    probe = hashes[:, None] + np.arange(probes, dtype=np.uint64)[None, :] * h2[:, None]
    return (((probe >> np.uint64(32)) * np.uint64(bits)) >> np.uint64(32)).astype(np.int64)


def _hash(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Scheme 1's 64-bit hash of each string data[offsets[i]:offsets[i+1]] (UTF-8 bytes)."""
    data = data[offsets[0]:offsets[-1]]
    starts, lengths = offsets[:-1] - offsets[0], np.diff(offsets)
    powers = np.cumprod(np.concatenate([[np.uint64(1)], np.full(int(lengths.max(initial=0)), _P)]), dtype=np.uint64)
    position = np.arange(len(data), dtype=np.int64) - np.repeat(starts, lengths)
    terms = np.append((data.astype(np.uint64) + np.uint64(1)) * powers[position], np.uint64(0))
    # reduceat gives a start's own term where the next string starts at the same place: empty strings are zeroed.
    sums = np.add.reduceat(terms, np.minimum(starts, len(data)))
    sums[lengths == 0] = 0
    return _mix(sums ^ (lengths.astype(np.uint64) * _LENGTH))


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer."""
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))
