//! Loading a worker's share of a checkpoint: for each operator, from each chain of parts, its
//! last section with every entry and the sections of changes after it.

use std::sync::Arc;

use super::layout::{Kind, section};
use super::{Base, Durable, LoadError};
use crate::data::event::{Time, epoch_start};
use crate::data::time::Millis;

/// What a resumed worker loads: the chains of parts of a checkpoint (each a part with every
/// entry and the parts of changes after it), which of their entries are its own, and the marks
/// the checkpointed epochs had sent.
pub struct Restore {
    chains: Vec<Vec<Arc<Vec<u8>>>>,
    keep: Box<dyn Fn(u64) -> bool>,
    /// Whether `keep` may refuse an entry (the number of workers changed).
    filters: bool,
    /// The epoch after the checkpoint, and the greatest event time read before it.
    mark: Option<(u64, Millis)>,
    pub(super) error: Option<LoadError>,
}

impl Restore {
    /// Loads, from `chains`, the entries whose route `keep` accepts (all if not `filters`);
    /// the run resumes at epoch `next_epoch`, with `max_ts` the greatest event time read before.
    pub fn new(
        chains: Vec<Vec<Arc<Vec<u8>>>>,
        filters: bool,
        keep: impl Fn(u64) -> bool + 'static,
        next_epoch: u64,
        max_ts: Option<Millis>,
    ) -> Restore {
        Restore {
            chains,
            keep: Box::new(keep),
            filters,
            mark: max_ts.map(|ts| (next_epoch, ts)),
            error: None,
        }
    }

    /// The mark every worker sent at the start of the resumed epoch, as a received one.
    pub(crate) fn mark(&self) -> Option<(Time, Millis)> {
        self.mark.map(|(epoch, ts)| (epoch_start(epoch), ts))
    }

    /// Loads the entries of `operator` that are this worker's into `state`.
    pub(super) fn load(&mut self, operator: &str, state: &mut dyn Durable) {
        if self.error.is_none()
            && let Err(e) = self.try_load(operator, state)
        {
            self.error = Some(e);
        }
    }

    fn try_load(&self, operator: &str, state: &mut dyn Durable) -> Result<(), LoadError> {
        // Per chain, the sections to apply: from its last with every entry on.
        let mut applied = Vec::new();
        for chain in &self.chains {
            let mut sections = Vec::new();
            for part in chain {
                sections.extend(section(part, operator)?.map(|s| (part, s)));
            }
            let Some(all) = sections.iter().rposition(|(_, s)| s.kind == Kind::All) else {
                if sections.is_empty() {
                    continue;
                }
                return Err(LoadError::Chain {
                    operator: operator.to_string(),
                });
            };
            applied.extend(sections.split_off(all));
        }
        // A worker's own chain: its entries stay as saved, if the state can find them there.
        let mut applied = applied.as_slice();
        if !self.filters
            && self.chains.len() == 1
            && let Some(((part, all), changes)) = applied.split_first()
            && let Some(slot) = state.base_slot()
        {
            *slot = Some(Base::new(Arc::clone(part), all)?);
            applied = changes;
        }
        let mut count = 0;
        for (_, section) in applied {
            if self.filters {
                section.for_each(|route, _| {
                    count += usize::from((self.keep)(route));
                    Ok(())
                })?;
            } else {
                count += section.entries as usize;
            }
        }
        state.reserve(count);
        let failed = |source| LoadError::Entry {
            operator: operator.to_string(),
            source,
        };
        for (_, section) in applied {
            section.for_each(|route, entry| {
                if !self.filters || (self.keep)(route) {
                    match section.kind {
                        Kind::All => state.load(entry),
                        Kind::Changes => state.load_change(entry),
                    }
                    .map_err(failed)?;
                }
                Ok(())
            })?;
        }
        state.track_changes();
        Ok(())
    }
}
