"""What would smaller zstd compression units save a point read?  One moves batch of a store, recompressed.

    python benchmarks/bench_zstd_frames.py STORE [--shard N] [--batch N] [--game-rows 163]

Takes the batch's non-empty body buffers (decompressed), recompresses each as one frame (the format
today) and as 8/16/32 KB frames, and times zstandard's C loop (``multi_decompress_to_buffer``, one call)
over all frames and over only the frames holding one game's rows (a ``--game-rows`` share of every buffer,
mid-batch); then the same with buffers under a threshold stored uncompressed.  Prints bytes and times.
"""
from __future__ import annotations

import argparse
import struct
import sys
import time
from pathlib import Path

import numpy as np
import zstandard as z

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gamestore.shard import ShardReader  # noqa: E402


def _time(d: z.ZstdDecompressor, frames: list[bytes], sizes: list[int], reps: int = 30) -> float:
    seg = np.zeros((len(frames), 2), dtype="<u8")
    pos = 0
    for i, fr in enumerate(frames):
        seg[i] = (pos, len(fr))
        pos += len(fr)
    data = z.BufferWithSegments(b"".join(frames), seg.tobytes())
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        d.multi_decompress_to_buffer(data, decompressed_sizes=np.array(sizes, dtype="<u8").tobytes(), threads=1)
        out.append(time.perf_counter() - t)
    return float(np.median(out)) * 1e3


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("store")
    p.add_argument("--shard", type=int, default=0)
    p.add_argument("--batch", type=int, default=0)
    p.add_argument("--game-rows", type=int, default=163)
    args = p.parse_args(argv)
    reader = ShardReader.at(sorted((Path(args.store) / "shards").iterdir())[args.shard])
    fast = reader.fast_reader()
    assert fast is not None
    length, _nodes, bufs, body = fast.point_layout(args.batch)
    d, c = z.ZstdDecompressor(), z.ZstdCompressor(level=1)
    raw = []
    for off, size in bufs.reshape(-1, 2).tolist():
        n = struct.unpack_from("<q", fast.view, body + off)[0] if size else 0
        raw.append(d.decompress(fast.view[body + off + 8:body + off + size], max_output_size=n) if n > 0 else b"")
    bufs_raw = [b for b in raw if b]
    whole = [c.compress(b) for b in bufs_raw]
    share = args.game_rows / length
    print(f"batch {args.batch}: {length} rows, {len(bufs_raw)} non-empty buffers, {sum(map(len, bufs_raw)):,} B raw; "
          f"one frame each (today): {sum(map(len, whole)):,} B, decompress all {_time(d, whole, list(map(len, bufs_raw))):.3f} ms")
    for chunk in (8192, 16384, 32768):
        frames, sizes, game, game_sizes = [], [], [], []
        for b in bufs_raw:
            lo = int(len(b) * 0.4)
            hi = lo + max(1, int(len(b) * share))
            for s in range(0, len(b), chunk):
                part = b[s:s + chunk]
                fr = c.compress(part)
                frames.append(fr)
                sizes.append(len(part))
                if s < hi and s + chunk > lo:
                    game.append(fr)
                    game_sizes.append(len(part))
        total = sum(map(len, frames))
        print(f"  {chunk // 1024:2d} KB frames: {total:,} B ({total / sum(map(len, whole)) - 1:+.1%}); decompress all "
              f"{_time(d, frames, sizes):.3f} ms, one game's {len(game)} frames {_time(d, game, game_sizes):.3f} ms")
    for limit in (1024, 4096, 16384):
        keep = [i for i, b in enumerate(bufs_raw) if len(b) >= limit]
        extra = sum(len(b) - len(whole[i]) for i, b in enumerate(bufs_raw) if len(b) < limit)
        print(f"  buffers < {limit // 1024:2d} KB stored raw: +{extra:,} B ({extra / sum(map(len, whole)):+.1%}); "
              f"decompress the {len(keep)} others {_time(d, [whole[i] for i in keep], [len(bufs_raw[i]) for i in keep]):.3f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
