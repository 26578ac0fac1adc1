//! Ingest: inputs and their epochs, lines, and records decoded from them. Nothing here knows
//! timely.
//!
//! [`source`]: input files, the part of an input an epoch reads and its split among workers,
//! and line reading; [`decode`]: JSON Lines and CSV lines into [`Event`](crate::Event)s, or a
//! [`BadRecord`](decode::BadRecord) reason; [`audit`]: audit-log lines (a regex's named groups,
//! or JSON at a path) into events; [`read`]: a worker's share of an epoch into records and
//! dead letters, by the per-line rules every pipeline keeps; [`messages`]: a broker's messages
//! laid out as the lines of one epoch, and their positions.

pub mod audit;
pub mod decode;
pub mod messages;
pub mod read;
mod scan;
pub mod source;
pub mod tombstone;
