//! Operators for windowed aggregates that stay correct when events arrive late, twice, or wrong.
//!
//! Each stage is a typed operator on differential-dataflow collections, so a pipeline is a DAG
//! of them and a late event, a replay, a correction or a delete enters as an input delta that
//! touches only the aggregates it changes:
//!
//! ```text
//!  files ──source──▶ lines ──decode──▶ Event ─┬─▶ ResolveIds ──▶ current records
//!    (byte range per worker)                  │   [exchange: hash(id)]       │
//!                                             │                     AssignWindows
//!                                             ▼                              │
//!                                        DeadLetter              ((window, key), value)
//!                                             │                              │
//!                                             │                          Aggregate
//!                                             │                 [exchange: hash(window, key)]
//!                                             ▼                              ▼
//!                                     dead_letter sink      Table ─▶ changelog, snapshot, digests
//! ```
//!
//! - [`decimal`]: exact fixed-point values; [`time`]: event time and durations.
//! - [`decode`]: JSON Lines and CSV lines into [`Event`]s, or a [`BadRecord`] reason.
//! - [`audit`]: audit-log lines (a regex's named groups, or JSON at a path) into [`Event`]s.
//! - [`source`]: input files, their split among workers, and their lines.
//! - [`resolve`]: [`ResolveIds`], the current record per id (SPEC section 3).
//! - [`recovered`]: [`IdsOnlyInAudit`], the ids whose every record came from an audit log.
//! - [`window`]: [`AssignWindows`], tumbling and hopping windows (SPEC section 4).
//! - [`aggregate`]: [`Aggregate`], count/sum/min/max per (window, key).
//! - [`watermark`]: event time: watermarks, late records, and closing what can no longer
//!   change (bounded state).
//! - [`session`]: [`Sessions`], session windows and their aggregates per key, in one operator
//!   [exchange: hash(key)] that replaces `AssignWindows` + `Aggregate` for `session:G`.
//! - [`estimate`]: estimates for a key's empty windows between observed ones (`--fill`),
//!   kept apart from the exact table.
//! - [`gaps`]: [`DetectGaps`], per producer the missing sequence-number ranges, duplicated
//!   numbers and extents [exchange: hash(source)], kept as ranges so state grows with gaps;
//!   [`gap_table`]: their changelog and current tables outside the dataflow.
//! - [`digest`]: SHA-256 table and window digests (SPEC section 7); [`compare`]: which
//!   windows of two digested tables differ.
//! - [`reconcile`]: a published table compared row by row with the correct one, and the
//!   changelog that corrects it.
//! - [`sink`]: the table outside the dataflow: changelog, snapshot, dead letters.
//! - [`snapshot`]: snapshot files read back (JSON Lines or CSV, amend's or a foreign
//!   export's), to digest and compare results made elsewhere.
//!
//! The dataflow time is an internal batch number ([`event::Time`]); each epoch of the input
//! owns a range of them, so the dataflow can work through a large epoch in bounded batches
//! while outputs still change once per epoch.
#![deny(missing_docs)]

pub mod aggregate;
pub mod audit;
pub mod compare;
pub mod decimal;
pub mod decode;
pub mod digest;
pub mod estimate;
pub mod event;
pub mod gap_table;
pub mod gaps;
pub mod reconcile;
pub mod recovered;
pub mod resolve;
pub mod session;
pub mod sink;
pub mod snapshot;
pub mod source;
mod stash;
pub mod time;
pub mod watermark;
pub mod window;

pub use aggregate::{Agg, AggRow, Aggregate};
pub use audit::{AuditDecoder, AuditFormat, AuditPattern};
pub use decimal::{Decimal, Scale};
pub use decode::{BadRecord, Decoder, FieldNames};
pub use event::{DeadLetter, Event, Op, Position, Time};
pub use gap_table::GapTable;
pub use gaps::{DetectGaps, GapOptions, GapRow, SeqRanges};
pub use recovered::IdsOnlyInAudit;
pub use resolve::ResolveIds;
pub use session::{SessionState, Sessions};
pub use watermark::{Bounds, LateRecord, Lateness, Marks, SplitLate, StateGauges};
pub use window::{AssignWindows, Window, WindowSpec};
