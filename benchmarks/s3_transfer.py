"""Benchmark: upload/download of one large file through S3ArtifactStore vs plain boto3.

Baseline: ``client.upload_file`` / ``client.download_file`` with boto3's default
TransferConfig (8 MiB parts, 10 threads). Ours: ``S3ArtifactStore.put_file`` / ``get_file``
end to end — including the sha256 pass before upload, the HEAD checks, and the sha256
verification of the download — with the store's defaults (16 MiB parts, 16 threads).
Both run in the same process against the same moto S3 server on 127.0.0.1, alternating,
``--repeat`` times; the table shows the median.

moto keeps objects in memory: a 1 GiB object costs the server a few GiB while a multipart
upload completes (its peak RSS is printed). Shrink with --size-mb or MODELDEPLOY_BENCH_SIZE_MB.

    python benchmarks/s3_transfer.py                  # 1 GiB
    python benchmarks/s3_transfer.py --size-mb 64 --repeat 3 --out benchmarks/results/s3_transfer.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))  # the test kit's moto launcher (s3testkit/moto.py)

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402
from s3testkit.moto import MotoServer  # noqa: E402

from modeldeploy.artifacts import LocalArtifact  # noqa: E402
from modeldeploy.artifacts.s3 import S3ArtifactStore  # noqa: E402

MB = 1024 * 1024


def make_file(path: Path, size: int) -> None:
    chunk = os.urandom(16 * MB)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            f.write(chunk[: min(left, len(chunk))])
            left -= len(chunk)


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=int(os.environ.get("MODELDEPLOY_BENCH_SIZE_MB", "1024")))
    ap.add_argument("--repeat", type=int, default=int(os.environ.get("MODELDEPLOY_BENCH_REPEAT", "2")))
    ap.add_argument("--out", type=Path, default=None, help="also write the markdown table here")
    ap.add_argument(
        "--endpoint",
        default=os.environ.get("MODELDEPLOY_BENCH_ENDPOINT"),
        help="benchmark an existing S3 endpoint (credentials from the environment) instead of a fresh moto server",
    )
    ap.add_argument("--bucket", default="bench", help="bucket to use (created if missing)")
    args = ap.parse_args(argv)
    size = args.size_mb * MB

    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3"):
        os.environ.pop(name, None)
    if not args.endpoint:
        os.environ.update(
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
            AWS_DEFAULT_REGION="us-east-1",
            AWS_EC2_METADATA_DISABLED="true",
        )
    server_cm = nullcontext(None) if args.endpoint else MotoServer()
    with server_cm as server, tempfile.TemporaryDirectory(prefix="s3bench-") as tmp:
        endpoint = args.endpoint or server.endpoint
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        src = Path(tmp) / "blob.bin"
        make_file(src, size)
        client = boto3.client("s3", endpoint_url=endpoint, config=Config(s3={"addressing_style": "path"}))
        if args.bucket not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
            client.create_bucket(Bucket=args.bucket)
        bucket = args.bucket
        store = S3ArtifactStore(f"s3://{bucket}/ours")
        results: dict[str, list[float]] = {k: [] for k in ("base_up", "ours_up", "base_down", "ours_down")}
        for i in range(args.repeat):
            results["base_up"].append(timed(lambda: client.upload_file(str(src), bucket, "base/blob.bin")))
            results["ours_up"].append(timed(lambda: store.put_file(LocalArtifact(src, "blob.bin", "other"))))
            results["base_down"].append(
                timed(lambda: client.download_file(bucket, "base/blob.bin", str(Path(tmp) / "b.out")))
            )
            results["ours_down"].append(timed(lambda: store.get_file("blob.bin", Path(tmp) / "o.out")))
            for key in ("base/blob.bin", "ours/blob.bin"):  # free moto's memory; the next upload starts cold
                client.delete_object(Bucket=bucket, Key=key)
            for f in ("b.out", "o.out"):
                (Path(tmp) / f).unlink(missing_ok=True)
            print(
                f"round {i + 1}/{args.repeat}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in results.items()),
                flush=True,
            )
        moto_peak = peak_rss_mb(server.proc.pid) if server else None

    def mbps(key: str) -> float:  # MiB/s
        return args.size_mb / statistics.median(results[key])

    settings = store.settings
    lines = [
        f"# S3 transfer benchmark ({datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')})",
        "",
        f"File: {args.size_mb} MiB random bytes; median of {args.repeat} alternating rounds; "
        + (
            f"moto_server on 127.0.0.1 (HTTP, objects in memory, peak RSS {moto_peak:.0f} MiB)."
            if moto_peak
            else f"endpoint {endpoint}."
        ),
        f"Machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), Python {platform.python_version()}, "
        f"boto3 {boto3.__version__}; CPUs shared with other work, so absolute numbers are noisy.",
        f"Baseline: boto3 `upload_file`/`download_file`, default TransferConfig (8 MiB parts, 10 threads). "
        f"Ours: `S3ArtifactStore.put_file`/`get_file` ({settings.part_size // MB} MiB parts, {settings.concurrency} threads, "
        f"{settings.checksum_algorithm} part checksums) end to end, incl. sha256 before upload and verification after download.",
        "",
        "| operation | baseline MiB/s | ours MiB/s | ours / baseline |",
        "|---|---:|---:|---:|",
        f"| upload | {mbps('base_up'):.1f} | {mbps('ours_up'):.1f} | {mbps('ours_up') / mbps('base_up'):.2f} |",
        f"| download | {mbps('base_down'):.1f} | {mbps('ours_down'):.1f} | {mbps('ours_down') / mbps('base_down'):.2f} |",
        "",
    ]
    text = "\n".join(line for line in lines if line is not None)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
