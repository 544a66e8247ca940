//! Every history of the shared corpus must get the verdict its authors
//! published (`expected.tsv`), and the key-value histories checked without
//! splitting by key must end in `unknown` under a short limit, not a crash.

use std::path::{Path, PathBuf};
use std::time::Duration;

use checker::{check_history, formats, CheckOptions, Checker, ModelKind, Validity};

fn corpus() -> PathBuf {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus"));
    assert!(
        dir.join("README.md").is_file(),
        "the shared corpus is missing at {} — it is required by this test",
        dir.display()
    );
    dir.to_path_buf()
}

fn expected(dir: &Path) -> Vec<(PathBuf, Validity)> {
    let tsv = std::fs::read_to_string(dir.join("expected.tsv"))
        .unwrap_or_else(|e| panic!("cannot read {}/expected.tsv: {e}", dir.display()));
    tsv.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (file, verdict) = l.split_once('\t').expect("tab-separated line");
            let v = match verdict.trim() {
                "linearizable" => Validity::Valid,
                "not-linearizable" => Validity::Invalid,
                other => panic!("unknown verdict {other}"),
            };
            (dir.join(file), v)
        })
        .collect()
}

fn check_all(sub: &str, options: &CheckOptions, count: usize) {
    let dir = corpus().join(sub);
    let cases = expected(&dir);
    assert_eq!(
        cases.len(),
        count,
        "expected.tsv of {sub} lists {} files",
        cases.len()
    );
    let mut wrong = Vec::new();
    for (path, want) in &cases {
        let history =
            formats::read_file(path, None).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let got =
            check_history(&history, options).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if got.valid != *want {
            wrong.push(format!(
                "{}: expected {want:?}, got {:?}",
                path.display(),
                got.valid
            ));
        }
        if got.valid == Validity::Invalid {
            let e = got
                .explanation
                .as_ref()
                .expect("an invalid history is explained");
            assert!(e
                .window
                .iter()
                .any(|o| o.invoke_index == e.failing_op.invoke_index));
            let html = e.to_html();
            assert!(
                html.contains("<svg") && html.contains("#c00"),
                "the failing op is drawn"
            );
            assert!(e.to_text().contains("cannot be linearized"));
        }
        // Exported to Jepsen EDN and read back with the original meaning of
        // failures (`--semantics`), the verdict is the same.
        let edn = formats::parse(&formats::to_edn(&history), Some(formats::Format::JepsenEdn))
            .unwrap_or_else(|e| panic!("{}: re-import: {e}", path.display()));
        let same_meaning = CheckOptions {
            semantics: Some(history.semantics),
            ..options.clone()
        };
        let again = check_history(&edn, &same_meaning).unwrap();
        assert_eq!(
            again.valid,
            got.valid,
            "{} after EDN round trip",
            path.display()
        );
        // Under Jepsen's contract a failure observes nothing, so it can
        // only drop constraints: a valid history stays valid.
        if got.valid == Validity::Valid {
            let jepsen = check_history(&edn, options).unwrap();
            assert_eq!(
                jepsen.valid,
                Validity::Valid,
                "{} as Jepsen EDN",
                path.display()
            );
        }
    }
    assert!(wrong.is_empty(), "disagreements:\n{}", wrong.join("\n"));
}

#[test]
fn jepsen_etcd_logs_agree_with_expected() {
    let options = CheckOptions {
        checker: Some(Checker::Linearizable(ModelKind::CasRegister)),
        ..CheckOptions::default()
    };
    check_all("jepsen-etcd", &options, 102);
}

#[test]
fn etcd_logs_are_detected_as_cas_register() {
    check_all("jepsen-etcd", &CheckOptions::default(), 102);
}

#[test]
fn porcupine_kv_histories_agree_with_expected() {
    check_all("porcupine-kv", &CheckOptions::default(), 6);
}

#[test]
fn unsplit_kv_histories_end_in_unknown_not_a_crash() {
    let dir = corpus().join("porcupine-kv");
    for name in ["c50-ok.txt", "c50-bad.txt"] {
        let history = formats::read_file(&dir.join(name), None).unwrap();
        let options = CheckOptions {
            split_by_key: false,
            timeout: Some(Duration::from_millis(1500)),
            memory_budget: 512 << 20,
            ..CheckOptions::default()
        };
        let started = std::time::Instant::now();
        let r = check_history(&history, &options).unwrap();
        // c50-bad may be refuted quickly even unsplit; c50-ok cannot be confirmed.
        if name == "c50-ok.txt" {
            assert_eq!(r.valid, Validity::Unknown, "{name}");
            assert!(r.unknown_reason.is_some());
        } else {
            assert_ne!(r.valid, Validity::Valid, "{name}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{name} ignored its time limit"
        );
    }
}

/// c50-bad has cheap and very expensive non-linearizable keys: the first
/// refutation decides, the other keys are left unchecked (and say so),
/// and the verdict does not wait for an explanation.
#[test]
fn the_first_refuted_key_decides_and_the_explanation_comes_after() {
    let path = corpus().join("porcupine-kv").join("c50-bad.txt");
    let history = formats::read_file(&path, None).unwrap();
    let verdict_only = CheckOptions {
        explain: false,
        ..CheckOptions::default()
    };
    let mut r = check_history(&history, &verdict_only).unwrap();
    assert_eq!(r.valid, Validity::Invalid);
    assert!(r.explanation.is_none() && r.explain_ms.is_none());
    let unchecked = r
        .keys
        .iter()
        .filter(|k| k.unknown_reason.as_deref() == Some("not checked: another key is invalid"))
        .count();
    assert!(unchecked > 0, "{:?}", r.keys);
    // Explained afterwards, under its own limit.
    checker::explain_result(&history, &CheckOptions::default(), &mut r).unwrap();
    let e = r.explanation.as_ref().expect("explained");
    let refuted = r
        .keys
        .iter()
        .find(|k| k.valid == Validity::Invalid)
        .unwrap();
    assert_eq!(e.key, refuted.key);
    assert!(r.explain_ms.is_some());
    // An explanation out of time leaves the verdict alone.
    let hurried = CheckOptions {
        explain_timeout: Duration::ZERO,
        ..CheckOptions::default()
    };
    let r = check_history(&history, &hurried).unwrap();
    assert_eq!(r.valid, Validity::Invalid);
    assert!(r.explanation.is_none());
}

/// Asked for every key, each gets its own verdict: none is left unchecked.
#[test]
fn all_keys_checks_every_key() {
    let path = corpus().join("porcupine-kv").join("c50-bad.txt");
    let history = formats::read_file(&path, None).unwrap();
    let options = CheckOptions {
        all_keys: true,
        explain: false,
        timeout: Some(Duration::from_secs(1)),
        memory_budget: 128 << 20,
        ..CheckOptions::default()
    };
    let r = check_history(&history, &options).unwrap();
    assert_eq!(r.valid, Validity::Invalid);
    let invalid = r
        .keys
        .iter()
        .filter(|k| k.valid == Validity::Invalid)
        .count();
    assert!(invalid >= 2, "{:?}", r.keys);
    // A key stopped early was stopped by a limit, not by another's refutation.
    assert!(
        r.keys
            .iter()
            .all(|k| k.unknown_reason.as_deref() != Some("not checked: another key is invalid")),
        "{:?}",
        r.keys
    );
}
