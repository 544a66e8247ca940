//! Opens a generated report in headless Chromium: it must load with no
//! console errors and show the verdict, the three plots, the timeline and,
//! for an invalid run, the failing window within the first screen. Saves a
//! screenshot under the test's output folder.
//!
//! Skips (with a message) when Chromium is not installed, unless `CI` is
//! set: CI installs it, so there a missing browser is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use reports::synthetic::{write_run, SyntheticOptions};
use serde_json::Value;

fn chromium() -> Option<PathBuf> {
    for name in ["chromium", "chromium-browser", "google-chrome", "chrome"] {
        if let Ok(out) = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
        {
            let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success() && !p.is_empty() {
                return Some(PathBuf::from(p));
            }
        }
    }
    None
}

/// Runs headless Chromium on `url` with extra arguments; returns (stdout, stderr).
fn run_chromium(bin: &Path, profile: &Path, extra: &[String], url: &str) -> (String, String) {
    let mut cmd = Command::new(bin);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--window-size=1400,2000",
        "--enable-logging=stderr",
        "--v=0",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(extra)
    .arg(url);
    let out = cmd.output().expect("run chromium");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The page's self-check JSON from a `--dump-dom` output.
fn self_check(dom: &str) -> Value {
    let start = dom.find("id=\"selfcheck\"").unwrap_or_else(|| {
        panic!(
            "no #selfcheck in the dumped DOM:\n{}",
            &dom[..dom.len().min(2000)]
        )
    });
    let body = &dom[start..];
    let open = body.find('>').expect("selfcheck tag") + 1;
    let close = body.find("</pre>").expect("selfcheck end");
    serde_json::from_str(&unescape(&body[open..close])).expect("selfcheck JSON")
}

#[test]
fn report_loads_in_headless_chromium_with_all_parts() {
    let Some(bin) = chromium() else {
        if std::env::var_os("CI").is_some() {
            panic!("chromium is not installed, and CI is set (.ci/run installs it)");
        }
        eprintln!("SKIPPED report_loads_in_headless_chromium_with_all_parts: chromium is not installed (apt-get install chromium)");
        return;
    };
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report_browser");
    let _ = std::fs::remove_dir_all(&out_dir);
    let run = out_dir.join("store/synthetic-register/20260101T000000.000Z");
    let opts = SyntheticOptions {
        ops: 4000,
        inject_stale_read: true,
        ..SyntheticOptions::default()
    };
    write_run(&run, &opts).expect("synthetic run");
    let report = reports::write_run_report(&run).expect("report");
    reports::write_index(&out_dir.join("store")).expect("index");
    let url = format!("file://{}", report.display());

    let profile = tempfile::tempdir().expect("profile dir");
    let (dom, stderr) = run_chromium(
        &bin,
        profile.path(),
        &["--dump-dom".into()],
        &format!("{url}#check"),
    );
    let check = self_check(&dom);
    eprintln!("self-check: {check}");
    assert_eq!(
        check["errors"],
        serde_json::json!([]),
        "script errors: {check}"
    );
    let uncaught: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("CONSOLE") && (l.contains("Uncaught") || l.contains("Error")))
        .collect();
    assert!(uncaught.is_empty(), "console errors: {uncaught:?}");
    assert_eq!(check["verdict"], "INVALID");
    assert_eq!(
        check["plots"],
        serde_json::json!(["plot-latency", "plot-quantiles", "plot-throughput"])
    );
    assert_eq!(check["timeline"]["ops"], 4000);
    assert!(
        check["timeline"]["drawn"].as_u64().unwrap_or(0) > 100,
        "timeline drew nothing: {check}"
    );
    let failure_top = check["failure"]["top"]
        .as_f64()
        .expect("failure view present");
    assert!(
        failure_top < 600.0,
        "the failing window must be on the first screen (top {failure_top})"
    );
    assert_eq!(
        check["oplink"]["ok"], true,
        "a link from the failure view must focus its operation on the timeline: {check}"
    );
    assert_eq!(
        check["external"],
        serde_json::json!([]),
        "report must not load anything from the network"
    );

    let shot = out_dir.join("report.png");
    run_chromium(
        &bin,
        profile.path(),
        &[format!("--screenshot={}", shot.display())],
        &url,
    );
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 20_000,
        "screenshot {} missing or blank ({size} bytes)",
        shot.display()
    );
    eprintln!("screenshot: {}", shot.display());
}
