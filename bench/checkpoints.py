#!/usr/bin/env python3
"""What checkpoints cost, and what they save: size, write time, resume time, follow pauses.

Usage: python3 bench/checkpoints.py [--events 10000000] [--reps 3] [--parts resume,follow]
           [--stream-events 8000000]

Builds the release binary and generates the dataset once as bench/follow.py does (`amend gen
--events N --keys 10000 --span 1d --corrections 0.01 --seed 1`); its corrections file is cut
into day1.jsonl (all but the last 10,000 lines) and day2.jsonl (those). Then:

- resume (the daily workflow, 2 workers, --window tumbling:1m): a full run over events, day1
  and day2 without checkpoints (REPS times); day 1 with --checkpoint-dir (its time, peak RSS,
  the checkpoint's bytes per id held and the time to write it: from the last epoch's
  flushed_at in epochs.jsonl to the manifest's written_at); day 2 resumed from a copy of day
  1's checkpoint and outputs (REPS times): its time against the full run's, its outputs
  checked equal to the full run's, and the bytes and time of its incremental checkpoint. Then
  kill -9: a followed run over the same files with checkpoints, killed once loaded; the
  restart's time until one appended correction is in epochs.jsonl (REPS restarts from copies
  of what the kill left), against a fresh followed run's time to load and take it (REPS
  times, alternating with the restarts).
- kill: the kill -9 part of resume alone.
- follow: `amend gen --out - --events STREAM_EVENTS` written to a file that `amend aggregate
  --follow --allowed-lateness 5m` follows, once without checkpoints and once with
  --checkpoint-interval 10s: records per second, and the epoch latency p50/p99/max (the pause
  a checkpoint causes shows in the p99 and the max).

Times are whole-process wall times on this machine, medians where repeated; compare ratios.
Small sizes make a smoke run: --events 200000 --reps 1 --stream-events 300000.
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
JOB = ["--window", "tumbling:1m", "--workers", "2", "--quiet"]


def sh(args, **kw):
    return subprocess.run(args, check=True, **kw)


def dataset(events):
    out = os.path.join(DATA, f"{events}")
    if not os.path.exists(os.path.join(out, "corrections.jsonl")):
        sh([AMEND, "gen", "--events", str(events), "--keys", "10000", "--span", "1d",
            "--corrections", "0.01", "--seed", "1", "--out", out], stdout=subprocess.DEVNULL)
    day1, day2 = os.path.join(out, "day1.jsonl"), os.path.join(out, "day2.jsonl")
    if not os.path.exists(day2):
        with open(os.path.join(out, "corrections.jsonl"), "rb") as f:
            lines = f.readlines()
        cut = max(0, len(lines) - 10_000)
        with open(day1, "wb") as f:
            f.writelines(lines[:cut])
        with open(day2, "wb") as f:
            f.writelines(lines[cut:])
    return out, day1, day2


def timed(args, cwd):
    """Wall seconds and peak RSS (MiB) of one run, from /usr/bin/time."""
    rss = os.path.join(cwd, "rss.txt")
    start = time.monotonic()
    sh(["/usr/bin/time", "-f", "%M", "-o", rss, AMEND] + args, cwd=cwd,
       stdout=subprocess.DEVNULL)
    wall = time.monotonic() - start
    with open(rss) as f:
        return wall, int(f.read().split()[-1]) / 1024


def parse_ms(text):
    """Epoch milliseconds of an RFC 3339 time as amend writes it."""
    t = time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")
    return calendar.timegm(t) * 1000 + int(text[20:23])


def dir_bytes(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def same_outputs(a, b):
    for name in ["changelog.jsonl", "snapshot.jsonl", "dead_letter.jsonl", "digests.json"]:
        if subprocess.run(["cmp", "-s", os.path.join(a, name), os.path.join(b, name)]
                          ).returncode != 0:
            return False
    return True


def resume_part(args, work):
    data, day1, day2 = dataset(args.events)
    events = os.path.join(data, "events.jsonl")
    full = [timed(["aggregate", "--input", events, "--corrections", day1, day2, "--out",
                   "full"] + JOB, work) for _ in range(args.reps)]
    ckpt_args = ["--checkpoint-dir", "ckpt"]
    wall1, rss1 = timed(["aggregate", "--input", events, "--corrections", day1, "--out", "day"]
                        + JOB + ckpt_args, work)
    listed = json.loads(subprocess.run([AMEND, "checkpoints", "ckpt", "--json"], cwd=work,
                                       check=True, capture_output=True).stdout)
    newest = listed[0]
    with open(os.path.join(work, "day", "summary.json")) as f:
        summary = json.load(f)
    with open(os.path.join(work, "day", "epochs.jsonl")) as f:
        last_epoch = json.loads(f.read().splitlines()[-1])
    write_ms = parse_ms(newest["written_at"]) - parse_ms(last_epoch["flushed_at"])
    ids = summary["state_ids"] or summary["ids_current"] + summary["ids_deleted"]
    shutil.copytree(os.path.join(work, "ckpt"), os.path.join(work, "ckpt-day1"))
    shutil.copytree(os.path.join(work, "day"), os.path.join(work, "day-day1"))
    resumed = []
    for _ in range(args.reps):
        for name in ["ckpt", "day"]:
            shutil.rmtree(os.path.join(work, name))
            shutil.copytree(os.path.join(work, f"{name}-day1"), os.path.join(work, name))
        resumed.append(timed(["aggregate", "--input", events, "--corrections", day1, day2,
                              "--out", "day"] + JOB + ckpt_args, work))
    with open(os.path.join(work, "day", "summary.json")) as f:
        read_by_resume = json.load(f)["run_records_read"]
    day2_ckpt = json.loads(subprocess.run([AMEND, "checkpoints", "ckpt", "--json"], cwd=work,
                                          check=True, capture_output=True).stdout)[0]
    with open(os.path.join(work, "day", "epochs.jsonl")) as f:
        day2_epoch = json.loads(f.read().splitlines()[-1])
    day2_write_ms = parse_ms(day2_ckpt["written_at"]) - parse_ms(day2_epoch["flushed_at"])
    equal = same_outputs(os.path.join(work, "full"), os.path.join(work, "day"))
    full_wall = statistics.median(w for w, _ in full)
    resume_wall = statistics.median(w for w, _ in resumed)
    print(f"\n### Daily workflow, {args.events:,} events, 2 workers\n")
    print("| run | wall s | peak RSS MiB |\n|---|---:|---:|")
    print(f"| full run, events + day1 + day2, no checkpoints (median of {args.reps}) | "
          f"{full_wall:.2f} | {statistics.median(r for _, r in full):.0f} |")
    print(f"| day 1 with --checkpoint-dir (one checkpoint, at the end) | {wall1:.2f} | "
          f"{rss1:.0f} |")
    print(f"| day 2 resumed: reads day2.jsonl only ({read_by_resume:,} records; median of "
          f"{args.reps}) | {resume_wall:.2f} | {statistics.median(r for _, r in resumed):.0f} |")
    print(f"\nresume / full re-read: {resume_wall / full_wall:.3f}; outputs equal to the full "
          f"run's: {'yes' if equal else 'NO'}")
    print(f"checkpoint: {newest['bytes']:,} bytes for {ids:,} ids held "
          f"({newest['bytes'] / max(ids, 1):.0f} B per id; rows and groups included); written "
          f"in {write_ms} ms (last epoch flushed to manifest committed)")
    print(f"day 2's checkpoint (incremental, over epochs {day2_ckpt['builds_on']}): "
          f"{day2_ckpt['bytes_written']:,} bytes written of {day2_ckpt['bytes']:,} it loads "
          f"from, in {day2_write_ms} ms")
    kill_part(args, work, events, day1, day2)


def wait_epochs(path, n, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path, "rb") as f:
                if f.read().count(b"\n") >= n:
                    return
        except FileNotFoundError:
            pass
        time.sleep(0.005)
    sys.exit(f"{path}: epoch {n} not written in {timeout} s")


def wait_read(epochs, source, size, timeout=600):
    """Waits until epochs.jsonl has an epoch of `source` that ends at `size`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(epochs) as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            lines = []
        for line in lines:
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if e["source"] == source and e["end"] == size:
                return
        time.sleep(0.005)
    sys.exit(f"{source}: byte {size} not read in {timeout} s")


def kill_part(args, work, events, day1, day2):
    """A followed run killed once loaded; the restart's time to take one more correction
    (REPS times from copies of what the kill left), against a fresh run's (REPS times)."""
    fix = os.path.join(work, "live.jsonl")
    with open(day2, "rb") as f:
        correction = f.readline()
    cmd = [AMEND, "aggregate", "--follow", "--input", events, "--corrections", fix,
           "--out", "live", "--poll-interval", "5ms"] + JOB
    resumed_cmd = cmd + ["--checkpoint-dir", "live-ckpt"]

    def fresh_dirs():
        shutil.copyfile(day1, fix)
        for name in ["live", "live-ckpt"]:
            shutil.rmtree(os.path.join(work, name), ignore_errors=True)

    # What a kill -9 leaves: a loaded run with a checkpoint, killed.
    fresh_dirs()
    first = subprocess.Popen(resumed_cmd, cwd=work, stdout=subprocess.DEVNULL)
    wait_epochs(os.path.join(work, "live", "epochs.jsonl"), 2)
    while not any(os.path.exists(os.path.join(work, "live-ckpt", d, "manifest.json"))
                  for d in os.listdir(os.path.join(work, "live-ckpt"))):
        time.sleep(0.05)
    first.kill()
    first.wait()
    for name in ["live", "live-ckpt"]:
        shutil.rmtree(os.path.join(work, name + ".killed"), ignore_errors=True)
        shutil.copytree(os.path.join(work, name), os.path.join(work, name + ".killed"))

    def restart(mode):
        fresh_dirs()
        if mode == "resumed":
            for name in ["live", "live-ckpt"]:
                shutil.copytree(os.path.join(work, name + ".killed"), os.path.join(work, name))
        with open(fix, "ab") as f:
            f.write(correction)
        size = os.path.getsize(fix)
        sh(["sync"])
        start = time.monotonic()
        proc = subprocess.Popen(resumed_cmd if mode == "resumed" else cmd, cwd=work,
                                stdout=subprocess.DEVNULL)
        wait_read(os.path.join(work, "live", "epochs.jsonl"), fix, size)
        took = time.monotonic() - start
        proc.terminate()
        proc.wait()
        return took

    times = {"fresh": [], "resumed": []}
    for _ in range(args.reps):
        for mode in ["resumed", "fresh"]:
            times[mode].append(restart(mode))
    fresh, resumed = (statistics.median(times[m]) for m in ["fresh", "resumed"])
    print(f"\nkill -9 of a loaded `--follow` run, restarted: one more correction is in "
          f"epochs.jsonl {resumed:.2f} s after the restart (median of {args.reps}: "
          f"{', '.join(f'{t:.2f}' for t in times['resumed'])}), against {fresh:.2f} s for a "
          f"fresh run that re-reads everything ({', '.join(f'{t:.2f}' for t in times['fresh'])})"
          f": {resumed / fresh:.3f}")
    snapshot_pauses(work, fix, day1, day2, resumed_cmd, correction)
    for name in ["live.killed", "live-ckpt.killed"]:
        shutil.rmtree(os.path.join(work, name), ignore_errors=True)


def snapshot_pauses(work, fix, day1, day2, resumed_cmd, correction):
    """One more restart from what the kill left, fed one correction at a time for 45 s: the
    longest wait for a correction while the first snapshot after the restart is written (it
    decodes the whole saved table first) against while the second one is (table in memory)."""
    shutil.copyfile(day1, fix)
    for name in ["live", "live-ckpt"]:
        shutil.rmtree(os.path.join(work, name), ignore_errors=True)
        shutil.copytree(os.path.join(work, name + ".killed"), os.path.join(work, name))
    with open(day2, "rb") as f:
        lines = f.readlines()[1:]
    summary = os.path.join(work, "live", "summary.json")
    mtime = lambda: os.stat(summary).st_mtime_ns if os.path.exists(summary) else 0
    before = mtime()
    start = time.monotonic()
    proc = subprocess.Popen(resumed_cmd, cwd=work, stdout=subprocess.DEVNULL)
    waits, snapshots = [], []
    for line in lines:
        if time.monotonic() - start > 45:
            break
        with open(fix, "ab") as f:
            f.write(line)
        sent = time.monotonic()
        wait_read(os.path.join(work, "live", "epochs.jsonl"), fix, os.path.getsize(fix))
        waits.append((sent - start, time.monotonic() - sent))
        if mtime() != before:
            before = mtime()
            snapshots.append(time.monotonic() - start)
        time.sleep(0.05)
    proc.terminate()
    proc.wait()
    if len(snapshots) < 2:
        print(f"\nsnapshot pauses: fewer than two snapshots in 45 s ({snapshots})")
        return
    # A correction sent after the previous snapshot was seen waits for the next one.
    # The first correction waits for the restart itself: it is not counted.
    around = lambda lo, hi: max(w for t, w in waits[1:] if lo <= t < hi)
    first = around(0, snapshots[0])
    second = around(snapshots[0], snapshots[1])
    print(f"\nsnapshot pauses after a kill -9 restart (--snapshot-interval 10s; a correction "
          f"every 50 ms once the last was taken): the longest wait for a correction is "
          f"{first:.2f} s up to the first snapshot (seen at {snapshots[0]:.1f} s; it decodes "
          f"the saved table) and {second:.2f} s up to the second (at {snapshots[1]:.1f} s)")


def follow_part(args, work):
    print(f"\n### Following a growing file, {args.stream_events:,} events, 2 workers, "
          f"--allowed-lateness 5m\n")
    print("| checkpoints | records/s | epoch latency p50 ms | p99 ms | max ms | checkpoints "
          "taken |\n|---|---:|---:|---:|---:|---:|")
    for label, extra in [("none", []), ("every 10 s", ["--checkpoint-dir", "s-ckpt",
                                                       "--checkpoint-interval", "10s"])]:
        for name in ["s", "s-ckpt"]:
            shutil.rmtree(os.path.join(work, name), ignore_errors=True)
        stream = os.path.join(work, "stream.jsonl")
        open(stream, "wb").close()
        start = time.monotonic()
        reader = subprocess.Popen([AMEND, "aggregate", "--follow", "--input", stream, "--out",
                                   "s", "--allowed-lateness", "5m", "--poll-interval", "10ms",
                                   "--checkpoints-retained", "2"] + JOB + extra, cwd=work,
                                  stdout=subprocess.DEVNULL)
        with open(stream, "ab") as out:
            sh([AMEND, "gen", "--out", "-", "--events", str(args.stream_events), "--keys",
                "10000", "--span", "1d", "--seed", "3"], stdout=out)
        size = os.path.getsize(stream)
        epochs_path = os.path.join(work, "s", "epochs.jsonl")
        while True:
            with open(epochs_path) as f:
                lines = [json.loads(l) for l in f.read().splitlines()]
            if lines and max(e["end"] or 0 for e in lines) >= size:
                break
            time.sleep(0.05)
        wall = time.monotonic() - start
        reader.terminate()
        reader.wait()
        latencies = sorted(e["latency_ms"] for e in lines)
        records = sum(e["records"] for e in lines)
        p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
        taken = len(os.listdir(os.path.join(work, "s-ckpt"))) if extra else 0
        print(f"| {label} | {records / wall:,.0f} | {p(0.5):.1f} | {p(0.99):.1f} | "
              f"{latencies[-1]:.1f} | {'(' + str(taken) + ' retained)' if extra else '-'} |")


def main():
    sys.stdout.reconfigure(line_buffering=True)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--stream-events", type=int, default=8_000_000)
    parser.add_argument("--parts", default="resume,follow")
    args = parser.parse_args()
    sh(["cargo", "build", "--release", "--quiet", "--bin", "amend"], cwd=ROOT)
    work = os.path.join(DATA, "checkpoints-work")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    try:
        parts = args.parts.split(",")
        if "resume" in parts:
            resume_part(args, work)
        elif "kill" in parts:
            data, day1, day2 = dataset(args.events)
            kill_part(args, work, os.path.join(data, "events.jsonl"), day1, day2)
        if "follow" in parts:
            follow_part(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
