//! Proof that two results are equal, and what to do when they are not.
//!
//! [`digest`]: SHA-256 digests of a table and of each window (docs/format.md, section 7);
//! [`window_digests`]: those digests kept in step with the table, epoch by epoch;
//! [`snapshot`]: snapshot files read back, amend's or a foreign export's; [`compare`]: which
//! windows of two digested tables differ; [`reconcile`]: a published table compared row by
//! row with the correct one, and the changelog that corrects it.

pub mod compare;
pub mod digest;
pub mod reconcile;
pub mod snapshot;
pub mod window_digests;
