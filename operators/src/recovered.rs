//! Recovered ids: the ids that only an audit log had, maintained incrementally.
//!
//! Input: the collection of accepted records (diff `+1` each), from the main input and from
//! audit logs ([`Position::is_audit`](crate::Position::is_audit)). Output: one `()` per id
//! all of whose records so far came from audit logs, the events the main input missed. An id
//! enters the output with its first audit record and leaves it when a main-input record of
//! it arrives; a later audit record of an id the main input has changes nothing.
//!
//! Records are reduced by id [exchange: hash(id)] to the set of their origins (audit or not),
//! so the answer is the same for any worker count. The operator keeps every id it has seen
//! (one arrangement entry per id and origin): pipelines build it only when audit logs are read.

use differential_dataflow::VecCollection;

use crate::event::{Event, Time};

/// Counts the ids only audit logs had.
pub trait IdsOnlyInAudit<'scope> {
    /// One `()` per id whose every record came from an audit log.
    fn ids_only_in_audit(self) -> VecCollection<'scope, Time, ()>;
}

impl<'scope> IdsOnlyInAudit<'scope> for VecCollection<'scope, Time, Event> {
    fn ids_only_in_audit(self) -> VecCollection<'scope, Time, ()> {
        self.map(|event| (event.id, event.position.is_audit()))
            .reduce_named("IdsOnlyInAudit", |_id, origins, output| {
                // Origins are sorted, `false` (main input) first.
                if origins.iter().all(|(audit, _)| **audit) {
                    output.push(((), 1isize));
                }
            })
            .map(|(_id, ())| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decimal::Decimal;
    use crate::event::{AUDIT_FILE_BASE, Op, Position};
    use differential_dataflow::input::Input;
    use timely::dataflow::operators::capture::{Capture, Extract};

    fn event(id: &str, file: u32, epoch: u64) -> Event {
        Event {
            id: id.into(),
            key: "k".into(),
            ts: 0,
            value: Decimal(1),
            op: Op::Upsert,
            version: 0,
            position: Position {
                epoch,
                file,
                offset: 0,
            },
            source: None,
            seq: None,
        }
    }

    #[test]
    fn counts_ids_whose_records_all_came_from_audit_logs() {
        let audit = AUDIT_FILE_BASE;
        // (time, record): `a` is in both, `b` only in the log (twice), `c` only in the input,
        // `d` first in the log, then in a late main-input file.
        let records = [
            (0, event("a", 0, 0)),
            (0, event("c", 0, 0)),
            (1, event("a", audit, 1)),
            (1, event("b", audit, 1)),
            (1, event("d", audit, 1)),
            (2, event("b", audit + 1, 2)),
            (3, event("d", 1, 3)),
        ];
        let captured = timely::example(move |scope| {
            let (mut input, events) = scope.new_collection::<Event, isize>();
            let output = events.ids_only_in_audit().consolidate().inner.capture();
            for (time, record) in records {
                input.advance_to(time);
                input.insert(record);
            }
            output
        });
        let mut counts = std::collections::BTreeMap::new();
        for (_, updates) in captured.extract() {
            for ((), time, diff) in updates {
                *counts.entry(time).or_insert(0) += diff;
            }
        }
        // b and d appear at time 1; d leaves at time 3.
        assert_eq!(counts, [(1, 2), (3, -1)].into_iter().collect());
    }
}
