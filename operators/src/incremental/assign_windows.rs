//! Window assignment: the windows each current record counts in.
//!
//! Input: a collection of current records (deletes are skipped). Output: one
//! `((window, key), value)` per record and window, with the record's diff, so a retraction of
//! a record retracts its value from every window it counted in. Stateless and pipelined: it
//! never exchanges records between workers.

use compact_str::CompactString;
use differential_dataflow::{AsCollection, VecCollection};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;

use crate::data::decimal::Decimal;
use crate::data::event::{Event, Op, Time};
use crate::data::window::{Window, WindowSpec};

/// A value counted in one window for one key.
pub type WindowedValue = ((Window, CompactString), Decimal);

/// Assigns each current record's value to its windows.
pub trait AssignWindows<'scope> {
    /// `((window, key), value)` for each window of each non-deleted record, with its diff.
    ///
    /// ```
    /// use amend_operators::{AssignWindows, Decimal, Event, Op, Window, WindowSpec};
    /// use differential_dataflow::input::Input;
    /// use timely::dataflow::operators::capture::{Capture, Extract};
    ///
    /// let event = |id: &str, ts, op| Event { id: id.into(), key: "k".into(), ts, value: Decimal(5), op, ..Event::default() };
    /// let captured = timely::example(move |scope| {
    ///     let (mut input, events) = scope.new_collection::<Event, isize>();
    ///     let windows = events.assign_windows(WindowSpec::Hop { size: 10, slide: 5 });
    ///     input.insert(event("a", 7, Op::Upsert));
    ///     input.insert(event("b", 3, Op::Delete)); // a delete counts in no window
    ///     windows.inner.capture()
    /// });
    /// let mut got: Vec<_> = captured.extract().into_iter().flat_map(|(_, d)| d).collect();
    /// got.sort();
    /// let in_window = |start| (((Window { start, end: start + 10 }, "k".into()), Decimal(5)), 0, 1);
    /// assert_eq!(got, vec![in_window(0), in_window(5)]);
    /// ```
    fn assign_windows(self, spec: WindowSpec) -> VecCollection<'scope, Time, WindowedValue>;
}

impl<'scope> AssignWindows<'scope> for VecCollection<'scope, Time, Event> {
    fn assign_windows(self, spec: WindowSpec) -> VecCollection<'scope, Time, WindowedValue> {
        self.inner
            .unary(Pipeline, "AssignWindows", move |_capability, _info| {
                move |input, output| {
                    input.for_each(|capability, data| {
                        let mut session = output.session(&capability);
                        for (event, time, diff) in data.drain(..) {
                            if event.op != Op::Upsert {
                                continue;
                            }
                            for window in spec.windows_of(event.ts) {
                                session.give((
                                    ((window, event.key.clone()), event.value),
                                    time,
                                    diff,
                                ));
                            }
                        }
                    });
                }
            })
            .as_collection()
    }
}
