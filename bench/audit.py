#!/usr/bin/env python3
"""Audit-log parsing throughput beside plain JSON Lines, in MB/s.

Usage: python3 bench/audit.py [--events 1000000] [--workers 1 2] [--runs 5]

Two measurements, release build:

1. Decoding alone (`operators/examples/decode_throughput.rs`): the main input's JSON decoder,
   the `--audit-pattern` regex decoder and the `--audit-format jsonl --audit-path` decoder over
   lines generated in memory (one in four log lines is noise that matches nothing).
2. End to end: `amend gen` events (10k keys, one day) as `--input events.jsonl`, beside the
   same events written as an application's text log (plus one noise line in four) read with
   `--audit-log app.log --audit-pattern ...` and an empty main input. Both runs must give the
   same table digest. MB/s is the file's size over the run's wall time (summary.json), so it
   includes resolving, aggregating and writing, not only parsing.
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AMEND = os.path.join(ROOT, "target", "release", "amend")
EXAMPLE = os.path.join(ROOT, "target", "release", "examples", "decode_throughput")
PATTERN = (r"^\S+ INFO order-service: recorded event id=(?P<id>\S+) key=(?P<key>\S+) "
           r"ts=(?P<ts>\S+) value=(?P<value>\S+) op=(?P<op>\w+) version=(?P<version>\d+)$")


def sh(args, **kw):
    return subprocess.run(args, check=True, **kw)


def dataset(events):
    out = os.path.join(ROOT, "bench", "data", f"audit-{events}")
    log = os.path.join(out, "app.log")
    if not os.path.exists(log):
        sh([AMEND, "gen", "--events", str(events), "--keys", "10000", "--span", "1d",
            "--bad", "0", "--seed", "1", "--out", out], stdout=subprocess.DEVNULL)
        with open(os.path.join(out, "events.jsonl")) as src, open(log + ".tmp", "w") as dst:
            for i, line in enumerate(src):
                e = json.loads(line)
                value = line.split('"value":', 1)[1].split(",", 1)[0].rstrip("}\n")
                dst.write(f"2026-11-21T00:00:00Z INFO order-service: recorded event "
                          f"id={e['id']} key={e['key']} ts={e['ts']} value={value} "
                          f"op={e.get('op', 'upsert')} version={e.get('version', 0)}\n")
                if i % 3 == 0:
                    dst.write(f"2026-11-21T00:00:00Z DEBUG order-service: pool stats "
                              f"idle={i % 7} busy=1\n")
        os.rename(log + ".tmp", log)
        open(os.path.join(out, "empty.jsonl"), "w").close()
    return out


def run_once(args):
    with tempfile.TemporaryDirectory() as out:
        sh([AMEND, "aggregate", *args, "--window", "tumbling:1m", "--quiet", "--out", out],
           stdout=subprocess.DEVNULL)
        with open(os.path.join(out, "summary.json")) as f:
            return json.load(f)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    sh(["cargo", "build", "--release", "--quiet", "--bin", "amend"], cwd=ROOT)
    sh(["cargo", "build", "--release", "--quiet", "-p", "amend-operators",
        "--example", "decode_throughput"], cwd=ROOT)
    print("Decoding alone:\n")
    sh([EXAMPLE, str(args.events), str(args.runs)])
    data = dataset(args.events)
    inputs = {
        "JSON Lines (--input)": (os.path.join(data, "events.jsonl"),
                                 ["--input", os.path.join(data, "events.jsonl")]),
        "text log (--audit-pattern)": (os.path.join(data, "app.log"),
                                       ["--input", os.path.join(data, "empty.jsonl"),
                                        "--audit-log", os.path.join(data, "app.log"),
                                        "--audit-pattern", PATTERN]),
    }
    results = {}
    for _ in range(args.runs):
        for workers in args.workers:
            for name, (path, flags) in inputs.items():
                summary = run_once([*flags, "--workers", str(workers)])
                mb = os.path.getsize(path) / 1e6
                results.setdefault((name, workers), []).append(
                    (mb / summary["elapsed_seconds"], summary["records_per_second"],
                     summary["table_digest"], mb))
    print("\nEnd to end:\n")
    print("| input | workers | MB | MB/s median (min–max) | records/s median |")
    print("|---|---|---|---|---|")
    digests = set()
    for (name, workers), runs in results.items():
        speeds = [r[0] for r in runs]
        digests.update(r[2] for r in runs)
        print(f"| {name} | {workers} | {runs[0][3]:.1f} | {statistics.median(speeds):.0f} "
              f"({min(speeds):.0f}–{max(speeds):.0f}) | "
              f"{statistics.median(r[1] for r in runs):,.0f} |")
    assert len(digests) == 1, f"runs disagree: {digests}"
    print(f"\nEvery run gave table digest {digests.pop()}.")


if __name__ == "__main__":
    main()
