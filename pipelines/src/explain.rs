//! `--explain`: the dataflow graph of a pipeline, as timely builds it.
//!
//! The graph is not a hand-written description: the pipeline's dataflow is built on one
//! worker with timely's logging on, and the operators and channels it logs are printed, with
//! the points where records are exchanged between workers (and by what) marked.

use amend_operators::incremental::durable::Store;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::rc::Rc;

use timely::logging::{TimelyEvent, TimelyEventBuilder};

use crate::aggregate::AggregateConfig;
use crate::engine::dataflow::{Dataflow, MarksInput};

/// Where an operator exchanges its input between workers, by its name.
fn exchange_of(name: &str) -> Option<&'static str> {
    match name {
        "ResolveIds" => Some("hash(id)"),
        "Aggregate" => Some("hash(window, key)"),
        "Sessions" => Some("hash(key)"),
        "IdsOnlyInAudit" => Some("hash(id)"),
        "Estimates" => Some("hash(key)"),
        "DetectGaps" => Some("hash(source)"),
        _ => None,
    }
}

/// What each operator of the aggregate pipeline is for, by its name.
fn role_of(name: &str) -> &'static str {
    match name {
        "Input" => {
            "fed by this worker's reader: watermark marks, records, dead letters, or sightings"
        }
        "Exchange" => "broadcast of the marks: each worker's greatest event time, to every worker",
        "SplitLate" => {
            "records whose every window closed (watermark - allowed lateness) go to late.jsonl"
        }
        "ResolveIds" => "current record per id: greatest (version, position)",
        "CountIds" => "ids current / deleted, pre-counted per worker",
        "AssignWindows" => "((window, key), value) for each window of a current upsert",
        "Aggregate" => "count, sum, min, max per (window, key), incrementally",
        "Sessions" => "session windows per key and their count, sum, min, max, incrementally",
        "DetectGaps" => "--gaps: missing sequence ranges, duplicates and extents per source",
        "IdsOnlyInAudit" => "with --audit-log: ids whose every record came from an audit log",
        "Estimates" => "--fill: estimated rows for each key's empty windows",
        "FlatMap" => "wrap as sink output",
        "Concatenate" => "merge into one output stream",
        "Capture" => "sink: changelog, snapshot, digests, dead letters, late records, epochs",
        "Probe" => "backpressure: readers wait for the dataflow",
        _ => "",
    }
}

/// The graph of the aggregate pipeline for `config`.
pub fn explain(config: &AggregateConfig) -> anyhow::Result<String> {
    /// Operators by index, and edges (from, to, input port of `to`).
    type Graph = (BTreeMap<usize, String>, Vec<(usize, usize, usize)>);
    let dataflow = Dataflow {
        computations: config.computations(),
        lateness: config.engine.lateness,
        audit_logs: config.engine.recovery.has_audit_logs(),
        gauges: Default::default(),
    };
    let result = timely::execute_directly(move |worker| {
        let logged: Rc<RefCell<Graph>> = Rc::default();
        let sink = Rc::clone(&logged);
        if let Some(mut register) = worker.log_register() {
            register.insert::<TimelyEventBuilder, _>("timely", move |_time, data| {
                let Some(events) = data else { return };
                let mut graph = sink.borrow_mut();
                for (_, event) in events.iter() {
                    match event {
                        // Operators directly inside the dataflow (address [dataflow, index]).
                        TimelyEvent::Operates(op) if op.addr.len() == 2 => {
                            graph.0.insert(op.addr[1], op.name.clone());
                        }
                        TimelyEvent::Channels(ch) if ch.scope_addr.len() == 1 => {
                            graph.1.push((ch.source.0, ch.target.0, ch.target.1));
                        }
                        _ => {}
                    }
                }
            });
        }
        // The same dataflow a run builds; its sink channel has no reader here.
        let probe = timely::dataflow::ProbeHandle::new();
        let (sink, _) = std::sync::mpsc::channel();
        let mut marks = MarksInput::new();
        // The dataflow a run builds from the same flags.
        let inputs = worker.dataflow::<amend_operators::Time, _, _>(|scope| {
            dataflow.build(scope, &probe, sink, (&mut marks, &Store::default()))
        });
        drop(inputs);
        drop(marks);
        worker.step_while(|| !probe.done());
        if let Some(mut register) = worker.log_register() {
            register.remove("timely");
        }
        logged.take()
    });
    let (operators, mut edges) = result;
    edges.sort();
    edges.dedup();
    let name = |index: &usize| operators.get(index).map(String::as_str).unwrap_or("?");
    let mut text = String::new();
    writeln!(
        text,
        "amend aggregate --window {} --workers {}: dataflow graph",
        config.table.window, config.engine.workers
    )?;
    writeln!(
        text,
        "Every worker runs this graph; each reads its own byte range of every epoch.\n"
    )?;
    writeln!(text, "operators:")?;
    for (index, op) in &operators {
        let role = role_of(op);
        let exchange = exchange_of(op)
            .map(|by| format!("  [input exchanged between workers by {by}]"))
            .unwrap_or_default();
        writeln!(text, "  {index:>3}  {op:<24} {role}{exchange}")?;
    }
    writeln!(text, "\nedges:")?;
    for (from, to, port) in &edges {
        // Operators exchange their first input; a second one (the marks) is already broadcast.
        let how = match exchange_of(name(to)).filter(|_| *port == 0) {
            Some(by) => format!("exchange by {by}"),
            None if *port > 0 => "pipeline (same worker): watermark marks".to_string(),
            None => "pipeline (same worker)".to_string(),
        };
        writeln!(
            text,
            "  {from:>3} {:<24} -> {to:>3} {:<24} {how}",
            name(from),
            name(to)
        )?;
    }
    Ok(text)
}
