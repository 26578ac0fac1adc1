//! Decoding throughput, in MB/s of input lines: plain JSON Lines (the main input's decoder)
//! beside audit logs read with a regex (`--audit-pattern`) and as JSON at a path
//! (`--audit-format jsonl --audit-path payload.event`).
//!
//! The lines are generated in memory, like `amend gen` output, so this measures decoding
//! alone: no file reading, no dataflow. Each decoder runs `--rounds` times over all lines in
//! turn; the median round is reported. Run with the release build:
//!
//! ```sh
//! cargo run --release -p amend-operators --example decode_throughput -- 1000000 5
//! ```

use std::hint::black_box;
use std::time::Instant;

use amend_operators::{AuditDecoder, AuditFormat, AuditPattern};
use amend_operators::{Decoder, FieldNames, Position, Scale};

const PATTERN: &str = r"^\S+ INFO order-service: recorded event id=(?P<id>\S+) key=(?P<key>\S+) ts=(?P<ts>\S+) value=(?P<value>\S+) op=(?P<op>\w+) version=(?P<version>\d+)$";

fn main() {
    let mut args = std::env::args().skip(1);
    let lines: usize = args
        .next()
        .map_or(1_000_000, |n| n.parse().expect("a line count"));
    let rounds: usize = args.next().map_or(5, |n| n.parse().expect("a round count"));

    let (mut json, mut log, mut nested) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..lines {
        let (key, ms) = (i % 10_000, i as u64 * 86_400_000 / lines as u64);
        let ts = format!(
            "2026-11-20T{:02}:{:02}:{:02}.{:03}Z",
            ms / 3_600_000,
            ms / 60_000 % 60,
            ms / 1000 % 60,
            ms % 1000
        );
        let value = format!("{}.{:02}", i * 7919 % 1000, i % 100);
        let event = format!(
            r#"{{"id":"e{i:08}","key":"k{key:04}","ts":"{ts}","value":{value},"version":0,"source":"p{:02}","seq":{i}}}"#,
            i % 16
        );
        log.push(format!(
            "2026-11-21T00:00:00Z INFO order-service: recorded event id=e{i:08} key=k{key:04} ts={ts} value={value} op=upsert version=0"
        ));
        nested.push(format!(
            r#"{{"level":"info","service":"order-service","payload":{{"kind":"recorded","event":{event}}}}}"#
        ));
        json.push(event);
        // A real log has other lines: one in four here.
        if i % 3 == 0 {
            log.push(format!(
                "2026-11-21T00:00:00Z DEBUG order-service: pool stats idle={} busy=1",
                i % 7
            ));
            nested.push(format!(
                r#"{{"level":"debug","msg":"pool stats","idle":{}}}"#,
                i % 7
            ));
        }
    }
    let names = FieldNames::default();
    let scale = Scale::DEFAULT;
    let position = Position::default();
    let decoder = Decoder::new(names.clone(), scale);
    let pattern = AuditFormat::Pattern(AuditPattern::new(PATTERN).unwrap());
    let mut regex = AuditDecoder::new(pattern, names.clone(), scale);
    let path = AuditFormat::json("payload.event").unwrap();
    let mut at_path = AuditDecoder::new(path, names, scale);

    let mut times: [Vec<f64>; 3] = Default::default();
    let mut events = [0usize; 3];
    for _ in 0..rounds {
        let started = Instant::now();
        events[0] = json
            .iter()
            .filter(|l| black_box(decoder.decode_json(l.as_bytes(), position)).is_ok())
            .count();
        times[0].push(started.elapsed().as_secs_f64());
        let started = Instant::now();
        events[1] = log
            .iter()
            .filter(|l| matches!(black_box(regex.decode(l.as_bytes(), position)), Ok(Some(_))))
            .count();
        times[1].push(started.elapsed().as_secs_f64());
        let started = Instant::now();
        events[2] = nested
            .iter()
            .filter(|l| {
                matches!(
                    black_box(at_path.decode(l.as_bytes(), position)),
                    Ok(Some(_))
                )
            })
            .count();
        times[2].push(started.elapsed().as_secs_f64());
    }
    let bytes = |lines: &[String]| lines.iter().map(|l| l.len() + 1).sum::<usize>() as f64;
    println!("| decoder | lines | events | MB | MB/s median (min–max) | events/s median |");
    println!("|---|---|---|---|---|---|");
    for (i, (name, lines)) in [
        ("JSON Lines (main input)", &json),
        ("audit log, --audit-pattern regex", &log),
        (
            "audit log, --audit-format jsonl --audit-path payload.event",
            &nested,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let mut t = times[i].clone();
        t.sort_by(f64::total_cmp);
        let (median, fastest, slowest) = (t[t.len() / 2], t[0], t[t.len() - 1]);
        let mb = bytes(lines) / 1e6;
        println!(
            "| {name} | {} | {} | {mb:.1} | {:.0} ({:.0}–{:.0}) | {:.0} |",
            lines.len(),
            events[i],
            mb / median,
            mb / slowest,
            mb / fastest,
            events[i] as f64 / median
        );
    }
}
