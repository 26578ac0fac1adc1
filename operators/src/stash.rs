//! Updates held until their time is complete, for operators that act once per time.

use std::collections::BTreeMap;

use timely::dataflow::operators::{Capability, InputCapability};

use crate::event::Time;

/// Items waiting for their time to pass the input frontier, each time with a capability to
/// emit at it. Times are released in ascending order.
pub(crate) struct Stash<D> {
    pending: BTreeMap<Time, (Capability<Time>, Vec<D>)>,
}

impl<D> Default for Stash<D> {
    fn default() -> Self {
        Stash {
            pending: BTreeMap::new(),
        }
    }
}

impl<D> Stash<D> {
    /// Holds `item` for `time`, which the input capability must not be later than.
    pub(crate) fn push(&mut self, capability: &InputCapability<Time>, time: Time, item: D) {
        self.pending
            .entry(time)
            .or_insert_with(|| (capability.delayed(&time, 0), Vec::new()))
            .1
            .push(item);
    }

    /// The earliest held time if `ready` says it may go, with its capability and items.
    pub(crate) fn pop_ready(
        &mut self,
        ready: impl FnOnce(Time) -> bool,
    ) -> Option<(Time, Capability<Time>, Vec<D>)> {
        let entry = self.pending.first_entry()?;
        if !ready(*entry.key()) {
            return None;
        }
        let (time, (capability, items)) = entry.remove_entry();
        Some((time, capability, items))
    }

    /// Whether nothing is held.
    pub(crate) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}
