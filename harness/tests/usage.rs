//! Usage errors of `dcf-harness test` are found while the command line is
//! parsed: exit status 64, one line on stderr naming the option and the
//! value, and nothing created: no run folder, no report, no store.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const HARNESS: &str = env!("CARGO_BIN_EXE_dcf-harness");

/// Every path under `dir`, sorted.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                todo.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

fn run(cwd: &Path, args: &[&str]) -> Output {
    Command::new(HARNESS)
        .current_dir(cwd)
        .arg("test")
        .args(args)
        .output()
        .unwrap()
}

/// The three errors of the issue, and an unknown planted bug, each one
/// line with the offending value.
const BAD: [(&str, &str, &str); 4] = [
    ("--workload", "foo", "unknown workload \"foo\""),
    ("--nemesis", "bogus", "unknown fault \"bogus\""),
    ("--nodes", "0", "0 is not in 1..=32"),
    ("--planted-bug", "bogus", "unknown planted bug \"bogus\""),
];

fn assert_usage_error(out: &Output, option: &str, value: &str, why: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{option} {value}: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{option} {value}: one line, got {stderr:?}");
    assert!(
        lines[0].contains(&format!("'{value}'")) && lines[0].contains(option),
        "{option} {value}: {stderr}"
    );
    assert!(lines[0].contains(why), "{option} {value}: {stderr}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// With `--store` naming a store that already holds a run, the store is
/// left exactly as it was.
#[test]
fn bad_options_exit_64_and_leave_the_store_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let earlier = store.join("register-kill").join("20260101T000000.000Z");
    std::fs::create_dir_all(&earlier).unwrap();
    std::fs::write(earlier.join("test.json"), "{}").unwrap();
    let before = tree(dir.path());
    for (option, value, why) in BAD {
        let out = run(
            dir.path(),
            &["--store", store.to_str().unwrap(), option, value],
        );
        assert_usage_error(&out, option, value, why);
        assert_eq!(
            tree(dir.path()),
            before,
            "{option} {value} created something"
        );
    }
}

/// Without `--store`, the default store (`./store`) is not even created.
#[test]
fn bad_options_create_no_default_store() {
    let dir = tempfile::tempdir().unwrap();
    for (option, value, why) in BAD {
        let out = run(dir.path(), &[option, value]);
        assert_usage_error(&out, option, value, why);
        assert_eq!(tree(dir.path()), Vec::<PathBuf>::new(), "{option} {value}");
    }
}

/// Help is not an error, and lists the registered choices.
#[test]
fn help_lists_the_registered_workloads_faults_and_deployments() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for name in [
        "register",
        "list-append",
        "partition",
        "compact",
        "loopback",
    ] {
        assert!(help.contains(name), "{name} missing from:\n{help}");
    }
    assert_eq!(tree(dir.path()), Vec::<PathBuf>::new());
}
