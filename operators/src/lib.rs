//! Operators for windowed aggregates that stay correct when events arrive late, twice, or wrong.
//!
//! Each stage is a typed operator on differential-dataflow collections, so a pipeline is a DAG
//! of them and a late event, a replay, a correction or a delete enters as an input delta that
//! touches only the aggregates it changes. The whole dataflow of `amend aggregate`, with the
//! points where records are exchanged between workers:
//!
//! ```text
//!  epoch ─▶ Reader (each worker: its byte range; decode, dead letters) ─┬──────────────────────▶ dead letters
//!   │                                                                   ├─▶ DetectGaps [hash(source)] ─▶ gap changes
//!   │ greatest ts read, per worker: marks ─broadcast─┐                  ├─▶ IdsOnlyInAudit [hash(id)] ─▶ recovered ids
//!   │                                                ▼                  ▼
//!   │                                  SplitLate ◀── records ───────────┘
//!   │                                   │     └────────────────────────────────────────────────▶ late records
//!   │                                   ▼
//!   │                        ResolveIds [hash(id)] ──▶ current records ──▶ CountIds ───────────▶ ids current / deleted
//!   │                                   │
//!   │             ┌─────────────────────┴────────────────────┐
//!   │             ▼                                          ▼
//!   │       AssignWindows ─▶ Aggregate [hash(window, key)]   Sessions [hash(key)] (session:G)
//!   │                              │                         │
//!   │                              └────────────┬────────────┘
//!   │                                           ▼
//!   │                             rows ─┬──────────────────────────────────────────────────────▶ table changes
//!   │                                   └─▶ Estimates [hash(key)] (--fill) ────────────────────▶ estimates
//!   └─ marks also reach ResolveIds, Aggregate and Sessions: the lateness horizon releases state
//! ```
//!
//! Every output arrow goes to the sink outside the dataflow ([`output`]), which keeps the table
//! and writes the changelog, snapshot and digests. Decoding is not a dataflow stage: each worker
//! reads and decodes its own share of every epoch ([`ingest::read`]) and feeds records in.
//!
//! The modules, in layers; each uses only the layers above it:
//!
//! - [`data`]: exact decimals, event time, records and positions, windows, aggregates.
//! - [`ingest`]: input files, epochs and their split among workers, decoding (JSON Lines,
//!   CSV, audit logs), and the per-line rules.
//! - [`incremental`]: the incremental core: [`ResolveIds`], [`AssignWindows`], [`Aggregate`],
//!   [`Sessions`], [`SplitLate`], and event time ([`incremental::watermark`]).
//! - [`recovery`]: [`DetectGaps`], [`IdsOnlyInAudit`], [`Estimates`](recovery::estimates::Estimates).
//! - [`output`]: the table outside the dataflow, the gap tables, and every output's line format.
//! - [`proof`]: digests (and their upkeep epoch by epoch), snapshot files read back,
//!   comparison of digested tables, reconciliation with a published table.
//!
//! The dataflow time is an internal batch number ([`Time`]); each epoch of the input owns a
//! range of them, so the dataflow can work through a large epoch in bounded batches while
//! outputs still change once per epoch. The data contract (fields, resolution, windows,
//! outputs, digests) is `docs/format.md`.
#![deny(missing_docs)]

mod cores;
pub mod data;
pub mod incremental;
pub mod ingest;
pub mod output;
pub mod proof;
pub mod recovery;

pub use data::agg::{Agg, AggRow};
pub use data::decimal::{Decimal, Scale};
pub use data::event::{DeadLetter, Event, Op, Position, Time};
pub use data::window::{Window, WindowSpec};
pub use data::{decimal, event, time};
pub use incremental::aggregate::Aggregate;
pub use incremental::assign_windows::AssignWindows;
pub use incremental::resolve::ResolveIds;
pub use incremental::sessions::{SessionState, Sessions};
pub use incremental::split_late::{LateRecord, SplitLate};
pub use incremental::watermark::{Bounds, Lateness, Marks, StateGauges};
pub use ingest::audit::{AuditDecoder, AuditFormat, AuditPattern};
pub use ingest::decode::{BadRecord, Decoder, FieldNames};
pub use output::gap_table::GapTable;
pub use recovery::gaps::{DetectGaps, GapOptions, GapRow, SeqRanges};
pub use recovery::ids_only_in_audit::IdsOnlyInAudit;
