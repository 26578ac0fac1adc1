//! The types every layer shares: exact decimals, event time, records and their positions,
//! windows, and the aggregates of a (window, key). Nothing here knows timely.

pub mod agg;
pub mod decimal;
pub mod event;
pub mod time;
pub mod window;
