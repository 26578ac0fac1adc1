//! The reconcile report in a real browser: headless Chromium loads the HTML from a file, and
//! the DOM it builds (and a screenshot it takes) show the counts, one bar per window with
//! discrepancies, one row per largest discrepancy, the digests, and keys escaped as text.
//!
//! Needs Chromium at `/usr/bin/chromium` (`apt-get install chromium`); without it the tests
//! fail, they never pass silently. Run them with `cargo test -p amend --test report`.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use amend::report::{ReportInput, write_report};
use amend_operators::proof::digest::{TableDigest, digest_table};
use amend_operators::proof::reconcile::{ReconcileOutputs, Reconciler, Reconciliation};
use amend_operators::proof::snapshot::{SnapshotRow, SnapshotRows};
use amend_operators::{Agg, Decimal, Scale, Window};
use compact_str::CompactString;

const CHROMIUM: &str = "/usr/bin/chromium";

/// Longest a Chromium run may take before it is killed and the test fails.
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs headless Chromium on the file `html` with `extra` arguments, in a fresh profile, with
/// stdout to `stdout` and stderr (where Chromium is noisy) discarded. Kills it and fails after
/// [`CHROMIUM_TIMEOUT`].
fn run_chromium(html: &Path, extra: &[String], stdout: File) -> ExitStatus {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} not found: the report tests need Chromium \
         (install it with `apt-get install chromium`)"
    );
    let profile = tempfile::tempdir().expect("cannot create a Chromium profile directory");
    let html = fs::canonicalize(html).unwrap_or_else(|e| panic!("{}: {e}", html.display()));
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", html.display()))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {CHROMIUM}: {e}"));
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("cannot wait for Chromium") {
            return status;
        }
        if started.elapsed() > CHROMIUM_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("Chromium did not finish within {CHROMIUM_TIMEOUT:?} on {html:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The DOM headless Chromium builds from the file `html`, serialized (`--dump-dom`).
fn chromium_dom(html: &Path) -> String {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("dom.html");
    let status = run_chromium(
        html,
        &["--dump-dom".to_owned()],
        File::create(&dump).unwrap(),
    );
    assert!(status.success(), "chromium --dump-dom failed: {status}");
    let dom = fs::read_to_string(&dump).unwrap();
    assert!(
        !dom.trim().is_empty(),
        "chromium --dump-dom printed nothing"
    );
    dom
}

/// Has headless Chromium take a 1280×2000 screenshot of the file `html` into `png`.
fn chromium_screenshot(html: &Path, png: &Path) {
    let extra = [
        format!("--screenshot={}", png.display()),
        "--window-size=1280,2000".to_owned(),
        "--hide-scrollbars".to_owned(),
    ];
    let dir = tempfile::tempdir().unwrap();
    let stdout = File::create(dir.path().join("stdout")).unwrap();
    let status = run_chromium(html, &extra, stdout);
    assert!(status.success(), "chromium --screenshot failed: {status}");
}

const HOSTILE: &str = "<script>alert(1)</script>&\"'";
const AMPERSANDS: &str = "a <&> b";
const MINUTE: i64 = 60_000;
/// 2026-11-20T10:00:00Z.
const T0: i64 = 1_795_168_800_000;

fn agg(count: u64, sum: i128, min: i128, max: i128) -> Agg {
    Agg {
        count,
        sum: Some(Decimal(sum)),
        min: Decimal(min),
        max: Decimal(max),
    }
}

fn row(minute: i64, key: &str) -> (Window, CompactString) {
    let start = T0 + minute * MINUTE;
    (
        Window {
            start,
            end: start + MINUTE,
        },
        key.into(),
    )
}

/// A small comparison of two tables over four windows: a match and a mismatch (a key with
/// `<&>`) in the first, two missing rows (one the hostile key) in the second, only a match in
/// the third, an extra row in the fourth.
struct Case {
    reconciliation: Reconciliation,
    published_rows: u64,
    correct_rows: u64,
    correct: TableDigest,
    published: TableDigest,
    scale: Scale,
}

fn case() -> Case {
    let scale = Scale::new(2).unwrap();
    let correct: BTreeMap<(Window, CompactString), Agg> = [
        (row(0, "a"), agg(2, 300, 100, 200)),
        (row(0, AMPERSANDS), agg(3, 1250, 50, 900)),
        (row(1, "b"), agg(1, 700, 700, 700)),
        (row(1, HOSTILE), agg(1, -5, -5, -5)),
        (row(2, "c"), agg(1, 1, 1, 1)),
    ]
    .into_iter()
    .collect();
    let published_tables: BTreeMap<(Window, CompactString), Agg> = [
        (row(0, "a"), agg(2, 300, 100, 200)),
        (row(0, AMPERSANDS), agg(2, 1000, 50, 900)),
        (row(2, "c"), agg(1, 1, 1, 1)),
        (row(3, "d"), agg(4, 40, 10, 10)),
    ]
    .into_iter()
    .collect();
    let published: SnapshotRows = published_tables
        .iter()
        .enumerate()
        .map(|(i, (row, agg))| {
            let value = SnapshotRow {
                agg: *agg,
                mean: None,
                line: i as u64 + 1,
            };
            (row.clone(), value)
        })
        .collect();
    let reconciler = Reconciler::new(published, Decimal(0), scale);
    let (mut d, mut c, mut u) = (Vec::new(), Vec::new(), Vec::new());
    let reconciliation = reconciler
        .write(
            &correct,
            0,
            10,
            ReconcileOutputs {
                discrepancies: &mut d,
                corrections: &mut c,
                upserts: &mut u,
            },
        )
        .unwrap();
    Case {
        reconciliation,
        published_rows: published_tables.len() as u64,
        correct_rows: correct.len() as u64,
        correct: digest_table(&correct, scale),
        published: digest_table(&published_tables, scale),
        scale,
    }
}

/// Writes the report of `case` to `dir/report.html` and returns its path.
fn write_case(case: &Case, dir: &Path) -> std::path::PathBuf {
    let input = ReportInput {
        published: Path::new("published <&>.jsonl"),
        published_rows: case.published_rows,
        correct_rows: case.correct_rows,
        reconciliation: &case.reconciliation,
        scale: case.scale,
        tolerance: Decimal(0),
        correct_digest: &case.correct,
        published_digest: &case.published,
        records_read: 12,
        records_dead_lettered: 2,
        epochs: 3,
        generated_at: "2026-11-21T08:00:00Z".to_owned(),
    };
    let path = dir.join("report.html");
    let mut file = std::io::BufWriter::new(File::create(&path).unwrap());
    write_report(&mut file, &input).unwrap();
    drop(file);
    path
}

/// The values of every `attribute="..."` in `dom`, in order.
fn attribute_values<'a>(dom: &'a str, attribute: &str) -> Vec<&'a str> {
    let needle = format!("{attribute}=\"");
    dom.match_indices(&needle)
        .map(|(at, _)| {
            let rest = &dom[at + needle.len()..];
            &rest[..rest.find('"').expect("unterminated attribute")]
        })
        .collect()
}

#[test]
fn chromium_renders_the_report_with_counts_bars_rows_and_digests() {
    let case = case();
    let counts = &case.reconciliation.counts;
    assert_eq!(
        (
            counts.matched,
            counts.mismatch,
            counts.missing,
            counts.extra
        ),
        (2, 1, 2, 1),
        "the hand-built case is not what the assertions below expect"
    );
    let dir = tempfile::tempdir().unwrap();
    let html = write_case(&case, dir.path());
    let dom = chromium_dom(&html);

    for (kind, n) in [("match", 2), ("mismatch", 1), ("missing", 2), ("extra", 1)] {
        let cell = format!("id=\"count-{kind}\">{n}<");
        assert!(dom.contains(&cell), "no `{cell}` in the DOM:\n{dom}");
    }
    assert!(dom.contains("<title>amend reconcile report</title>"));
    assert!(dom.contains("<h1>amend reconcile report</h1>"));
    assert!(dom.contains("id=\"summary\""));
    assert!(dom.contains("id=\"rows-published\">4<"));
    assert!(dom.contains("id=\"rows-correct\">5<"));
    assert!(dom.contains("id=\"records-read\">12<"));
    assert!(dom.contains("id=\"epochs\">3<"));

    // One bar per window with a discrepancy (the first, second and fourth), in window order.
    assert!(dom.contains("<svg id=\"timeline\""));
    assert_eq!(dom.matches("class=\"bar\"").count(), 3, "{dom}");
    assert_eq!(
        attribute_values(&dom, "data-start"),
        [
            "2026-11-20T10:00:00.000Z",
            "2026-11-20T10:01:00.000Z",
            "2026-11-20T10:03:00.000Z"
        ]
    );
    assert_eq!(attribute_values(&dom, "data-count"), ["1", "2", "1"]);

    // One row per largest discrepancy.
    assert_eq!(case.reconciliation.largest.len(), 4);
    assert_eq!(dom.matches("class=\"discrepancy\"").count(), 4, "{dom}");
    assert!(dom.contains("id=\"largest\""));

    // Keys are text: the hostile key made no element, and reads back as written.
    assert!(
        !dom.to_ascii_lowercase().contains("<script"),
        "a <script> element in the DOM:\n{dom}"
    );
    assert!(
        dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;&amp;\"'"),
        "{dom}"
    );
    assert!(dom.contains("a &lt;&amp;&gt; b"));
    assert!(dom.contains("published &lt;&amp;&gt;.jsonl"));

    // The digests, and the windows they differ in: the second (missing rows), the first
    // (a mismatch) and the fourth (an extra row).
    assert_ne!(case.correct.table, case.published.table);
    assert!(dom.contains(&format!("id=\"digest-correct\">{}<", case.correct.table)));
    assert!(dom.contains(&format!(
        "id=\"digest-published\">{}<",
        case.published.table
    )));
    assert!(dom.contains("The digests differ"));
    assert!(dom.contains("id=\"differing-windows\">3<"), "{dom}");
}

#[test]
fn chromium_screenshots_the_report() {
    let case = case();
    let dir = tempfile::tempdir().unwrap();
    let html = write_case(&case, dir.path());
    let png = dir.path().join("report.png");
    chromium_screenshot(&html, &png);
    let bytes = fs::read(&png).unwrap_or_else(|e| panic!("no screenshot at {png:?}: {e}"));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "the screenshot is not a PNG"
    );
    assert!(
        bytes.len() > 10 * 1024,
        "the screenshot is only {} bytes: the page looks blank",
        bytes.len()
    );
}

/// `amend reconcile` on the bundled example: the report.html it writes, rendered by
/// Chromium, shows reconcile_summary.json's counts and digests, a bar for each window with a
/// discrepancy, and a row for each discrepancy.
#[test]
fn chromium_renders_the_report_amend_reconcile_writes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let data = root.join("examples/data");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rec");
    let status = Command::new(env!("CARGO_BIN_EXE_amend"))
        .arg("reconcile")
        .arg("--input")
        .arg(data.join("events.jsonl"))
        .arg("--corrections")
        .arg(data.join("corrections.jsonl"))
        .arg("--published")
        .arg(data.join("published.csv"))
        .args(["--window", "tumbling:1m", "--quiet", "--out"])
        .arg(&out)
        .args([
            "--published-key-field",
            "store",
            "--published-count-field",
            "orders",
        ])
        .args([
            "--published-sum-field",
            "revenue",
            "--published-min-field",
            "smallest",
        ])
        .args([
            "--published-max-field",
            "largest",
            "--published-mean-field",
            "average",
        ])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(1), "discrepancies exit 1");
    let summary: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("reconcile_summary.json")).unwrap())
            .unwrap();
    let dom = chromium_dom(&out.join("report.html"));
    for kind in ["match", "mismatch", "missing", "extra"] {
        let cell = format!("id=\"count-{kind}\">{}<", summary["kinds"][kind]);
        assert!(dom.contains(&cell), "no `{cell}` in the DOM:\n{dom}");
    }
    for (id, field) in [
        ("digest-correct", "correct_digest"),
        ("digest-published", "published_digest"),
    ] {
        let cell = format!("id=\"{id}\">{}<", summary[field].as_str().unwrap());
        assert!(dom.contains(&cell), "no `{cell}` in the DOM");
    }
    // The discrepancies, by window, as reconcile.jsonl has them.
    let lines = fs::read_to_string(out.join("reconcile.jsonl")).unwrap();
    let mut by_window: BTreeMap<String, u64> = BTreeMap::new();
    for line in lines.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["kind"] != "match" {
            *by_window
                .entry(v["window_start"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    assert_eq!(
        attribute_values(&dom, "data-start"),
        by_window.keys().map(String::as_str).collect::<Vec<_>>()
    );
    let counts: Vec<String> = by_window.values().map(u64::to_string).collect();
    assert_eq!(attribute_values(&dom, "data-count"), counts);
    let discrepancies = summary["discrepancies"].as_u64().unwrap() as usize;
    assert_eq!(dom.matches("class=\"discrepancy\"").count(), discrepancies);
    let png = dir.path().join("report.png");
    chromium_screenshot(&out.join("report.html"), &png);
    assert!(fs::metadata(&png).unwrap().len() > 10 * 1024);
}
