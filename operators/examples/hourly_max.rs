//! A different DAG from the same operators: read → resolve → keep one key prefix → hourly max
//! per key → changelog.
//!
//! ```text
//! cargo run --release -p amend-operators --example hourly_max [FILE.jsonl] [KEY_PREFIX]
//! ```
//!
//! Each line of the input is one epoch here, to show how a late record or a correction turns
//! into a retraction and an insertion of the one row it changes.

use std::path::PathBuf;
use std::sync::{Arc, mpsc};

use amend_operators::ingest::read::{Read, Reader, Slice};
use amend_operators::ingest::source::{Epoch, InputFile};
use amend_operators::{
    AssignWindows, Decimal, Event, FieldNames, ResolveIds, Scale, Time, WindowSpec,
};
use differential_dataflow::input::Input;
use timely::dataflow::operators::Inspect;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/data/events.jsonl")
    });
    let prefix = args.next().unwrap_or_else(|| "store-".into());
    let scale = Scale::DEFAULT;

    // Read and decode on this thread, by the same per-line rules as `amend aggregate`; the
    // dataflow gets one record per epoch.
    let file = Epoch::whole(Arc::new(InputFile::open(&path, 0)?), 0);
    let mut reader = Reader::new(
        FieldNames::default(),
        scale,
        None,
        Slice::default(),
        1 << 20,
    );
    let mut events: Vec<Event> = Vec::new();
    if let Some(range) = file.share(0, 1) {
        reader.read(&file, range, |read| match read {
            Read::Record(record) => {
                let mut event = record.event;
                event.position.epoch = events.len() as u64;
                events.push(event);
            }
            Read::Dead(dead) => eprintln!("skipping line {}: {}", dead.line, dead.reason),
            Read::Skipped | Read::NoAuditRecord => {}
        })?;
    }

    let (tx, rx) = mpsc::channel();
    timely::execute_directly(move |worker| {
        let mut input = worker.dataflow::<Time, _, _>(|scope| {
            let (input, records) = scope.new_collection::<Event, isize>();
            let prefix = prefix.clone();
            records
                .resolve_ids()
                .filter(move |event| event.key.starts_with(&prefix))
                .assign_windows(WindowSpec::Tumbling { size: 3_600_000 })
                .reduce(|_window_key, values: &[(&Decimal, isize)], out| {
                    // Values arrive sorted: the last one is the greatest.
                    out.push((*values.last().unwrap().0, 1isize))
                })
                .inner
                .inspect(move |update| tx.send(update.clone()).unwrap());
            input
        });
        for (epoch, event) in events.into_iter().enumerate() {
            input.advance_to(epoch as Time);
            input.insert(event);
        }
    });

    let mut changes: Vec<_> = rx.into_iter().collect();
    changes.sort_by_key(|((row, _max), time, diff)| (*time, *diff, row.clone()));
    for (((window, key), max), epoch, diff) in changes {
        println!(
            "epoch {epoch}: {diff:+} {} {key} max {}",
            amend_operators::time::format_millis(window.start),
            max.display(scale)
        );
    }
    Ok(())
}
