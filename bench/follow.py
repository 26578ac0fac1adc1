#!/usr/bin/env python3
"""Latency and memory of `amend aggregate --follow` on generated data.

Usage: python3 bench/follow.py [--events 10000000] [--injections 200] [--batch 10000]
           [--batch-reps 5] [--stream-events 100000000] [--parts load,single,batch,plain,stream]

Builds the release binary, generates the dataset once with `amend gen` (10k keys, one day, 1%
corrections) into bench/data/, then:

- load: starts `amend aggregate --follow --input events.jsonl --corrections corrections.jsonl
  --window tumbling:1m` and waits until epochs.jsonl shows both files read (the load epochs);
- single: appends one correction line at a time to the corrections file (INJECTIONS times) and
  measures the wall time from the write to its epoch in epochs.jsonl (the changelog is flushed
  before the epoch's line), beside the in-process `latency_ms` of that epoch (read to flushed);
- batch: the same for BATCH mixed corrections in one write (new versions, moves to another key
  or minute, same-version fixes, deletes, new ids), BATCH_REPS times;
- plain: the time of a plain `amend aggregate` over the same files, for the ratio to a batch;
- stream: `amend gen --out - --events STREAM_EVENTS | amend aggregate --follow --input -
  --allowed-lateness 1h`, sampling the aggregate process's RSS (VmRSS) and the records read
  (epochs.jsonl) every second: the curve of RSS against records, its peak against its steady
  level (the median once a quarter of the records is read); then the same records written to
  a file and aggregated by a batch run with the same flags: the stream's rate against the
  batch's (the stream's includes `amend gen` producing it on the same cores), and the late
  records of each (the file is one epoch, so none of its records is late).

Prints Markdown tables: p50, p99 and max of each latency, the medians of the batches, the
ratio, and the RSS curve. Small sizes make a smoke run: --events 100000 --injections 20
--batch 1000 --batch-reps 2 --stream-events 300000.
"""
import argparse
import calendar
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "bench", "data")
AMEND = os.path.join(ROOT, "target", "release", "amend")
T0_MS = 1_795_132_800_000  # 2026-11-20T00:00:00Z, gen's default --start


def sh(args, **kw):
    return subprocess.run(args, check=True, **kw)


def dataset(amend, events):
    out = os.path.join(DATA, f"{events}")
    if not os.path.exists(os.path.join(out, "corrections.jsonl")):
        sh([amend, "gen", "--events", str(events), "--keys", "10000", "--span", "1d",
            "--corrections", "0.01", "--seed", "1", "--out", out], stdout=subprocess.DEVNULL)
    return out


def percentile(values, p):
    """The nearest-rank percentile."""
    s = sorted(values)
    return s[max(0, min(len(s) - 1, -(-len(s) * p // 100) - 1))]


def rfc3339(ms):
    t = time.gmtime(ms // 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{ms % 1000:03d}Z"


class Epochs:
    """Reads epochs.jsonl as it grows: complete lines only."""

    def __init__(self, path):
        self.path, self.offset, self.rest, self.lines = path, 0, b"", []

    def poll(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(chunk)
        data = self.rest + chunk
        complete, _, self.rest = data.rpartition(b"\n")
        new = [json.loads(line) for line in complete.split(b"\n") if line] if complete else []
        self.lines.extend(new)
        return new

    def wait(self, done, proc, timeout=3600.0, sleep=0.0002):
        """Polls until done(line) for a new line; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.poll():
                if done(line):
                    return line
            if proc.poll() is not None:
                sys.exit(f"amend exited with {proc.returncode} while waiting")
            if time.monotonic() > deadline:
                sys.exit("timed out waiting for an epoch")
            time.sleep(sleep)


class Ids:
    """Ids, keys and times of the dataset's events, to write corrections of."""

    def __init__(self, events_path, n=50_000):
        self.recs = []
        with open(events_path) as f:
            for line in f:
                try:
                    r = json.loads(line)
                    self.recs.append((r["id"], r["key"], r["ts"]))
                except (ValueError, KeyError, TypeError):
                    continue
                if len(self.recs) >= n:
                    break
        self.next_version = 1000  # above every generated version: each line is current
        self.current = {}  # version of the ids written here
        self.new_ids = 0

    def line(self, i, kind):
        """A correction of kind `kind` (see MIX) of one of the ids, as a JSON line."""
        rid, key, ts = self.recs[(i * 7919) % len(self.recs)]
        if kind == "same-version" and rid in self.current:
            version = self.current[rid]
        else:
            self.next_version += 1
            version = self.next_version
        op = ""
        if kind == "move-key":
            key = f"k{(i * 13) % 10000:04d}"
        elif kind == "move-time":
            ts = rfc3339(T0_MS + (i * 60_001) % 86_400_000)
        elif kind == "delete":
            op = ',"op":"delete"'
        elif kind == "new-id":
            self.new_ids += 1
            rid = f"bench{self.new_ids:09d}"
        self.current[rid] = version
        cents = (i * 3701) % 1_000_000
        return (f'{{"id":{json.dumps(rid)},"key":{json.dumps(key)},"ts":{json.dumps(ts)},'
                f'"value":{cents // 100}.{cents % 100:02d},"version":{version}{op}}}\n')


MIX = ["update", "update", "move-key", "move-time", "same-version", "delete", "new-id"]


def inject(corrections, epochs, proc, text, source_name):
    """Appends text; returns (wall ms until its last line is in an epoch of epochs.jsonl, and
    the in-process latency: from the first of its epochs read to the last flushed, ms, and the
    records of those epochs). A large write can be seen half-done by the poller, so one
    injection may span several epochs."""
    before = os.path.getsize(corrections)
    start = time.monotonic()
    with open(corrections, "a") as f:
        f.write(text)
    size = os.path.getsize(corrections)
    ours = lambda e: (os.path.basename(str(e.get("source"))) == source_name
                      and e.get("start", -1) >= before)
    epochs.wait(lambda e: ours(e) and e.get("end") == size, proc)
    wall = (time.monotonic() - start) * 1000.0
    lines = [e for e in epochs.lines if ours(e)]
    if len(lines) == 1:
        inproc = float(lines[0].get("latency_ms", 0.0))
    else:
        first = parse_time(lines[0]["read_at"])
        last = parse_time(lines[-1]["flushed_at"])
        inproc = (last - first) * 1000.0
    return wall, inproc, sum(e.get("records", 0) for e in lines), len(lines)


def parse_time(text):
    """Seconds since the Unix epoch of an RFC 3339 UTC time with milliseconds."""
    seconds = calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))
    return seconds + int(text[20:23]) / 1000.0


def latency_row(name, wall, inproc):
    return (f"| {name} | {len(wall)} | {percentile(wall, 50):.2f} | {percentile(wall, 99):.2f} | "
            f"{max(wall):.2f} | {percentile(inproc, 50):.2f} | {percentile(inproc, 99):.2f} | "
            f"{max(inproc):.2f} |")


def follow_parts(amend, args, data, work):
    corrections = os.path.join(work, "corrections.jsonl")
    shutil.copyfile(os.path.join(data, "corrections.jsonl"), corrections)
    out = os.path.join(work, "out")
    cmd = [amend, "aggregate", "--follow", "--input", os.path.join(data, "events.jsonl"),
           "--corrections", corrections, "--window", "tumbling:1m", "--workers", str(args.workers),
           "--poll-interval", args.poll_interval, "--snapshot-interval", args.snapshot_interval,
           "--quiet", "--out", out]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    epochs = Epochs(os.path.join(out, "epochs.jsonl"))
    size = os.path.getsize(corrections)
    epochs.wait(lambda e: os.path.basename(str(e.get("source"))) == "corrections.jsonl"
                and e.get("end") == size, proc)
    load_s = time.monotonic() - started
    records = sum(e.get("records", 0) for e in epochs.lines)
    print(f"load: {records:,} records in {len(epochs.lines)} epochs, {load_s:.2f} s to the last "
          f"load epoch flushed")
    ids = Ids(os.path.join(data, "events.jsonl"))
    results = {}
    if "single" in args.parts:
        wall, inproc = [], []
        for i in range(args.injections):
            ms, latency, _, _ = inject(corrections, epochs, proc,
                                       ids.line(i, MIX[i % len(MIX)]), "corrections.jsonl")
            wall.append(ms)
            inproc.append(latency)
            time.sleep(args.gap)
        results["one correction"] = (wall, inproc)
    if "batch" in args.parts:
        wall, inproc = [], []
        for rep in range(args.batch_reps):
            text = "".join(ids.line(rep * args.batch + i, MIX[i % len(MIX)])
                           for i in range(args.batch))
            ms, latency, records, count = inject(corrections, epochs, proc, text,
                                                 "corrections.jsonl")
            assert records == args.batch, (records, args.batch)
            print(f"batch {rep + 1}: {args.batch:,} corrections in {count} epoch(s), "
                  f"{ms:.1f} ms wall")
            wall.append(ms)
            inproc.append(latency)
            time.sleep(args.gap)
        results[f"{args.batch:,} corrections"] = (wall, inproc)
    proc.terminate()
    code = proc.wait()
    if code != 0:
        sys.exit(f"amend aggregate --follow exited {code} on SIGTERM")
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    print(f"exit code 0 on SIGTERM; summary: epochs {summary.get('epochs')}, "
          f"epoch_latency_ms_p50 {summary.get('epoch_latency_ms_p50')}, "
          f"epoch_latency_ms_p99 {summary.get('epoch_latency_ms_p99')}")
    if results:
        print()
        print("| injection | n | wall ms p50 | wall ms p99 | wall ms max | latency_ms p50 | "
              "latency_ms p99 | latency_ms max |")
        print("|---|---|---|---|---|---|---|---|")
        for name, (wall, inproc) in results.items():
            print(latency_row(name, wall, inproc))
    return results


def plain(amend, args, data, work):
    out = os.path.join(work, "plain")
    start = time.monotonic()
    sh([amend, "aggregate", "--input", os.path.join(data, "events.jsonl"),
        "--corrections", os.path.join(data, "corrections.jsonl"), "--window", "tumbling:1m",
        "--workers", str(args.workers), "--quiet", "--out", out], stdout=subprocess.DEVNULL)
    seconds = time.monotonic() - start
    shutil.rmtree(out, ignore_errors=True)
    print(f"\nplain amend aggregate over the same files: {seconds:.2f} s wall")
    return seconds


def rss_bytes(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except FileNotFoundError:
        return None
    return None


def gen_stream_args(args):
    """`amend gen` arguments of the stream."""
    return ["gen", "--out", "-", "--events", str(args.stream_events), "--keys",
            str(args.stream_keys), "--span", args.stream_span, "--max-delay",
            args.stream_max_delay, "--corrections", "0.01", "--seed", "1"]


def aggregate_args(args, out):
    """The stream's `amend aggregate` arguments after the input."""
    return ["--allowed-lateness", args.allowed_lateness, "--window", "tumbling:1m", "--workers",
            str(args.workers), "--snapshot-interval", args.stream_snapshot_interval, "--quiet",
            "--out", out]


def stream(amend, args, work):
    """The stream through a pipe, sampled every --sample seconds; then the same records as a
    file through a batch run. Returns (stream records/s, batch records/s)."""
    out = os.path.join(work, "stream")
    gen = subprocess.Popen([amend] + gen_stream_args(args), stdout=subprocess.PIPE)
    agg = subprocess.Popen([amend, "aggregate", "--follow", "--input", "-"]
                           + aggregate_args(args, out), stdin=gen.stdout,
                           stdout=subprocess.DEVNULL)
    gen.stdout.close()  # amend owns the pipe now: gen sees a broken pipe if amend exits
    epochs = Epochs(os.path.join(out, "epochs.jsonl"))
    start = time.monotonic()
    samples = []
    gen_peak = 0
    while agg.poll() is None:
        rss = rss_bytes(agg.pid)
        gen_rss = rss_bytes(gen.pid)
        epochs.poll()
        last = epochs.lines[-1] if epochs.lines else {}
        if rss:  # none before the process has mapped anything
            samples.append((time.monotonic() - start, sum(e.get("records", 0) for e in epochs.lines),
                            rss, last.get("state_ids"), last.get("state_groups")))
        gen_peak = max(gen_peak, gen_rss or 0)
        time.sleep(args.sample)
    seconds = time.monotonic() - start
    gen.wait()
    if agg.returncode != 0 or gen.returncode != 0:
        sys.exit(f"stream: gen exited {gen.returncode}, amend aggregate {agg.returncode}")
    epochs.poll()
    total = sum(e.get("records", 0) for e in epochs.lines)
    with open(os.path.join(out, "summary.json")) as f:
        stream_late = json.load(f)["records_late"]
    print(f"\nstream: {total:,} records in {len(epochs.lines)} epochs, "
          f"{seconds:.1f} s, {total / seconds:,.0f} records/s; gen peak RSS "
          f"{gen_peak / 2**20:.0f} MiB")
    print()
    print("| seconds | records read | RSS MiB | state_ids | state_groups |")
    print("|---|---|---|---|---|")
    step = max(1, len(samples) // args.rows)
    for i, (t, records, rss, state_ids, state_groups) in enumerate(samples):
        if i % step == 0 or i == len(samples) - 1:
            print(f"| {t:.1f} | {records:,} | {rss / 2**20:,.0f} | {state_ids} | {state_groups} |")
    # The steady level: the median RSS once a quarter of the records has been read.
    steady = [rss for _, records, rss, _, _ in samples if records >= total / 4]
    if steady:
        peak = max(rss for _, _, rss, _, _ in samples)
        level = statistics.median(steady)
        print(f"\nRSS: peak {peak / 2**20:,.0f} MiB, steady (median after a quarter of the "
              f"records) {level / 2**20:,.0f} MiB, peak / steady {peak / level:.2f}")
    shutil.rmtree(out, ignore_errors=True)

    # The same records as a file, through a batch run with the same flags.
    path = os.path.join(work, "stream.jsonl")
    with open(path, "wb") as f:
        sh([amend] + gen_stream_args(args), stdout=f)
    start = time.monotonic()
    sh([amend, "aggregate", "--input", path] + aggregate_args(args, out), stdout=subprocess.DEVNULL)
    batch = time.monotonic() - start
    with open(os.path.join(out, "summary.json")) as f:
        batch_late = json.load(f)["records_late"]
    os.remove(path)
    shutil.rmtree(out, ignore_errors=True)
    # The file is one epoch, so none of its records is late; the stream is cut into epochs,
    # and a record later than the lateness behind the epochs before it is.
    print(f"batch over the same records as a file: {batch:.1f} s, {total / batch:,.0f} "
          f"records/s; stream / batch rate {batch / seconds:.2f}; late records: stream "
          f"{stream_late:,}, batch {batch_late:,}")
    return total / seconds, total / batch


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000, help="events loaded first")
    parser.add_argument("--injections", type=int, default=200, help="single corrections")
    parser.add_argument("--batch", type=int, default=10_000, help="corrections per batch")
    parser.add_argument("--batch-reps", type=int, default=5, help="batches (median reported)")
    parser.add_argument("--gap", type=float, default=0.02,
                        help="seconds between injections, so that each is an epoch of its own")
    parser.add_argument("--stream-events", type=int, default=100_000_000)
    parser.add_argument("--stream-span", default="30d", help="gen --span of the stream")
    parser.add_argument("--stream-keys", type=int, default=100,
                        help="gen --keys of the stream (rows = keys x minutes of the span)")
    parser.add_argument("--stream-snapshot-interval", default="1h",
                        help="--snapshot-interval of the stream run (the snapshot copies every "
                        "closed row)")
    parser.add_argument("--stream-max-delay", default="10m", help="gen --max-delay of the stream")
    parser.add_argument("--allowed-lateness", default="1h")
    parser.add_argument("--sample", type=float, default=1.0, help="seconds between RSS samples")
    parser.add_argument("--rows", type=int, default=40, help="rows of the RSS curve at most")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--poll-interval", default="1ms")
    parser.add_argument("--snapshot-interval", default="10s")
    parser.add_argument("--parts", default="single,batch,plain,stream",
                        help="comma-separated: single, batch, plain, stream")
    parser.add_argument("--amend", default=None,
                        help="an amend binary to use instead of building target/release/amend")
    args = parser.parse_args()
    args.parts = set(args.parts.split(","))
    unknown = args.parts - {"single", "batch", "plain", "stream"}
    if unknown:
        sys.exit(f"unknown --parts: {', '.join(sorted(unknown))}")
    amend = args.amend
    if amend is None:
        sh(["cargo", "build", "--release", "--quiet", "-j", "2", "--bin", "amend"], cwd=ROOT)
        amend = AMEND
    print(f"machine: {os.cpu_count()} cores; amend: {amend}; workers: {args.workers}")
    os.makedirs(DATA, exist_ok=True)
    work = os.path.join(DATA, "follow-run")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    try:
        results = {}
        if args.parts & {"single", "batch", "plain"}:
            data = dataset(amend, args.events)
            print(f"data: {data} ({args.events:,} events)")
            if args.parts & {"single", "batch"}:
                results = follow_parts(amend, args, data, work)
            if "plain" in args.parts:
                seconds = plain(amend, args, data, work)
                for name, (wall, inproc) in results.items():
                    if name != "one correction":
                        median = statistics.median(wall)
                        print(f"{name}: median {median:.1f} ms wall, {seconds * 1000 / median:,.0f}x "
                              f"faster than the plain run")
        if "stream" in args.parts:
            stream(amend, args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
