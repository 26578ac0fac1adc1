//! The harness of the end-to-end tests: a temporary directory to write inputs into, the real
//! `amend` binary run in it, its captured output, and readable diffs on failure.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The `amend` binary Cargo built for this test.
pub const AMEND: &str = env!("CARGO_BIN_EXE_amend");

/// A temporary directory, removed when dropped. `amend` runs with it as working directory, so
/// relative paths in arguments (and in dead letters) are relative to it.
pub struct TestDir {
    dir: tempfile::TempDir,
}

impl TestDir {
    /// A fresh, empty directory.
    pub fn new() -> TestDir {
        let dir = tempfile::Builder::new()
            .prefix("amend-e2e-")
            .tempdir()
            .expect("cannot create a temporary directory");
        TestDir { dir }
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `name` inside the directory.
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path().join(name)
    }

    /// Writes `contents` to `name` (parent directories created), and returns its path.
    pub fn create(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(&path, contents).unwrap_or_else(|e| panic!("cannot write {path:?}: {e}"));
        path
    }

    /// Writes the gzip compression of file `from` to `to` with the system `gzip` command, and
    /// returns its path; `None` (with a note on stderr) if `gzip` is not installed.
    pub fn gzip(&self, from: &str, to: &str) -> Option<PathBuf> {
        let out = self.join(to);
        let result = Command::new("gzip")
            .args(["-c", "-n"])
            .arg(self.join(from))
            .stdout(fs::File::create(&out).unwrap())
            .status();
        match result {
            Ok(status) => {
                assert!(status.success(), "gzip -c {from} failed: {status}");
                Some(out)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!("note: the `gzip` command is not installed; skipping the gzip check");
                None
            }
            Err(e) => panic!("cannot run gzip: {e}"),
        }
    }

    /// Reads `name` as text.
    pub fn read(&self, name: impl AsRef<Path>) -> String {
        read_text(&self.join(name))
    }

    /// A command running `amend args...` in this directory.
    pub fn command<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Command {
        amend_in(self.path(), args)
    }

    /// Runs `amend args...` in this directory and captures what it did.
    pub fn run<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Run {
        Run::of(self.command(args))
    }
}

/// A command running `amend args...` with `dir` as working directory; stdin is empty and
/// stdout/stderr are pipes, never a terminal.
pub fn amend_in<S: AsRef<std::ffi::OsStr>>(dir: &Path, args: &[S]) -> Command {
    let mut cmd = Command::new(AMEND);
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// What one run of `amend` did.
pub struct Run {
    /// The command line, for messages.
    pub command: String,
    /// The exit code; `None` if killed by a signal.
    pub code: Option<i32>,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl Run {
    /// Runs `cmd` to completion.
    pub fn of(mut cmd: Command) -> Run {
        let command = describe(&cmd);
        let Output {
            status,
            stdout,
            stderr,
        } = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {command}: {e}"));
        Run {
            command,
            code: status.code(),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    /// Panics, showing the run, unless it exited with `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Run {
        if self.code != Some(code) {
            panic!("expected exit code {code}\n{self}");
        }
        self
    }

    /// Panics unless the run succeeded with an empty stderr.
    #[track_caller]
    pub fn expect_success(&self) -> &Run {
        self.expect_code(0);
        if !self.stderr.is_empty() {
            panic!("expected an empty stderr from a successful run\n{self}");
        }
        self
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "command: {}", self.command)?;
        writeln!(f, "exit code: {:?}", self.code)?;
        writeln!(f, "--- stdout ---\n{}", self.stdout)?;
        write!(f, "--- stderr ---\n{}", self.stderr)
    }
}

/// The command line of `cmd`, shell-like, with its working directory.
fn describe(cmd: &Command) -> String {
    let mut text = String::new();
    if let Some(dir) = cmd.get_current_dir() {
        let _ = write!(text, "(cd {} && ", dir.display());
    }
    text.push_str("amend");
    for arg in cmd.get_args() {
        let arg = arg.to_string_lossy();
        if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || c == '\'') {
            let _ = write!(text, " '{}'", arg.replace('\'', r"'\''"));
        } else {
            let _ = write!(text, " {arg}");
        }
    }
    if cmd.get_current_dir().is_some() {
        text.push(')');
    }
    text
}

/// Reads a file as text, panicking with its path if it cannot.
pub fn read_text(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// `None` if the texts are equal, else a readable line diff of `expected` and `got`.
pub fn diff(expected: &str, got: &str) -> Option<String> {
    if expected == got {
        return None;
    }
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = got.lines().collect();
    let mut out = String::from("--- expected\n+++ got\n");
    if a == b {
        // Only line terminators differ.
        let _ = writeln!(
            out,
            "  (same lines; the line endings or the final newline differ: expected {:?}, got {:?})",
            tail(expected),
            tail(got)
        );
        return Some(out);
    }
    // Trim the common head and tail, then an LCS diff of the middle (files here are small; a
    // big middle is shown as a replacement).
    let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let tail_len = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (mid_a, mid_b) = (&a[head..a.len() - tail_len], &b[head..b.len() - tail_len]);
    if head > 0 {
        let _ = writeln!(
            out,
            "@@ {head} equal line(s) before, first differing line {}",
            head + 1
        );
    }
    for line in &a[head.saturating_sub(2)..head] {
        let _ = writeln!(out, "  {line}");
    }
    if mid_a.len() * mid_b.len() <= 4_000_000 {
        for (tag, line) in lcs_diff(mid_a, mid_b) {
            let _ = writeln!(out, "{tag} {line}");
        }
    } else {
        for line in mid_a {
            let _ = writeln!(out, "- {line}");
        }
        for line in mid_b {
            let _ = writeln!(out, "+ {line}");
        }
    }
    let after = &a[a.len() - tail_len..];
    for line in after.iter().take(2) {
        let _ = writeln!(out, "  {line}");
    }
    Some(out)
}

fn tail(text: &str) -> &str {
    &text[text.len().saturating_sub(2)..]
}

/// An edit script from `a` to `b`: ' ', '-' or '+' and the line.
fn lcs_diff<'t>(a: &[&'t str], b: &[&'t str]) -> Vec<(char, &'t str)> {
    let (n, m) = (a.len(), b.len());
    // lengths[i][j]: LCS length of a[i..] and b[j..].
    let mut lengths = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lengths[i][j] = if a[i] == b[j] {
                lengths[i + 1][j + 1] + 1
            } else {
                lengths[i + 1][j].max(lengths[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut script) = (0, 0, Vec::new());
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            script.push((' ', a[i]));
            (i, j) = (i + 1, j + 1);
        } else if i < n && (j == m || lengths[i + 1][j] >= lengths[i][j + 1]) {
            script.push(('-', a[i]));
            i += 1;
        } else {
            script.push(('+', b[j]));
            j += 1;
        }
    }
    script
}

/// Panics with a diff unless file `name` has the same text in directories `expected` and `got`.
#[track_caller]
pub fn assert_same_file(name: &str, expected: &Path, got: &Path) {
    let (e, g) = (read_text(&expected.join(name)), read_text(&got.join(name)));
    if let Some(diff) = diff(&e, &g) {
        panic!(
            "{name} differs between {} and {}:\n{diff}",
            expected.display(),
            got.display()
        );
    }
}

#[test]
fn diffs_show_removed_lines_before_added_ones() {
    assert_eq!(diff("a\nb\n", "a\nb\n"), None);
    let text = diff("a\nb\nc\n", "a\nB\nc\nd\n").unwrap();
    assert!(text.contains("- b\n+ B\n  c\n+ d\n"), "{text}");
    let text = diff("a\n", "a").unwrap();
    assert!(
        text.contains("line endings or the final newline differ"),
        "{text}"
    );
}
