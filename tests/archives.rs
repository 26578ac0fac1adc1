//! `--input DIR`: a directory of archived event files replays as one epoch per file, in name
//! order, recursively, with plain, CSV and gzip files alike.

#[allow(dead_code)]
#[path = "e2e/util.rs"]
mod util;

use util::TestDir;

const A: &str = concat!(
    r#"{"id":"1","key":"k","ts":"2026-11-20T10:00:01Z","value":1}"#,
    "\n",
    r#"{"id":"2","key":"k","ts":"2026-11-20T10:01:01Z","value":2}"#,
    "\n"
);
const B: &str =
    "id,key,ts,value,version\n1,k,2026-11-20T10:00:01Z,10,1\n3,j,2026-11-20T10:00:02Z,3,0\n";
const C: &str = concat!(
    r#"{"id":"2","key":"k","ts":"2026-11-20T10:01:01Z","value":20,"version":1}"#,
    "\n",
    "not json\n"
);

fn aggregate(dir: &TestDir, inputs: &[&str], out: &str) -> serde_json::Value {
    let mut args = vec!["aggregate", "--input"];
    args.extend(inputs);
    args.extend(["--window", "tumbling:1m", "--out", out, "--quiet"]);
    dir.run(&args).expect_success();
    serde_json::from_str(&dir.read(format!("{out}/summary.json"))).unwrap()
}

#[test]
fn a_directory_is_its_files_in_name_order_one_epoch_each() {
    let dir = TestDir::new();
    dir.create("archive/2026-11-20/a.jsonl", A);
    dir.create("archive/2026-11-20/b.csv", B);
    dir.create("plain-c.jsonl", C);
    dir.create("archive/notes.txt", "not an input\n");
    dir.create("archive/.c.jsonl.tmp", "{\"half\":\n");
    std::fs::create_dir_all(dir.join("archive/2026-11-21")).unwrap();
    let Some(_) = dir.gzip("plain-c.jsonl", "archive/2026-11-21/c.jsonl.gz") else {
        return; // no gzip on this machine
    };
    let from_dir = aggregate(&dir, &["archive"], "from-dir");
    let files = [
        "archive/2026-11-20/a.jsonl",
        "archive/2026-11-20/b.csv",
        "archive/2026-11-21/c.jsonl.gz",
    ];
    let from_files = aggregate(&dir, &files, "from-files");
    assert_eq!(from_dir["epochs"], 3, "{from_dir}");
    assert_eq!(from_dir["table_digest"], from_files["table_digest"]);
    assert_eq!(from_dir["records_read"], 6, "{from_dir}");
    assert_eq!(from_dir["records_dead_lettered"], 1, "{from_dir}");
    for file in ["snapshot.jsonl", "changelog.jsonl", "digests.json"] {
        assert_eq!(
            dir.read(format!("from-dir/{file}")),
            dir.read(format!("from-files/{file}")),
            "{file}"
        );
    }
    let epochs = dir.read("from-dir/epochs.jsonl");
    let sources: Vec<String> = epochs
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["source"].to_string())
        .collect();
    assert_eq!(
        sources,
        [
            "\"archive/2026-11-20/a.jsonl\"",
            "\"archive/2026-11-20/b.csv\"",
            "\"archive/2026-11-21/c.jsonl.gz\""
        ]
    );
    // The corrections in the later files won: id 1 at version 1, id 2 at version 1.
    let snapshot = dir.read("from-dir/snapshot.jsonl");
    assert!(
        snapshot.contains(r#""key":"k","count":1,"sum":"10""#),
        "{snapshot}"
    );
    assert!(
        snapshot.contains(r#""key":"k","count":1,"sum":"20""#),
        "{snapshot}"
    );
    let dead = dir.read("from-dir/dead_letter.jsonl");
    assert!(
        dead.contains("archive/2026-11-21/c.jsonl.gz") && dead.contains("\"line\":2"),
        "{dead}"
    );
}

#[test]
fn an_empty_directory_is_no_epochs() {
    let dir = TestDir::new();
    dir.create("events.jsonl", A);
    std::fs::create_dir(dir.join("empty")).unwrap();
    let summary = aggregate(&dir, &["events.jsonl", "empty"], "out");
    assert_eq!(summary["epochs"], 1, "{summary}");
}
