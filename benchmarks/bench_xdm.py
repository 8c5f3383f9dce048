"""Benchmark: XDM build + validate throughput on the two ANS CDA samples, against a hashing/deflate floor.

Run: ``.venv/bin/python benchmarks/bench_xdm.py [--seconds 3]`` (not a test; bounded runtime, < 30 s).

* ``build+validate``: :func:`mssante.xdm.build_archive` then :func:`mssante.xdm.validate_archive` on an archive
  holding both samples (safe XML parsing of each CDA twice — at build and at validation — plus METADATA.XML);
* ``floor``: SHA-1 plus zlib deflate (level 6) plus inflate of the same CDA bytes, the unavoidable work of
  any XDM packer/reader, measured in the same run.

Throughput is reported over the CDA input bytes (MB/s, 1 MB = 10^6 bytes) and archives per second; the ratio
says how many times slower than the floor the full pipeline is.
"""

from __future__ import annotations

import argparse
import hashlib
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from mssante.xdm import build_archive, validate_archive

SAMPLES = Path(__file__).resolve().parents[1] / ".." / "shared" / "samples"
NOW = datetime(2024, 1, 1, tzinfo=UTC)


def _measure(fn: Callable[[], object], seconds: float) -> tuple[int, float]:
    fn()  # warm-up
    count, start = 0, time.perf_counter()
    while True:
        fn()
        count += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return count, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time budget per measurement (max 10)")
    args = parser.parse_args()
    seconds = min(max(args.seconds, 0.2), 10.0)
    docs = [
        (SAMPLES / "BIO-CR-BIO_2021.01_Microbiologie_V1.xml").read_bytes(),
        (SAMPLES / "VSM_1.4_2022.01.xml").read_bytes(),
    ]
    total = sum(len(d) for d in docs)

    def pipeline() -> None:
        report = validate_archive(build_archive(docs, now=NOW))
        if not report.ok:
            raise SystemExit(f"unexpected errors: {report.errors}")

    def floor() -> None:
        for d in docs:
            hashlib.sha1(d, usedforsecurity=False).digest()
            zlib.decompress(zlib.compress(d, 6))

    n_pipe, t_pipe = _measure(pipeline, seconds)
    n_floor, t_floor = _measure(floor, seconds)
    pipe_mbs = n_pipe * total / t_pipe / 1e6
    floor_mbs = n_floor * total / t_floor / 1e6
    print(f"input: 2 CDA documents, {total} bytes per archive")
    print(f"build+validate : {n_pipe / t_pipe:8.1f} archives/s  {pipe_mbs:8.2f} MB/s  ({n_pipe} runs, {t_pipe:.1f} s)")
    rate = n_floor / t_floor
    print(f"floor sha1+zlib: {rate:8.1f} sets/s      {floor_mbs:8.2f} MB/s  ({n_floor} runs, {t_floor:.1f} s)")
    print(f"ratio floor/pipeline: {floor_mbs / pipe_mbs:.1f}x")


if __name__ == "__main__":
    main()
