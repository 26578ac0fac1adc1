#!/usr/bin/env python3
"""`amend reconcile` beside a plain `amend aggregate`: batch time and follow-mode latency.

Usage: python3 bench/reconcile.py [--events 10000000] [--keys 700] [--wrong 0.01] [--runs 5]
           [--injections 200] [--parts batch,follow]

Builds the release binary, generates the dataset once with `amend gen` (KEYS keys, one day,
1% corrections; 700 keys fill about one million (minute, key) rows from 10M events) into
bench/data/, aggregates it once, and makes the published table from that snapshot with a
share WRONG of its rows wrong (in turn: a sum off by 0.01, a count off by one, a row left out;
and as many extra rows). Then:

- batch: `amend aggregate` and `amend reconcile --published` over the same files, RUNS times
  each, interleaved; median, min and max of the wall time and of the peak RSS (/usr/bin/time),
  and the ratio of the medians. Every reconcile run must find the planted discrepancies.
- follow: `amend aggregate --follow` loaded with the files, then INJECTIONS single corrections
  appended one at a time (wall time from the write to its epoch in epochs.jsonl, which is
  written after the changelog, digests changelog and discrepancy changelog are flushed); then
  the same with `amend reconcile --follow --published`; p50/p99/max of each and their ratio.

Small sizes make a smoke run: --events 200000 --keys 100 --runs 1 --injections 20.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import follow  # noqa: E402  (Epochs, Ids, inject, percentile)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "bench", "data")
AMEND = os.path.join(ROOT, "target", "release", "amend")


def sh(args, **kw):
    return subprocess.run(args, check=True, **kw)


def dataset(amend, events, keys):
    out = os.path.join(DATA, f"reconcile-{events}-{keys}")
    if not os.path.exists(os.path.join(out, "corrections.jsonl")):
        sh([amend, "gen", "--events", str(events), "--keys", str(keys), "--span", "1d",
            "--corrections", "0.01", "--seed", "1", "--out", out], stdout=subprocess.DEVNULL)
    return out


def published_table(amend, data, wrong, workers):
    """The correct snapshot with a share `wrong` of rows made wrong; returns (path, planted)."""
    path = os.path.join(data, f"published-{wrong}.jsonl")
    meta = path + ".planted"
    if os.path.exists(meta):
        with open(meta) as f:
            return path, json.load(f)
    with tempfile.TemporaryDirectory(dir=DATA) as out:
        sh([amend, "aggregate", "--input", os.path.join(data, "events.jsonl"),
            "--corrections", os.path.join(data, "corrections.jsonl"), "--window", "tumbling:1m",
            "--workers", str(workers), "--quiet", "--out", out], stdout=subprocess.DEVNULL)
        every = max(1, round(1 / wrong))
        planted = {"mismatch": 0, "missing": 0, "extra": 0, "rows": 0}
        with open(os.path.join(out, "snapshot.jsonl")) as src, open(path + ".tmp", "w") as dst:
            for i, line in enumerate(src):
                if i % every != every // 2:
                    dst.write(line)
                    planted["rows"] += 1
                    continue
                row = json.loads(line)
                turn = (i // every) % 3
                if turn == 0:  # a sum off by one cent
                    cents = round(float(row["sum"]) * 100) + 1
                    row["sum"] = f"{cents / 100:.2f}"
                    row["mean"] = None
                    planted["mismatch"] += 1
                elif turn == 1:  # a count off by one
                    row["count"] += 1
                    row["mean"] = None
                    planted["mismatch"] += 1
                else:  # left out; an extra row under a key no event has
                    planted["missing"] += 1
                    row["key"] = f"extra-{i}"
                    planted["extra"] += 1
                row = {k: v for k, v in row.items() if v is not None}
                dst.write(json.dumps(row, separators=(",", ":")) + "\n")
                planted["rows"] += 1
    os.replace(path + ".tmp", path)
    with open(meta, "w") as f:
        json.dump(planted, f)
    return path, planted


def timed_cpu(cmd):
    """Runs cmd under GNU time; returns (wall seconds, CPU seconds (user + system), peak RSS
    bytes, exit code)."""
    with tempfile.NamedTemporaryFile() as timing:
        start = time.monotonic()
        proc = subprocess.run(["/usr/bin/time", "-f", "%U %S %M", "-o", timing.name] + cmd,
                              stdout=subprocess.DEVNULL)
        seconds = time.monotonic() - start
        with open(timing.name) as f:
            user, system, rss_kb = f.read().split()[-3:]
    return seconds, float(user) + float(system), int(rss_kb) * 1024, proc.returncode


def timed(cmd):
    """Runs cmd; returns (wall seconds, peak RSS bytes, exit code)."""
    seconds, _, rss, code = timed_cpu(cmd)
    return seconds, rss, code


def batch(amend, args, data, published, planted):
    base = ["--input", os.path.join(data, "events.jsonl"),
            "--corrections", os.path.join(data, "corrections.jsonl"), "--window", "tumbling:1m",
            "--workers", str(args.workers), "--quiet"]
    results = {"aggregate": [], "reconcile": []}
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(dir=DATA) as work:
            out = os.path.join(work, "agg")
            results["aggregate"].append(timed([amend, "aggregate"] + base + ["--out", out])[:2])
            shutil.rmtree(out)
            out = os.path.join(work, "rec")
            seconds, rss, code = timed([amend, "reconcile"] + base
                                       + ["--published", published, "--out", out])
            assert code == 1, f"reconcile exited {code}, expected 1 (discrepancies)"
            with open(os.path.join(out, "reconcile_summary.json")) as f:
                kinds = json.load(f)["kinds"]
            for kind in ("mismatch", "missing", "extra"):
                assert kinds[kind] == planted[kind], (kind, kinds, planted)
            results["reconcile"].append((seconds, rss))
            print(f"run {run + 1}: aggregate {results['aggregate'][-1][0]:.2f} s, "
                  f"reconcile {seconds:.2f} s", flush=True)
    print(f"\nreconcile found {kinds}; published rows {planted['rows']:,}\n")
    print("| job | runs | wall s median (min–max) | peak RSS MiB median (min–max) |")
    print("|---|---|---|---|")
    medians = {}
    for job, runs in results.items():
        secs = [s for s, _ in runs]
        mib = [r / 2**20 for _, r in runs]
        medians[job] = (statistics.median(secs), statistics.median(mib))
        print(f"| {job} | {len(runs)} | {statistics.median(secs):.2f} ({min(secs):.2f}–{max(secs):.2f}) "
              f"| {statistics.median(mib):,.0f} ({min(mib):,.0f}–{max(mib):,.0f}) |")
    ratio = medians["reconcile"][0] / medians["aggregate"][0]
    print(f"\nreconcile / aggregate: {ratio:.2f}x time, "
          f"{medians['reconcile'][1] / medians['aggregate'][1]:.2f}x peak RSS")


def follow_latency(amend, args, data, published, job):
    """Loads a followed job, injects single corrections; returns the wall latencies (ms)."""
    with tempfile.TemporaryDirectory(dir=DATA) as work:
        corrections = os.path.join(work, "corrections.jsonl")
        shutil.copyfile(os.path.join(data, "corrections.jsonl"), corrections)
        out = os.path.join(work, "out")
        cmd = [amend, job, "--follow", "--input", os.path.join(data, "events.jsonl"),
               "--corrections", corrections, "--window", "tumbling:1m",
               "--workers", str(args.workers), "--poll-interval", "1ms",
               "--snapshot-interval", "1h", "--quiet", "--out", out]
        if job == "reconcile":
            cmd += ["--published", published]
        started = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        epochs = follow.Epochs(os.path.join(out, "epochs.jsonl"))
        size = os.path.getsize(corrections)
        epochs.wait(lambda e: os.path.basename(str(e.get("source"))) == "corrections.jsonl"
                    and e.get("end") == size, proc)
        print(f"{job} --follow: loaded in {time.monotonic() - started:.1f} s", flush=True)
        ids = follow.Ids(os.path.join(data, "events.jsonl"))
        wall = []
        for i in range(args.injections):
            ms, _, _, _ = follow.inject(corrections, epochs, proc,
                                        ids.line(i, follow.MIX[i % len(follow.MIX)]),
                                        "corrections.jsonl")
            wall.append(ms)
            time.sleep(0.02)
        if job == "reconcile":
            changes = os.path.join(out, "reconcile_changelog.jsonl")
            with open(changes, "rb") as f:
                f.seek(max(0, os.path.getsize(changes) - 4096))
                tail = f.read().decode(errors="replace").strip().splitlines()
            last = json.loads(tail[-1])
            assert last["epoch"] > 1, "the discrepancy changelog did not follow the corrections"
        proc.terminate()
        proc.wait()
    return wall


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--keys", type=int, default=700)
    parser.add_argument("--wrong", type=float, default=0.01)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--injections", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--parts", default="batch,follow")
    parser.add_argument("--amend", default=None,
                        help="an amend binary to use instead of building target/release/amend")
    args = parser.parse_args()
    if not os.path.exists("/usr/bin/time"):
        sys.exit("bench needs GNU time: apt-get install time")
    amend = args.amend
    if amend is None:
        sh(["cargo", "build", "--release", "--quiet", "--bin", "amend"], cwd=ROOT)
        amend = AMEND
    os.makedirs(DATA, exist_ok=True)
    print(f"machine: {os.cpu_count()} cores; workers: {args.workers}; runs: {args.runs}")
    data = dataset(amend, args.events, args.keys)
    published, planted = published_table(amend, data, args.wrong, args.workers)
    print(f"data: {data} ({args.events:,} events, {args.keys} keys); published: {published} "
          f"({planted['rows']:,} rows, planted {planted})", flush=True)
    parts = set(args.parts.split(","))
    if "batch" in parts:
        batch(amend, args, data, published, planted)
    if "follow" in parts:
        latencies = {job: follow_latency(amend, args, data, published, job)
                     for job in ("aggregate", "reconcile")}
        print("\n| followed job | corrections | wall ms p50 | wall ms p99 | wall ms max |")
        print("|---|---|---|---|---|")
        for job, wall in latencies.items():
            print(f"| {job} | {len(wall)} | {follow.percentile(wall, 50):.2f} | "
                  f"{follow.percentile(wall, 99):.2f} | {max(wall):.2f} |")
        p50 = {job: follow.percentile(wall, 50) for job, wall in latencies.items()}
        print(f"\nreconcile / aggregate, one correction p50: {p50['reconcile'] / p50['aggregate']:.2f}x")


if __name__ == "__main__":
    main()
