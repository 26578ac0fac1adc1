//! The table outside the dataflow, and the line formats of every output (docs/format.md,
//! section 6).
//!
//! [`table::Table`] is the aggregate table as the changelog builds it; [`gap_table::GapTable`]
//! the gap tables. Each output's lines are written in exactly one place: [`rows`] (changelog
//! and snapshot rows), [`dead_letter`], [`late`], [`estimates`], [`epochs`] and
//! [`gap_table`] (gaps, gap changes, duplicates). No line format iterates a `HashMap`: every
//! output is byte-identical for any worker count.

use std::io;

pub mod dead_letter;
pub mod epochs;
pub mod estimates;
pub mod gap_table;
pub mod late;
pub mod rows;
pub mod saved_rows;
pub mod table;

/// Why a row of the table cannot be applied or written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// A sum beyond 128-bit fixed point.
    #[error("the sum of window {start} key `{key}` does not fit 128-bit fixed point at this scale")]
    Overflow {
        /// Window start, RFC 3339.
        start: String,
        /// The key.
        key: String,
    },
    /// A change that does not apply: an internal error, never a data error.
    #[error("internal error: epoch {epoch} {what} row window {start} key `{key}`")]
    Inconsistent {
        /// The epoch.
        epoch: u64,
        /// What went wrong.
        what: &'static str,
        /// Window start, RFC 3339.
        start: String,
        /// The key.
        key: String,
    },
    /// Writing failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}
