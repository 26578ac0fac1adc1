#!/usr/bin/env python3
"""End-to-end throughput and peak memory of `amend aggregate` on generated data.

Usage: python3 bench/aggregate.py [--events 1000000 10000000] [--workers 1 2] [--runs 5]

Builds the release binary, generates each dataset once with `amend gen` (10k keys, one day,
1% corrections) into bench/data/, then runs `amend aggregate --window tumbling:1m` RUNS times
per (events, workers), interleaving worker counts so that machine noise hits them alike.
Prints, per configuration, the median, min and max of records/s (from summary.json: read,
decode, resolve, aggregate and write, end to end) and of peak RSS (from /usr/bin/time), and
the peak RSS per current id.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AMEND = os.path.join(ROOT, "target", "release", "amend")


def sh(args, **kw):
    return subprocess.run(args, check=True, **kw)


def dataset(events):
    out = os.path.join(ROOT, "bench", "data", f"{events}")
    if not os.path.exists(os.path.join(out, "corrections.jsonl")):
        sh([AMEND, "gen", "--events", str(events), "--keys", "10000", "--span", "1d",
            "--corrections", "0.01", "--seed", "1", "--out", out], stdout=subprocess.DEVNULL)
    return out


def run_once(data, workers):
    with tempfile.TemporaryDirectory() as out:
        timing = os.path.join(out, "time.txt")
        sh(["/usr/bin/time", "-f", "%M", "-o", timing, AMEND, "aggregate",
            "--input", os.path.join(data, "events.jsonl"),
            "--corrections", os.path.join(data, "corrections.jsonl"),
            "--window", "tumbling:1m", "--workers", str(workers), "--quiet", "--out", out],
           stdout=subprocess.DEVNULL)
        with open(os.path.join(out, "summary.json")) as f:
            summary = json.load(f)
        with open(timing) as f:
            rss_kb = int(f.read().split()[-1])
        return summary, rss_kb * 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if not os.path.exists("/usr/bin/time"):
        sys.exit("bench needs GNU time: apt-get install time")
    sh(["cargo", "build", "--release", "--quiet", "--bin", "amend"], cwd=ROOT)
    print(f"machine: {os.cpu_count()} cores; runs per figure: {args.runs}")
    print("| events | workers | records/s median (min–max) | elapsed s median | peak RSS MiB median (min–max) | RSS bytes per current id |")
    print("|---|---|---|---|---|---|")
    for events in args.events:
        data = dataset(events)
        results = {w: [] for w in args.workers}
        for _ in range(args.runs):
            for w in args.workers:
                results[w].append(run_once(data, w))
        for w in args.workers:
            rates = [s["records_per_second"] for s, _ in results[w]]
            secs = [s["elapsed_seconds"] for s, _ in results[w]]
            rss = [r for _, r in results[w]]
            ids = results[w][0][0]["ids_current"]
            digests = {s["table_digest"] for s, _ in results[w]}
            assert len(digests) == 1, f"runs disagree: {digests}"
            mib = [r / 2**20 for r in rss]
            print(f"| {events:,} | {w} | {statistics.median(rates):,.0f} ({min(rates):,.0f}–{max(rates):,.0f}) "
                  f"| {statistics.median(secs):.2f} | {statistics.median(mib):,.0f} ({min(mib):,.0f}–{max(mib):,.0f}) "
                  f"| {statistics.median(rss) / ids:,.0f} |")
        digests = {results[w][0][0]["table_digest"] for w in args.workers}
        assert len(digests) == 1, f"worker counts disagree: {digests}"


if __name__ == "__main__":
    main()
