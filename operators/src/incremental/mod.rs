//! The incremental core: the dataflow operators that keep the aggregate table equal to a full
//! recompute as records arrive, late, twice, or wrong.
//!
//! Each operator is one file with its extension trait on differential collections; each
//! stateful one keeps its state in a plain struct ([`resolve::IdState`],
//! [`aggregate::GroupState`], [`sessions::SessionState`]) that `per_time` changes one
//! complete time at a time. [`watermark`] is event time: the marks that carry it between
//! workers, the lateness horizon, and what state it lets go.

pub mod aggregate;
pub mod assign_windows;
pub mod durable;
pub(crate) mod expiry;
pub(crate) mod per_time;
pub mod resolve;
pub mod sessions;
pub mod split_late;
pub mod watermark;
