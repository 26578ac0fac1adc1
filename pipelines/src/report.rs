//! The HTML report of `amend reconcile`: one self-contained page for a person to read.
//!
//! [`write_report`] writes one HTML document from a [`ReportInput`]:
//!
//! - a summary: the published file, the rows of both tables, the tolerance, the rows of each
//!   kind (match, mismatch, missing, extra), the records and epochs of the run;
//! - a timeline of the discrepancies as an inline SVG chart: per window (in (start, end)
//!   order), a bar of its mismatched, missing and extra rows, and a line of their total size.
//!   Beyond [`MAX_BUCKETS`] windows, consecutive windows are grouped into equal buckets (the
//!   last may hold fewer) whose counts and sizes are the sums of their windows', and the
//!   caption says so;
//! - the largest discrepancies as a table: published and correct values and their delta;
//! - the two table digests (docs/format.md section 7) and how many windows they differ in.
//!
//! The page works offline and runs nothing: inline CSS only, no script, no external
//! stylesheet, font or image, and a Content-Security-Policy that forbids loading any. Every
//! text taken from the data (keys, the file name) is HTML-escaped. The output depends only on
//! the input: the same input gives the same bytes.
//!
//! Elements a test can find: `#summary`; `#count-match`, `#count-mismatch`, `#count-missing`,
//! `#count-extra` holding plain integers; `svg#timeline` with one `rect.bar` per window (or
//! bucket) with discrepancies, carrying `data-start` (RFC 3339) and `data-count`;
//! `table#largest` with one `tr.discrepancy` per entry of [`Reconciliation::largest`];
//! `#digest-correct` and `#digest-published` holding the table digests, and
//! `#differing-windows` the number of windows whose digests differ.

use std::fmt::{self, Display};
use std::io::{self, Write};
use std::path::Path;

use amend_operators::proof::compare::{WindowDifference, differing_windows};
use amend_operators::proof::digest::TableDigest;
use amend_operators::proof::reconcile::{
    Delta, Kind, KindCounts, Largest, Reconciliation, Values, WindowSummary,
};
use amend_operators::time::format_millis;
use amend_operators::{Decimal, Scale};

/// The most bars the timeline draws; more windows are grouped into buckets.
pub const MAX_BUCKETS: usize = 600;

/// The most differing windows listed by name (all are counted).
const MAX_LISTED_WINDOWS: usize = 20;

/// What the report shows.
pub struct ReportInput<'a> {
    /// The published file, as given on the command line.
    pub published: &'a Path,
    /// Rows of the published table.
    pub published_rows: u64,
    /// Rows of the correct table.
    pub correct_rows: u64,
    /// The comparison (counts by kind, per-window timeline, largest discrepancies).
    pub reconciliation: &'a Reconciliation,
    /// Decimal scale of every value and size.
    pub scale: Scale,
    /// The tolerance used (0 = exact).
    pub tolerance: Decimal,
    /// Digest of the correct table (docs/format.md section 7).
    pub correct_digest: &'a TableDigest,
    /// Digest of the published table.
    pub published_digest: &'a TableDigest,
    /// Records read.
    pub records_read: u64,
    /// Records dead-lettered (the rest were accepted).
    pub records_dead_lettered: u64,
    /// Epochs of the run.
    pub epochs: u64,
    /// When the report was written, RFC 3339.
    pub generated_at: String,
}

/// Writes the report of `input` to `out` as one HTML document.
pub fn write_report(out: &mut impl Write, input: &ReportInput<'_>) -> io::Result<()> {
    let out: &mut dyn Write = out;
    write_head(out)?;
    writeln!(out, "<body>")?;
    writeln!(out, "<h1>amend reconcile report</h1>")?;
    writeln!(
        out,
        "<p class=\"sub\">The published table <code>{}</code> compared row by row with the \
         table recomputed from the records. Generated <time datetime=\"{}\">{}</time>.</p>",
        escape(&input.published.display().to_string()),
        escape(&input.generated_at),
        escape(&input.generated_at),
    )?;
    write_summary(out, input)?;
    write_timeline(out, &input.reconciliation.timeline, input.scale)?;
    write_largest(out, input)?;
    write_digests(out, input.correct_digest, input.published_digest)?;
    writeln!(out, "</body>")?;
    writeln!(out, "</html>")?;
    out.flush()
}

const STYLE: &str = "\
:root { --bar: #c0392b; --line: #1f5fa8; --muted: #666; --rule: #ddd; }
body { font: 14px/1.45 system-ui, -apple-system, \"Segoe UI\", Roboto, sans-serif;
       color: #1b1b1b; background: #fff; max-width: 1400px; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin: 0 0 .3rem; }
h2 { font-size: 1.2rem; margin: 2rem 0 .6rem; padding-bottom: .2rem;
     border-bottom: 1px solid var(--rule); }
.sub, figcaption, .note { color: var(--muted); }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .92em;
       overflow-wrap: anywhere; }
.verdict { padding: .5rem .75rem; border-left: 4px solid; }
.verdict.ok { border-color: #2e7d32; background: #edf7ee; }
.verdict.bad { border-color: var(--bar); background: #fdecea; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1.2rem; }
dt { font-weight: 600; }
dd { margin: 0; }
table { border-collapse: collapse; margin: .4rem 0; }
th, td { border: 1px solid var(--rule); padding: .25rem .5rem; text-align: left;
         vertical-align: top; }
thead th { background: #f4f4f4; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.absent { color: var(--muted); text-align: center; }
td.diff { background: #fdecea; font-weight: 600; }
td.key { min-width: 5rem; max-width: 16rem; overflow-wrap: anywhere; }
td.time { white-space: nowrap; }
#largest { font-size: .8rem; }
#largest th, #largest td { padding: .2rem .35rem; }
.scroll { overflow-x: auto; }
figure { margin: 0; }
svg { display: block; width: 100%; height: auto; }
svg text { font: 11px system-ui, sans-serif; fill: #333; }
svg text.empty { font-size: 16px; fill: var(--muted); }
svg .bar { fill: var(--bar); }
svg .bar:hover { fill: #7b1d12; }
svg .size-line { fill: none; stroke: var(--line); stroke-width: 1.5; }
svg .size-point { fill: var(--line); }
svg .grid { stroke: #eee; }
svg .axis { stroke: #999; }
";

fn write_head(out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "<!DOCTYPE html>")?;
    writeln!(out, "<html lang=\"en\">")?;
    writeln!(out, "<head>")?;
    writeln!(out, "<meta charset=\"utf-8\">")?;
    // Nothing is ever fetched or run: the page is complete as written.
    writeln!(
        out,
        "<meta http-equiv=\"Content-Security-Policy\" \
         content=\"default-src 'none'; style-src 'unsafe-inline'\">"
    )?;
    writeln!(
        out,
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
    )?;
    writeln!(
        out,
        "<meta name=\"generator\" content=\"amend {}\">",
        env!("CARGO_PKG_VERSION")
    )?;
    writeln!(out, "<title>amend reconcile report</title>")?;
    writeln!(out, "<style>\n{STYLE}</style>")?;
    writeln!(out, "</head>")
}

/// What a row of each kind is, for the counts table.
fn meaning(kind: Kind) -> &'static str {
    match kind {
        Kind::Match => "both tables have the row and every aggregate agrees",
        Kind::Mismatch => "both tables have the row and some aggregate differs",
        Kind::Missing => "only the correct table has the row: it was never published",
        Kind::Extra => "only the published table has the row: no current record is behind it",
    }
}

fn write_summary(out: &mut dyn Write, input: &ReportInput<'_>) -> io::Result<()> {
    let r = input.reconciliation;
    let scale = input.scale;
    writeln!(out, "<section id=\"summary\">")?;
    writeln!(out, "<h2>Summary</h2>")?;
    let discrepancies = r.counts.discrepancies();
    if discrepancies == 0 {
        writeln!(
            out,
            "<p class=\"verdict ok\">The published table is correct: every row matches.</p>"
        )?;
    } else {
        writeln!(
            out,
            "<p class=\"verdict bad\">{discrepancies} {} of {} need a correction.</p>",
            plural(discrepancies, "row", "rows"),
            r.counts.matched + discrepancies,
        )?;
    }
    writeln!(out, "<dl>")?;
    writeln!(
        out,
        "<dt>Published file</dt><dd><code id=\"published-file\">{}</code></dd>",
        escape(&input.published.display().to_string())
    )?;
    writeln!(
        out,
        "<dt>Rows</dt><dd>published <span id=\"rows-published\">{}</span>, \
         correct <span id=\"rows-correct\">{}</span></dd>",
        input.published_rows, input.correct_rows
    )?;
    let tolerance = input.tolerance.to_canonical(scale);
    let exact = if input.tolerance == Decimal::ZERO {
        " (exact)"
    } else {
        ""
    };
    writeln!(
        out,
        "<dt>Tolerance</dt><dd><span id=\"tolerance\">{tolerance}</span>{exact}; \
         counts must always agree exactly</dd>"
    )?;
    writeln!(
        out,
        "<dt>Scale</dt><dd>{} fractional digits</dd>",
        scale.digits()
    )?;
    writeln!(
        out,
        "<dt>Records</dt><dd>read <span id=\"records-read\">{}</span>, accepted {}, \
         dead-lettered <span id=\"records-dead-lettered\">{}</span></dd>",
        input.records_read,
        input
            .records_read
            .saturating_sub(input.records_dead_lettered),
        input.records_dead_lettered
    )?;
    writeln!(
        out,
        "<dt>Epochs</dt><dd><span id=\"epochs\">{}</span></dd>",
        input.epochs
    )?;
    writeln!(
        out,
        "<dt>Generated</dt><dd><time id=\"generated-at\" datetime=\"{}\">{}</time></dd>",
        escape(&input.generated_at),
        escape(&input.generated_at)
    )?;
    writeln!(out, "</dl>")?;

    writeln!(out, "<table id=\"counts\">")?;
    writeln!(
        out,
        "<thead><tr><th>kind</th><th class=\"num\">rows</th><th>meaning</th></tr></thead>"
    )?;
    writeln!(out, "<tbody>")?;
    for kind in Kind::ALL {
        let name = kind.name();
        writeln!(
            out,
            "<tr><th scope=\"row\">{name}</th><td class=\"num\" id=\"count-{name}\">{}</td>\
             <td>{}</td></tr>",
            r.counts.get(kind),
            meaning(kind)
        )?;
    }
    writeln!(out, "</tbody>")?;
    writeln!(
        out,
        "<tfoot><tr><th scope=\"row\">compared</th><td class=\"num\">{}</td>\
         <td>corrections: {} changelog lines, {} upserts</td></tr></tfoot>",
        r.counts.matched + discrepancies,
        r.corrections_lines,
        r.upserts_lines
    )?;
    writeln!(out, "</table>")?;
    writeln!(out, "</section>")
}

/// A run of consecutive windows drawn as one bar.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Bucket {
    /// Start of its first window, epoch ms.
    start: i64,
    /// The latest end of its windows, epoch ms.
    end: i64,
    /// Its number of windows.
    windows: usize,
    /// Rows of each kind, over its windows.
    counts: KindCounts,
    /// The total size of its discrepancies, in units of the scale (saturating).
    size: u128,
}

/// The timeline's windows in (start, end) order, grouped into at most [`MAX_BUCKETS`] buckets
/// of equally many consecutive windows (the last may hold fewer), and the windows per bucket.
fn buckets(timeline: &[WindowSummary]) -> (Vec<Bucket>, usize) {
    let mut windows: Vec<&WindowSummary> = timeline.iter().collect();
    windows.sort_by_key(|w| (w.start, w.end));
    let per = windows.len().div_ceil(MAX_BUCKETS).max(1);
    let buckets = windows
        .chunks(per)
        .map(|chunk| {
            let mut bucket = Bucket {
                start: chunk[0].start,
                end: chunk[0].end,
                ..Bucket::default()
            };
            for w in chunk {
                bucket.end = bucket.end.max(w.end);
                bucket.windows += 1;
                let c = &mut bucket.counts;
                c.matched += w.counts.matched;
                c.mismatch += w.counts.mismatch;
                c.missing += w.counts.missing;
                c.extra += w.counts.extra;
                bucket.size = bucket.size.saturating_add(w.size);
            }
            bucket
        })
        .collect();
    (buckets, per)
}

// The chart's geometry, in SVG user units.
const WIDTH: f64 = 1200.0;
const LEFT: f64 = 100.0;
const RIGHT: f64 = 30.0;
const COUNT_TOP: f64 = 50.0;
const COUNT_HEIGHT: f64 = 200.0;
const SIZE_TOP: f64 = 290.0;
const SIZE_HEIGHT: f64 = 130.0;
const HEIGHT: f64 = SIZE_TOP + SIZE_HEIGHT + 40.0;
/// Circles mark the size of each bucket only when there is room for them.
const MAX_POINTS: usize = 120;
const X_TICKS: usize = 6;

fn write_timeline(out: &mut dyn Write, timeline: &[WindowSummary], scale: Scale) -> io::Result<()> {
    writeln!(out, "<section id=\"timeline-section\">")?;
    writeln!(out, "<h2>Discrepancies per window</h2>")?;
    writeln!(out, "<figure>")?;
    let (buckets, per) = buckets(timeline);
    let with_discrepancies = buckets
        .iter()
        .filter(|b| b.counts.discrepancies() > 0)
        .count();
    if with_discrepancies == 0 {
        writeln!(
            out,
            "<svg id=\"timeline\" viewBox=\"0 0 {WIDTH} 120\" role=\"img\" \
             aria-label=\"no discrepancies\">"
        )?;
        writeln!(
            out,
            "<text class=\"empty\" x=\"{:.1}\" y=\"65\" text-anchor=\"middle\">no discrepancies</text>",
            WIDTH / 2.0
        )?;
        writeln!(out, "</svg>")?;
        let windows = timeline.len();
        writeln!(
            out,
            "<figcaption>{windows} {} compared; none has a discrepancy.</figcaption>",
            plural(windows as u64, "window", "windows")
        )?;
    } else {
        write_chart(out, &buckets, per, scale)?;
        let windows = timeline.len();
        if per == 1 {
            writeln!(
                out,
                "<figcaption>One bar per window with a discrepancy ({with_discrepancies} of \
                 {windows} windows), in order of window start; its height counts the window's \
                 mismatched, missing and extra rows. The line is the total size of the \
                 window's discrepancies (for a mismatch, the largest absolute difference of a \
                 decimal aggregate; for a missing or extra row, the largest magnitude of its \
                 one side). Times are UTC; hover a bar for its window and counts.</figcaption>"
            )?;
        } else {
            writeln!(
                out,
                "<figcaption>The {windows} windows are grouped, in order of window start, into \
                 {} buckets of {per} consecutive windows (the last may hold fewer); a bar sums \
                 the counts of its bucket's windows, and the line their sizes. \
                 {with_discrepancies} buckets have a discrepancy. A bar's height counts \
                 mismatched, missing and extra rows; a size is, for a mismatch, the largest \
                 absolute difference of a decimal aggregate and, for a missing or extra row, \
                 the largest magnitude of its one side. Times are UTC; hover a bar for its \
                 windows and counts.</figcaption>",
                buckets.len()
            )?;
        }
    }
    writeln!(out, "</figure>")?;
    writeln!(out, "</section>")
}

/// The chart of non-empty `buckets`, at least one with a discrepancy.
fn write_chart(
    out: &mut dyn Write,
    buckets: &[Bucket],
    per: usize,
    scale: Scale,
) -> io::Result<()> {
    let max_count = buckets
        .iter()
        .map(|b| b.counts.discrepancies())
        .max()
        .unwrap_or(0)
        .max(1);
    let max_size = buckets.iter().map(|b| b.size).max().unwrap_or(0);
    let slot = (WIDTH - LEFT - RIGHT) / buckets.len() as f64;
    let center = |i: usize| LEFT + (i as f64 + 0.5) * slot;
    let count_y = |n: u64| COUNT_TOP + COUNT_HEIGHT * (1.0 - n as f64 / max_count as f64);
    let size_y = |s: u128| {
        let fraction = if max_size == 0 {
            0.0
        } else {
            s as f64 / max_size as f64
        };
        SIZE_TOP + SIZE_HEIGHT * (1.0 - fraction)
    };

    writeln!(
        out,
        "<svg id=\"timeline\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" \
         aria-labelledby=\"timeline-title\">"
    )?;
    writeln!(
        out,
        "<title id=\"timeline-title\">Discrepancies and their total size per window</title>"
    )?;

    // Legend.
    writeln!(
        out,
        "<rect x=\"{LEFT}\" y=\"12\" width=\"12\" height=\"12\" fill=\"#c0392b\"/>\
         <text x=\"{:.1}\" y=\"22\">discrepancies (mismatch + missing + extra) per {}</text>",
        LEFT + 18.0,
        if per == 1 { "window" } else { "bucket" }
    )?;
    let line_x = LEFT + 420.0;
    writeln!(
        out,
        "<line x1=\"{line_x:.1}\" y1=\"18\" x2=\"{:.1}\" y2=\"18\" stroke=\"#1f5fa8\" \
         stroke-width=\"2\"/><text x=\"{:.1}\" y=\"22\">total size of the discrepancies</text>",
        line_x + 16.0,
        line_x + 22.0
    )?;

    // Vertical grid and time ticks through both panels.
    let ticks: Vec<usize> = if buckets.len() <= X_TICKS {
        (0..buckets.len()).collect()
    } else {
        let last = buckets.len() - 1;
        let mut ticks: Vec<usize> = (0..X_TICKS).map(|k| k * last / (X_TICKS - 1)).collect();
        ticks.dedup();
        ticks
    };
    let bottom = SIZE_TOP + SIZE_HEIGHT;
    for &i in &ticks {
        let x = center(i);
        writeln!(
            out,
            "<line class=\"grid\" x1=\"{x:.1}\" y1=\"{COUNT_TOP}\" x2=\"{x:.1}\" y2=\"{bottom}\"/>\
             <line class=\"axis\" x1=\"{x:.1}\" y1=\"{bottom}\" x2=\"{x:.1}\" y2=\"{:.1}\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            bottom + 5.0,
            bottom + 18.0,
            escape(&short_time(buckets[i].start))
        )?;
    }

    // Count panel: horizontal grid, labels, bars.
    let mut count_ticks = vec![0, max_count];
    if max_count >= 2 {
        count_ticks.insert(1, max_count / 2);
    }
    for n in count_ticks {
        let y = count_y(n);
        writeln!(
            out,
            "<line class=\"grid\" x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{n}</text>",
            WIDTH - RIGHT,
            LEFT - 8.0,
            y + 4.0
        )?;
    }
    let bar_width = (slot * 0.8).max(1.0);
    for (i, bucket) in buckets.iter().enumerate() {
        let n = bucket.counts.discrepancies();
        if n == 0 {
            continue;
        }
        // A bar of one row among thousands stays visible.
        let height = (COUNT_TOP + COUNT_HEIGHT - count_y(n)).max(1.0);
        writeln!(
            out,
            "<rect class=\"bar\" x=\"{:.2}\" y=\"{:.2}\" width=\"{bar_width:.2}\" \
             height=\"{height:.2}\" data-start=\"{}\" data-end=\"{}\" data-count=\"{n}\">\
             <title>{}</title></rect>",
            center(i) - bar_width / 2.0,
            COUNT_TOP + COUNT_HEIGHT - height,
            format_millis(bucket.start),
            format_millis(bucket.end),
            escape(&tooltip(bucket, scale))
        )?;
    }
    writeln!(
        out,
        "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{0:.1}\" x2=\"{1:.1}\" y2=\"{0:.1}\"/>",
        COUNT_TOP + COUNT_HEIGHT,
        WIDTH - RIGHT
    )?;

    // Size panel: horizontal grid, labels, the line.
    let mut size_ticks = vec![0, max_size];
    if max_size >= 2 {
        size_ticks.insert(1, max_size / 2);
    }
    size_ticks.dedup();
    for s in size_ticks {
        let y = size_y(s);
        writeln!(
            out,
            "<line class=\"grid\" x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            WIDTH - RIGHT,
            LEFT - 8.0,
            y + 4.0,
            size_text(s, scale)
        )?;
    }
    write!(out, "<polyline class=\"size-line\" points=\"")?;
    for (i, bucket) in buckets.iter().enumerate() {
        let separator = if i == 0 { "" } else { " " };
        write!(
            out,
            "{separator}{:.2},{:.2}",
            center(i),
            size_y(bucket.size)
        )?;
    }
    writeln!(out, "\"/>")?;
    if buckets.len() <= MAX_POINTS {
        for (i, bucket) in buckets.iter().enumerate() {
            if bucket.counts.discrepancies() == 0 {
                continue;
            }
            writeln!(
                out,
                "<circle class=\"size-point\" cx=\"{:.2}\" cy=\"{:.2}\" r=\"3\">\
                 <title>{}</title></circle>",
                center(i),
                size_y(bucket.size),
                escape(&tooltip(bucket, scale))
            )?;
        }
    }
    writeln!(
        out,
        "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{bottom:.1}\" x2=\"{:.1}\" y2=\"{bottom:.1}\"/>",
        WIDTH - RIGHT
    )?;
    writeln!(out, "</svg>")
}

/// A bar's tooltip: its window(s), counts and size.
fn tooltip(bucket: &Bucket, scale: Scale) -> String {
    let c = &bucket.counts;
    let n = c.discrepancies();
    let windows = if bucket.windows == 1 {
        String::new()
    } else {
        format!("{} windows, ", bucket.windows)
    };
    format!(
        "{windows}{} – {}\n{n} {}: {} mismatch, {} missing, {} extra; {} matching\n\
         total size {}",
        format_millis(bucket.start),
        format_millis(bucket.end),
        plural(n, "discrepancy", "discrepancies"),
        c.mismatch,
        c.missing,
        c.extra,
        c.matched,
        size_text(bucket.size, scale)
    )
}

fn write_largest(out: &mut dyn Write, input: &ReportInput<'_>) -> io::Result<()> {
    let r = input.reconciliation;
    let scale = input.scale;
    writeln!(out, "<section id=\"largest-section\">")?;
    writeln!(out, "<h2>Largest discrepancies</h2>")?;
    writeln!(
        out,
        "<p class=\"note\">The {} largest of {} discrepancies, largest first. A mismatch's size \
         is the largest absolute difference of a decimal aggregate; a missing or extra row's, \
         the largest magnitude of its one side. Delta is correct − published; \
         “—” marks a side that has no row.</p>",
        r.largest.len(),
        r.counts.discrepancies()
    )?;
    writeln!(out, "<div class=\"scroll\">")?;
    writeln!(out, "<table id=\"largest\">")?;
    writeln!(out, "<thead>")?;
    writeln!(
        out,
        "<tr><th rowspan=\"2\">#</th><th rowspan=\"2\">window start</th>\
         <th rowspan=\"2\">window end</th><th rowspan=\"2\">key</th><th rowspan=\"2\">kind</th>\
         <th colspan=\"5\">published</th><th colspan=\"5\">correct</th>\
         <th colspan=\"5\">delta</th><th rowspan=\"2\" class=\"num\">size</th></tr>"
    )?;
    write!(out, "<tr>")?;
    for _ in 0..3 {
        for name in ["count", "sum", "min", "max", "mean"] {
            write!(out, "<th class=\"num\">{name}</th>")?;
        }
    }
    writeln!(out, "</tr>")?;
    writeln!(out, "</thead>")?;
    writeln!(out, "<tbody>")?;
    if r.largest.is_empty() {
        writeln!(
            out,
            "<tr><td colspan=\"21\" class=\"absent\">no discrepancies</td></tr>"
        )?;
    }
    for (rank, largest) in r.largest.iter().enumerate() {
        write_largest_row(out, rank + 1, largest, scale)?;
    }
    writeln!(out, "</tbody>")?;
    writeln!(out, "</table>")?;
    writeln!(out, "</div>")?;
    writeln!(out, "</section>")
}

fn write_largest_row(
    out: &mut dyn Write,
    rank: usize,
    largest: &Largest,
    scale: Scale,
) -> io::Result<()> {
    let kind = largest.kind.name();
    write!(
        out,
        "<tr class=\"discrepancy\" data-kind=\"{kind}\"><td class=\"num\">{rank}</td>\
         {}{}<td class=\"key\"><code>{}</code></td><td>{kind}</td>",
        time_cell(largest.window.start),
        time_cell(largest.window.end),
        escape(&largest.key)
    )?;
    write_values(out, largest.published.as_ref(), scale)?;
    write_values(out, largest.correct.as_ref(), scale)?;
    let delta = match (&largest.published, &largest.correct) {
        (Some(p), Some(c)) => Some(Delta::between(p, c)),
        _ => None,
    };
    write_delta(out, delta.as_ref(), scale)?;
    writeln!(
        out,
        "<td class=\"num\">{}</td></tr>",
        size_text(largest.size, scale)
    )
}

/// A table cell with a time: short to read, exact in its `datetime`.
fn time_cell(ms: i64) -> String {
    let exact = format_millis(ms);
    format!(
        "<td class=\"time\"><time datetime=\"{exact}\" title=\"{exact}\">{}</time></td>",
        short_time(ms)
    )
}

/// Five cells: count, sum, min, max, mean; "—" for an absent side.
fn write_values(out: &mut dyn Write, values: Option<&Values>, scale: Scale) -> io::Result<()> {
    let Some(v) = values else {
        return write!(out, "{}", "<td class=\"absent\">—</td>".repeat(5));
    };
    let sum = v
        .sum
        .map_or_else(|| "overflow".to_owned(), |d| d.to_canonical(scale));
    let mean = v
        .mean
        .map_or_else(|| "—".to_owned(), |d| d.to_canonical(scale));
    write!(
        out,
        "<td class=\"num\">{}</td><td class=\"num\">{sum}</td><td class=\"num\">{}</td>\
         <td class=\"num\">{}</td><td class=\"num\">{mean}</td>",
        v.count,
        v.min.to_canonical(scale),
        v.max.to_canonical(scale)
    )
}

/// Five cells of correct − published, the non-zero ones marked; "—" where there is none.
fn write_delta(out: &mut dyn Write, delta: Option<&Delta>, scale: Scale) -> io::Result<()> {
    let Some(d) = delta else {
        return write!(out, "{}", "<td class=\"absent\">—</td>".repeat(5));
    };
    let cell = |text: String, nonzero: bool| {
        let class = if nonzero { "num diff" } else { "num" };
        format!("<td class=\"{class}\">{text}</td>")
    };
    let decimal = |x: Option<Decimal>| match x {
        Some(x) => cell(x.to_canonical(scale), x != Decimal::ZERO),
        None => "<td class=\"absent\">—</td>".to_owned(),
    };
    write!(
        out,
        "{}{}{}{}{}",
        cell(d.count.to_string(), d.count != 0),
        decimal(d.sum),
        decimal(d.min),
        decimal(d.max),
        decimal(d.mean)
    )
}

fn write_digests(
    out: &mut dyn Write,
    correct: &TableDigest,
    published: &TableDigest,
) -> io::Result<()> {
    writeln!(out, "<section id=\"digests\">")?;
    writeln!(out, "<h2>Table digests</h2>")?;
    writeln!(out, "<dl>")?;
    for (name, digest) in [("correct", correct), ("published", published)] {
        writeln!(
            out,
            "<dt>{name}</dt><dd><code id=\"digest-{name}\">{}</code> ({} {})</dd>",
            escape(&digest.table),
            digest.windows.len(),
            plural(digest.windows.len() as u64, "window", "windows")
        )?;
    }
    writeln!(out, "</dl>")?;
    let differing = differing_windows(correct, published);
    let n = differing.len();
    if correct.table == published.table {
        writeln!(
            out,
            "<p class=\"verdict ok\" id=\"digests-verdict\">The digests are equal: the tables \
             are identical (<span id=\"differing-windows\">{n}</span> windows differ).</p>"
        )?;
    } else {
        let only_correct = differing.iter().filter(|w| w.b.is_none()).count();
        let only_published = differing.iter().filter(|w| w.a.is_none()).count();
        writeln!(
            out,
            "<p class=\"verdict bad\" id=\"digests-verdict\">The digests differ: \
             <span id=\"differing-windows\">{n}</span> {} differ ({only_correct} only in the \
             correct table, {only_published} only in the published table, the rest in both \
             with different rows).</p>",
            plural(n as u64, "window", "windows")
        )?;
        write_differing(out, &differing)?;
    }
    writeln!(out, "</section>")
}

fn write_differing(out: &mut dyn Write, differing: &[WindowDifference]) -> io::Result<()> {
    if differing.len() > MAX_LISTED_WINDOWS {
        writeln!(
            out,
            "<p class=\"note\">The first {MAX_LISTED_WINDOWS} of them:</p>"
        )?;
    }
    writeln!(out, "<div class=\"scroll\">")?;
    writeln!(out, "<table id=\"differing\">")?;
    writeln!(
        out,
        "<thead><tr><th>window start</th><th>window end</th><th>correct digest</th>\
         <th>published digest</th></tr></thead>"
    )?;
    writeln!(out, "<tbody>")?;
    let digest = |d: &Option<String>| match d {
        Some(d) => format!("<td><code>{}</code></td>", escape(d)),
        None => "<td class=\"absent\">no rows</td>".to_owned(),
    };
    for w in differing.iter().take(MAX_LISTED_WINDOWS) {
        writeln!(
            out,
            "<tr>{}{}{}{}</tr>",
            time_cell(w.start),
            time_cell(w.end),
            digest(&w.a),
            digest(&w.b)
        )?;
    }
    writeln!(out, "</tbody>")?;
    writeln!(out, "</table>")?;
    writeln!(out, "</div>")
}

/// `singular` for 1, else `plural`.
fn plural(n: u64, singular: &'static str, plural: &'static str) -> &'static str {
    if n == 1 { singular } else { plural }
}

/// A time as a tick label: RFC 3339 UTC without the zero milliseconds and seconds, and a
/// space for the `T` (`2026-11-20 10:15Z`).
fn short_time(ms: i64) -> String {
    let full = format_millis(ms);
    let Some(time) = full.strip_suffix(".000Z") else {
        return full;
    };
    let time = time.strip_suffix(":00").unwrap_or(time);
    format!("{}Z", time.replacen('T', " ", 1))
}

/// A size in units of the scale, as the canonical text of the decimal it is.
fn size_text(units: u128, scale: Scale) -> String {
    match i128::try_from(units) {
        Ok(units) => Decimal(units).to_canonical(scale),
        // Only a sum of sizes can exceed an i128; print it the same way.
        Err(_) => unsigned_canonical(units, scale),
    }
}

/// The canonical decimal text of `units` × 10^-scale: no trailing zeros, no point for a whole
/// number.
fn unsigned_canonical(units: u128, scale: Scale) -> String {
    let digits = scale.digits();
    let unit = 10u128.pow(digits);
    let (whole, fraction) = (units / unit, units % unit);
    if fraction == 0 {
        return whole.to_string();
    }
    let fraction = format!("{fraction:0width$}", width = digits as usize);
    format!("{whole}.{}", fraction.trim_end_matches('0'))
}

/// `text` HTML-escaped, for element content and quoted attribute values.
fn escape(text: &str) -> Escaped<'_> {
    Escaped(text)
}

/// Text with `&`, `<`, `>`, `"` and `'` written as character references.
struct Escaped<'a>(&'a str);

impl Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..at])?;
            f.write_str(match rest.as_bytes()[at] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[at + 1..];
        }
        f.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amend_operators::Window;
    use amend_operators::proof::digest::{WindowDigest, digest_windows};

    const HOSTILE: &str = "<script>alert(1)</script>&\"'";

    fn summary(start: i64, counts: [u64; 4], size: u128) -> WindowSummary {
        let [matched, mismatch, missing, extra] = counts;
        WindowSummary {
            start,
            end: start + 60_000,
            counts: KindCounts {
                matched,
                mismatch,
                missing,
                extra,
            },
            size,
        }
    }

    fn values(count: u64, sum: i128) -> Values {
        Values {
            count,
            sum: Some(Decimal(sum)),
            min: Decimal(sum),
            max: Decimal(sum),
            mean: Decimal::mean(Decimal(sum), count),
        }
    }

    fn digest(windows: &[(i64, &str)]) -> TableDigest {
        digest_windows(
            windows
                .iter()
                .map(|&(start, d)| WindowDigest {
                    start,
                    end: start + 60_000,
                    digest: d.repeat(64),
                })
                .collect(),
        )
    }

    fn render(
        reconciliation: &Reconciliation,
        correct: &TableDigest,
        published: &TableDigest,
    ) -> String {
        let input = ReportInput {
            published: Path::new("published <&>.jsonl"),
            published_rows: 3,
            correct_rows: 4,
            reconciliation,
            scale: Scale::new(2).unwrap(),
            tolerance: Decimal(0),
            correct_digest: correct,
            published_digest: published,
            records_read: 10,
            records_dead_lettered: 1,
            epochs: 2,
            generated_at: "2026-11-20T10:15:00Z".to_owned(),
        };
        let mut html = Vec::new();
        write_report(&mut html, &input).unwrap();
        String::from_utf8(html).unwrap()
    }

    #[test]
    fn escape_replaces_every_markup_character() {
        assert_eq!(
            escape(HOSTILE).to_string(),
            "&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;&#39;"
        );
        assert_eq!(escape("é ü 東京").to_string(), "é ü 東京");
        assert_eq!(escape("").to_string(), "");
    }

    #[test]
    fn a_hostile_key_and_file_name_are_escaped() {
        let reconciliation = Reconciliation {
            counts: KindCounts {
                mismatch: 1,
                ..KindCounts::default()
            },
            timeline: vec![summary(0, [0, 1, 0, 0], 5)],
            largest: vec![Largest {
                window: Window {
                    start: 0,
                    end: 60_000,
                },
                key: HOSTILE.to_owned(),
                kind: Kind::Mismatch,
                published: Some(values(1, 5)),
                correct: Some(values(1, 10)),
                size: 5,
            }],
            ..Reconciliation::default()
        };
        let d = digest(&[(0, "a")]);
        let html = render(&reconciliation, &d, &d);
        assert!(!html.contains("<script"), "{html}");
        assert!(
            html.contains("<code>&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;&#39;</code>")
        );
        assert!(html.contains("published &lt;&amp;&gt;.jsonl"));
        assert_eq!(html.matches("class=\"discrepancy\"").count(), 1);
        // Published sum 0.05, correct 0.1: delta 0.05 at scale 2, marked as a difference.
        assert!(html.contains("<td class=\"num diff\">0.05</td>"), "{html}");
    }

    #[test]
    fn more_windows_than_bars_are_bucketed() {
        // 1501 windows, every third with one mismatch of size 1.
        let timeline: Vec<WindowSummary> = (0..1501)
            .map(|i| {
                let counts = if i % 3 == 0 {
                    [0, 1, 0, 0]
                } else {
                    [1, 0, 0, 0]
                };
                summary(i * 60_000, counts, u128::from(i % 3 == 0))
            })
            .collect();
        let (buckets, per) = buckets(&timeline);
        assert_eq!(per, 3);
        assert_eq!(buckets.len(), 501);
        assert!(buckets.len() <= MAX_BUCKETS);
        assert_eq!(buckets[0].windows, 3);
        assert_eq!(buckets[0].end, 3 * 60_000);
        assert_eq!(buckets[500].windows, 1);
        let total: u64 = buckets.iter().map(|b| b.counts.discrepancies()).sum();
        assert_eq!(total, 501);
        assert_eq!(buckets.iter().map(|b| b.size).sum::<u128>(), 501);
        assert_eq!(buckets.iter().map(|b| b.counts.matched).sum::<u64>(), 1000);

        let reconciliation = Reconciliation {
            counts: KindCounts {
                matched: 1000,
                mismatch: 501,
                ..KindCounts::default()
            },
            timeline,
            ..Reconciliation::default()
        };
        let d = digest(&[]);
        let html = render(&reconciliation, &d, &d);
        assert_eq!(html.matches("class=\"bar\"").count(), 501);
        assert!(html.contains("into 501 buckets of 3 consecutive windows"));
        assert!(html.contains("data-count=\"1\""));

        // Just over the limit: pairs.
        let timeline: Vec<_> = (0..601).map(|i| summary(i * 10, [0, 0, 1, 0], 1)).collect();
        let (buckets, per) = super::buckets(&timeline);
        assert_eq!((per, buckets.len()), (2, 301));
        // At the limit: one bar per window.
        let (buckets, per) = super::buckets(&timeline[..600]);
        assert_eq!((per, buckets.len()), (1, 600));
    }

    #[test]
    fn windows_are_ordered_by_start_before_bucketing() {
        let timeline = vec![
            summary(120_000, [0, 1, 0, 0], 2),
            summary(0, [0, 0, 1, 0], 3),
        ];
        let (buckets, _) = buckets(&timeline);
        assert_eq!(
            buckets.iter().map(|b| b.start).collect::<Vec<_>>(),
            [0, 120_000]
        );
    }

    #[test]
    fn an_empty_reconciliation_still_renders_every_section() {
        let d = digest(&[]);
        let html = render(&Reconciliation::default(), &d, &d);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<title>amend reconcile report</title>"));
        assert!(html.contains("<h1>amend reconcile report</h1>"));
        assert!(html.contains("id=\"summary\""));
        for kind in Kind::ALL {
            assert!(html.contains(&format!("id=\"count-{}\">0<", kind.name())));
        }
        assert!(html.contains("<svg id=\"timeline\""));
        assert!(html.contains(">no discrepancies</text>"));
        assert_eq!(html.matches("class=\"bar\"").count(), 0);
        assert_eq!(html.matches("class=\"discrepancy\"").count(), 0);
        assert!(html.contains(&format!("id=\"digest-correct\">{}<", d.table)));
        assert!(html.contains("The digests are equal"));
        assert!(html.contains("id=\"differing-windows\">0<"));
        assert!(!html.contains("<script"));
        assert!(!html.contains("http://") && !html.contains("https://"));
    }

    #[test]
    fn differing_digests_are_counted() {
        let correct = digest(&[(0, "a"), (60_000, "b")]);
        let published = digest(&[(0, "a"), (60_000, "c"), (120_000, "d")]);
        let html = render(&Reconciliation::default(), &correct, &published);
        assert!(html.contains("The digests differ"));
        assert!(html.contains("id=\"differing-windows\">2<"));
        assert!(html.contains("0 only in the correct table, 1 only in the published table"));
    }

    #[test]
    fn sizes_print_as_canonical_decimals() {
        for digits in [0, 2, 6, 18] {
            let scale = Scale::new(digits).unwrap();
            for units in [0u128, 1, 10, 105, 1_000_000, 123_456_789, i128::MAX as u128] {
                let expected = Decimal(units as i128).to_canonical(scale);
                assert_eq!(size_text(units, scale), expected);
                assert_eq!(unsigned_canonical(units, scale), expected);
            }
        }
        assert_eq!(
            size_text(u128::MAX, Scale::new(2).unwrap()),
            "3402823669209384634633746074317682114.55"
        );
    }

    #[test]
    fn tick_labels_are_short_utc() {
        assert_eq!(short_time(0), "1970-01-01 00:00Z");
        assert_eq!(short_time(30_000), "1970-01-01 00:00:30Z");
        assert_eq!(short_time(1), "1970-01-01T00:00:00.001Z");
    }
}
