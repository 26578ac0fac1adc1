//! The line of `estimates.jsonl`: an estimated row of an empty window (`--fill`), kept apart
//! from the exact table.

use std::collections::BTreeMap;
use std::io::{self, Write};

use compact_str::CompactString;

use crate::data::decimal::Scale;
use crate::data::time::format_millis;
use crate::data::window::Window;
use crate::recovery::estimates::Estimate;

/// Writes estimated rows as JSON lines, in (window, key) order: the snapshot's fields, and
/// `"estimate"` naming how they were estimated.
pub fn write_estimates(
    rows: &BTreeMap<(Window, CompactString), Estimate>,
    how: &str,
    scale: Scale,
    out: &mut impl Write,
) -> io::Result<()> {
    for ((window, key), e) in rows {
        write!(
            out,
            "{{\"window_start\":\"{}\",\"window_end\":\"{}\",\"key\":",
            format_millis(window.start),
            format_millis(window.end)
        )?;
        serde_json::to_writer(&mut *out, key)?;
        writeln!(
            out,
            ",\"estimate\":\"{how}\",\"count\":{},\"sum\":\"{}\",\"min\":\"{}\",\"max\":\"{}\",\"mean\":\"{}\"}}",
            e.count,
            e.sum.display(scale),
            e.min.display(scale),
            e.max.display(scale),
            e.mean.display(scale),
        )?;
    }
    Ok(())
}
