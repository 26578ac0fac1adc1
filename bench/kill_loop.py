#!/usr/bin/env python3
"""kill -9 at random points, many times: a followed run and a batch run end identical to
uninterrupted ones.

Usage: python3 bench/kill_loop.py [--kills 100] [--events 50000] [--seed 1]

The loop of tests/checkpoints.rs with the release binary and more kills. Follow: a file grows
by one chunk of the generated history (late events, replays, corrections, deletes, bad lines)
at a time, the run stopped with SIGSTOP while each chunk is written so that every chunk is one
epoch; after each append, the run (`--checkpoint-dir`, `--checkpoint-interval 0`) is killed
with SIGKILL after a random 0-40 ms and restarted, and the next chunk waits for the checkpoint
of this one. Batch: `--epoch-bytes 64K` over the events and corrections, killed after a
random 20-250 ms until one run completes (or the kills are made). Each ends compared with an uninterrupted run: every
output byte for byte, epochs.jsonl and summary.json without their timing fields, and every
epoch named once. Prints the kill counts; exits 1 on any difference.
"""
import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AMEND = os.path.join(ROOT, "target", "release", "amend")
SAME = ["changelog.jsonl", "snapshot.jsonl", "dead_letter.jsonl", "late.jsonl", "digests.json",
        "digests_changelog.jsonl"]
RUN_FIELDS = {"read_at", "flushed_at", "latency_ms", "state_ids", "state_groups",
              "elapsed_seconds", "records_per_second", "workers", "epoch_latency_ms_p50",
              "epoch_latency_ms_p99", "run_records_read", "resumed_after_epoch"}


def stop(proc):
    """SIGSTOP, then waits until every thread of `proc` is stopped: the signal arrives after
    kill returns, and a thread still running could read a chunk half written."""
    proc.send_signal(signal.SIGSTOP)
    tasks = f"/proc/{proc.pid}/task"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        states = []
        for task in os.listdir(tasks):
            try:
                with open(os.path.join(tasks, task, "stat")) as f:
                    states.append(f.read().rsplit(") ", 1)[1][0])
            except (FileNotFoundError, IndexError):
                pass
        if all(s in "Tt" for s in states):
            return
        time.sleep(0.001)
    sys.exit("amend did not stop")


def strip(value):
    return {k: v for k, v in value.items() if k not in RUN_FIELDS}


def read(path, rename=None):
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return ""
    return text.replace(*rename) if rename else text


def compare(a, b, rename=None):
    """The differences between the outputs in a and b ([] if none)."""
    problems = [n for n in SAME if read(os.path.join(a, n), rename) != read(os.path.join(b, n))]
    lines = lambda d: [strip(json.loads(l)) for l in
                       read(os.path.join(d, "epochs.jsonl"), rename if d == a else None)
                       .splitlines()]
    if lines(a) != lines(b):
        problems.append("epochs.jsonl")
    if [e["epoch"] for e in lines(b)] != list(range(len(lines(b)))):
        problems.append("epochs.jsonl numbering")
    summary = lambda d: strip(json.loads(read(os.path.join(d, "summary.json"))))
    if summary(a) != summary(b):
        problems.append("summary.json")
    return problems


def wait_for(path, check, proc, what):
    deadline = time.monotonic() + 120
    while not check(path):
        if proc.poll() is not None:
            sys.exit(f"amend exited ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            sys.exit(f"{what}: not written in 120 s")
        time.sleep(0.002)


def lines_at_least(n):
    return lambda p: os.path.exists(p) and read(p).count("\n") >= n


def follow(work, chunks, kills, rng):
    """The followed run, killed `kills` times; returns the kills made."""
    flags = ["--window", "tumbling:1m", "--allowed-lateness", "10m", "--poll-interval", "5ms",
             "--quiet", "--follow", "--workers", "2"]
    for name, killing in [("plain", False), ("killed", True)]:
        src = os.path.join(work, f"{name}.jsonl")
        args = [AMEND, "aggregate", "--input", f"{name}.jsonl", "--out", name] + flags
        if killing:
            args += ["--checkpoint-dir", f"{name}-ckpt", "--checkpoint-interval", "0"]
        with open(src, "w") as f:
            f.write(chunks[0])
        spawn = lambda: subprocess.Popen(args, cwd=work, stdout=subprocess.DEVNULL)
        proc = spawn()
        epochs = os.path.join(work, name, "epochs.jsonl")
        wait_for(epochs, lines_at_least(1), proc, "epoch 0")
        made = 0
        for n, chunk in enumerate(chunks[1:], start=1):
            stop(proc)
            with open(src, "a") as f:
                f.write(chunk)
            proc.send_signal(signal.SIGCONT)
            if not killing:
                wait_for(epochs, lines_at_least(n + 1), proc, f"epoch {n}")
                continue
            if n + 1 < len(chunks) and made < kills:
                time.sleep(rng.uniform(0, 0.04))
                proc.kill()
                proc.wait()
                made += 1
                proc = spawn()
            manifest = os.path.join(work, f"{name}-ckpt", f"epoch-{n:012d}", "manifest.json")
            wait_for(manifest, os.path.exists, proc, f"the checkpoint of epoch {n}")
        proc.terminate()
        if proc.wait() != 0:
            sys.exit(f"the {name} run did not exit 0 on SIGTERM")
    return made


def batch(work, kills, rng):
    """The batch run, killed until one run completes; returns the kills made."""
    base = [AMEND, "aggregate", "--input", "data/events.jsonl", "--corrections",
            "data/corrections.jsonl", "--window", "tumbling:1m", "--epoch-bytes", "64K",
            "--workers", "2", "--quiet"]
    subprocess.run(base + ["--out", "bplain"], cwd=work, check=True, stdout=subprocess.DEVNULL)
    args = base + ["--out", "bkilled", "--checkpoint-dir", "bkilled-ckpt",
                   "--checkpoint-interval", "0"]
    made = 0
    while True:
        proc = subprocess.Popen(args, cwd=work, stdout=subprocess.DEVNULL)
        if made >= kills:
            if proc.wait() != 0:
                sys.exit("the batch run failed")
            return made
        time.sleep(rng.uniform(0.02, 0.25))
        if proc.poll() is not None:
            if proc.returncode != 0:
                sys.exit("the batch run failed")
            return made
        proc.kill()
        proc.wait()
        made += 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "amend"], cwd=ROOT,
                   check=True)
    rng = random.Random(args.seed)
    work = os.path.join(ROOT, "bench", "data", "kill-loop")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    try:
        subprocess.run([AMEND, "gen", "--events", str(args.events), "--keys", "50", "--out",
                        "data"], cwd=work, check=True, stdout=subprocess.DEVNULL)
        lines = read(os.path.join(work, "data", "events.jsonl")).splitlines(True)
        lines += read(os.path.join(work, "data", "corrections.jsonl")).splitlines(True)
        n = args.kills + 2
        per = -(-len(lines) // n)
        chunks = ["".join(lines[i:i + per]) for i in range(0, len(lines), per)]
        follow_kills = follow(work, chunks, args.kills, rng)
        follow_problems = compare(os.path.join(work, "plain"), os.path.join(work, "killed"),
                                  ("plain.jsonl", "killed.jsonl"))
        batch_kills = batch(work, max(10, args.kills // 5), rng)
        batch_problems = compare(os.path.join(work, "bplain"), os.path.join(work, "bkilled"))
        print(f"follow: {follow_kills} kills, {len(chunks)} epochs: "
              f"{'identical' if not follow_problems else 'DIFFERENT: ' + ', '.join(follow_problems)}")
        print(f"batch: {batch_kills} kills: "
              f"{'identical' if not batch_problems else 'DIFFERENT: ' + ', '.join(batch_problems)}")
        if follow_problems or batch_problems:
            sys.exit(1)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
