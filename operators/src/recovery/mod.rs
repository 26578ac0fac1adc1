//! Recovery: the dataflow operators that find what the input is missing.
//!
//! [`gaps`]: the sequence numbers each producer skipped, as ranges; [`ids_only_in_audit`]: the
//! ids only an audit log had (the events the input missed); [`estimates`]: estimates for a
//! key's empty windows, kept apart from the exact table. Each is one operator over plain state,
//! built on the same scaffold as the incremental core.

pub mod estimates;
pub mod gaps;
pub mod ids_only_in_audit;
