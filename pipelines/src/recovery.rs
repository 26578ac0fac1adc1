//! Replay slices and audit-log recovery, shared by every pipeline (docs/design/0004).
//!
//! [`Recovery`] (the engine's) is the validated form of [`RecoveryArgs`]: the replay [`Slice`] (the library's
//! reader keeps, for each line, only those in the byte-offset slice and, for each decoded
//! record, only those in the time slice; a record outside either is *skipped*: counted as
//! `records_skipped`, neither fed to the dataflow nor dead-lettered, so that records read =
//! accepted + dead-lettered + skipped), and the audit logs, planned after all other inputs
//! ([`crate::engine::plan::Planner::with_audit_logs`]) and decoded by their format.

use amend_operators::ingest::audit::{AuditFormat, AuditPattern};
use amend_operators::ingest::read::Slice;
use amend_operators::ingest::source::InputFile;
use amend_operators::time::{self, Millis};

use crate::UsageError;
use crate::cli::{AuditFormatArg, RecoveryArgs};
use crate::engine::Recovery;

impl Recovery {
    /// Validates the flags; audit logs must exist unless `check_files` is false (--explain).
    pub fn from_args(args: &RecoveryArgs, check_files: bool) -> anyhow::Result<Recovery> {
        let usage = |text: String| anyhow::Error::new(UsageError(text));
        let from_time = args
            .from_time
            .as_deref()
            .map(|t| parse_time("--from-time", t))
            .transpose()?;
        let to_time = args
            .to_time
            .as_deref()
            .map(|t| parse_time("--to-time", t))
            .transpose()?;
        if let (Some(from), Some(to)) = (from_time, to_time)
            && from >= to
        {
            return Err(usage(format!(
                "--from-time {} is not before --to-time {}: the slice [from, to) would be empty",
                args.from_time.as_deref().unwrap_or_default(),
                args.to_time.as_deref().unwrap_or_default()
            )));
        }
        if let (Some(from), Some(to)) = (args.from_offset, args.to_offset)
            && from >= to
        {
            return Err(usage(format!(
                "--from-offset {from} is not below --to-offset {to}: the slice [from, to) would be empty"
            )));
        }
        let audit_format = match (&args.audit_pattern, args.audit_format, &args.audit_path) {
            (Some(_), Some(_), _) => {
                return Err(usage(
                    "--audit-pattern and --audit-format are alternatives; give one".into(),
                ));
            }
            (Some(_), None, Some(_)) => {
                return Err(usage(
                    "--audit-path goes with --audit-format jsonl, not with --audit-pattern".into(),
                ));
            }
            (None, None, Some(_)) => {
                return Err(usage("--audit-path needs --audit-format jsonl".into()));
            }
            (Some(pattern), None, None) => Some(AuditFormat::Pattern(
                AuditPattern::new(pattern).map_err(|e| usage(format!("--audit-pattern: {e}")))?,
            )),
            (None, Some(AuditFormatArg::Jsonl), path) => Some(
                AuditFormat::json(path.as_deref().unwrap_or_default())
                    .map_err(|e| usage(format!("--audit-path {e}")))?,
            ),
            (None, None, None) => None,
        };
        match (&audit_format, args.audit_log.is_empty()) {
            (None, false) => {
                return Err(usage(
                    "--audit-log needs --audit-pattern REGEX or --audit-format jsonl to read it"
                        .into(),
                ));
            }
            (Some(_), true) => {
                return Err(usage(
                    "--audit-pattern and --audit-format need --audit-log FILE".into(),
                ));
            }
            _ => {}
        }
        if check_files {
            for path in &args.audit_log {
                InputFile::open_audit(path, 0)?;
            }
        }
        Ok(Recovery {
            slice: Slice {
                from_time,
                to_time,
                from_offset: args.from_offset,
                to_offset: args.to_offset,
            },
            audit_logs: args.audit_log.clone(),
            audit_format,
        })
    }
}

/// An event time given as RFC 3339 or integer epoch milliseconds.
fn parse_time(flag: &str, text: &str) -> anyhow::Result<Millis> {
    let parsed = match text.parse::<i64>() {
        Ok(ms) => time::check_millis(ms),
        Err(_) => time::parse_rfc3339(text),
    };
    parsed.map_err(|e| {
        anyhow::Error::new(UsageError(format!(
            "{flag} {text}: {e} (give an RFC 3339 time with offset, or epoch milliseconds)"
        )))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recovery(args: RecoveryArgs) -> Result<Recovery, String> {
        Recovery::from_args(&args, false).map_err(|e| e.to_string())
    }

    #[test]
    fn slices_are_half_open() {
        let r = recovery(RecoveryArgs {
            from_time: Some("2026-11-20T10:00:00Z".into()),
            to_time: Some("1795168860000".into()),
            ..RecoveryArgs::default()
        })
        .unwrap();
        assert_eq!(
            (r.slice.from_time, r.slice.to_time),
            (Some(1_795_168_800_000), Some(1_795_168_860_000))
        );
        assert!(r.slice.admits_time(1_795_168_800_000));
        assert!(!r.slice.admits_time(1_795_168_799_999));
        assert!(!r.slice.admits_time(1_795_168_860_000));
    }

    #[test]
    fn bad_combinations_are_usage_errors() {
        let cases = [
            (
                RecoveryArgs {
                    from_time: Some("yesterday".into()),
                    ..RecoveryArgs::default()
                },
                "--from-time yesterday",
            ),
            (
                RecoveryArgs {
                    from_offset: Some(5),
                    to_offset: Some(5),
                    ..RecoveryArgs::default()
                },
                "--from-offset 5 is not below --to-offset 5",
            ),
            (
                RecoveryArgs {
                    audit_log: vec!["app.log".into()],
                    ..RecoveryArgs::default()
                },
                "--audit-log needs --audit-pattern",
            ),
            (
                RecoveryArgs {
                    audit_log: vec!["app.log".into()],
                    audit_pattern: Some(r"(?P<id>\S+) (?P<key>\S+) (?P<value>\S+)".into()),
                    ..RecoveryArgs::default()
                },
                "no named group `ts`",
            ),
            (
                RecoveryArgs {
                    audit_pattern: Some(r"(?P<id>.)(?P<key>.)(?P<ts>.)(?P<value>.)".into()),
                    ..RecoveryArgs::default()
                },
                "need --audit-log",
            ),
            (
                RecoveryArgs {
                    audit_log: vec!["app.log".into()],
                    audit_path: Some("payload".into()),
                    ..RecoveryArgs::default()
                },
                "--audit-path needs --audit-format jsonl",
            ),
        ];
        for (args, expected) in cases {
            let got = recovery(args).unwrap_err();
            assert!(got.contains(expected), "expected {expected}, got {got}");
        }
    }
}
