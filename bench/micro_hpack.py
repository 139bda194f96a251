"""Micro-benchmark of Corral's HPACK codec beside the `hpack` package (h2's), in us per block.

Three cases: h2load's request block once the dynamic table is warm (five one-byte indexed
fields: what every request after a connection's first costs), a browser's first request
(Huffman literals with incremental indexing, a fresh table each time; Corral's decoder with
its Huffman cache warm, as on a server, and emptied each time), and encoding a 4-field response
head. Best of N rounds. Run it with a compiled install's interpreter (`python -m corral
--version` says "(compiled)") to measure what users run:

    python bench/micro_hpack.py [--rounds 7] [--blocks 20000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import hpack

from corral.http import h2_hpack
from corral.http.h2_hpack import Decoder, Encoder

H2LOAD = [
    (b":method", b"GET"),
    (b":scheme", b"https"),
    (b":path", b"/"),
    (b":authority", b"127.0.0.1:8000"),
    (b"user-agent", b"h2load nghttp2/1.59.0"),
]
BROWSER = [
    (b":method", b"GET"),
    (b":scheme", b"https"),
    (b":authority", b"www.example.com"),
    (b":path", b"/articles/2024/some-page?ref=home"),
    (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0"),
    (b"accept", b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    (b"accept-language", b"en-US,en;q=0.5"),
    (b"accept-encoding", b"gzip, deflate, br, zstd"),
    (b"cookie", b"sessionid=abcdef0123456789; csrftoken=0123456789abcdef0123456789abcdef"),
    (b"sec-fetch-dest", b"document"),
]
RESPONSE = [
    (b":status", b"200"),
    (b"content-type", b"text/plain"),
    (b"content-length", b"13"),
    (b"date", b"Fri, 04 Dec 2026 22:00:00 GMT"),
]


def best_us(run: Callable[[], object], blocks: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(blocks):
            run()
        best = min(best, time.perf_counter() - start)
    return best / blocks * 1e6


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--rounds", type=int, default=7)
    args.add_argument("--blocks", type=int, default=20000)
    options = args.parse_args()
    blocks, rounds = options.blocks, options.rounds

    reference = hpack.Encoder()
    first, warm = reference.encode(H2LOAD), reference.encode(H2LOAD)
    assert len(warm) == len(H2LOAD), "the warm block should be one byte per field"
    ours, theirs = Decoder(1 << 16), hpack.Decoder()
    assert ours.decode(first) == H2LOAD and theirs.decode(first, raw=True) == H2LOAD
    browser = hpack.Encoder().encode(BROWSER, huffman=True)

    def ours_cold_cache() -> object:
        h2_hpack._HUFFMAN_CACHE.clear()  # a private, emptied only to show the cache's worth
        return Decoder(1 << 16).decode(browser)

    our_encoder, their_encoder = Encoder(), hpack.Encoder()
    our_encoder.encode(RESPONSE)  # past the first block's table size update
    their_encoder.encode(RESPONSE)  # its table now holds the response fields: its best case
    cases: list[tuple[str, Callable[[], object], Callable[[], object]]] = [
        ("h2load request, warm table (5 indexed)", lambda: ours.decode(warm), lambda: theirs.decode(warm, raw=True)),
        (
            "browser first request (10, Huffman)",
            lambda: Decoder(1 << 16).decode(browser),
            lambda: hpack.Decoder().decode(browser, raw=True),
        ),
        ("  the same, Huffman cache emptied", ours_cold_cache, lambda: hpack.Decoder().decode(browser, raw=True)),
        (
            "encode a 4-field response head",
            lambda: our_encoder.encode(RESPONSE),
            lambda: their_encoder.encode(RESPONSE),
        ),
    ]
    print(f"{'us per block':42} {'corral':>8} {'hpack':>8}")
    for name, corral_run, hpack_run in cases:
        print(f"{name:42} {best_us(corral_run, blocks, rounds):8.2f} {best_us(hpack_run, blocks, rounds):8.2f}")


if __name__ == "__main__":
    main()
