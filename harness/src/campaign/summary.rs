//! What a campaign leaves in `STORE/campaign-<timestamp>/`: `summary.json`
//! (every run, ran or skipped), `summary.html` (one row per run, failures
//! first, self-contained) and `junit.xml` (one test suite per campaign
//! file, one test case per run) for CI systems that show JUnit results.

use reports::html::escape;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The summary's file names.
pub const SUMMARY_JSON: &str = "summary.json";
pub const SUMMARY_HTML: &str = "summary.html";
pub const JUNIT_XML: &str = "junit.xml";

/// One planned run and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    pub campaign: String,
    /// 1-based.
    pub repetition: u32,
    pub seed: u64,
    /// `valid`, `invalid`, `unknown`, `harness-failure`, or `skipped`.
    pub verdict: String,
    pub expected: String,
    /// Whether the verdict is the expected one; `None` for a skipped run.
    pub met: Option<bool>,
    /// Wall-clock seconds of the whole run (deploy to report).
    pub duration_s: f64,
    pub time_limit_s: u64,
    /// Completed client operations.
    pub ops: u64,
    /// The fault kinds (or the schedule).
    pub faults: String,
    /// Nemesis events in the history.
    pub fault_events: u64,
    pub planted_bug: Option<String>,
    /// What the checker or the deciding rule blamed first.
    pub first_anomaly: Option<String>,
    /// The run folder.
    pub run_dir: Option<PathBuf>,
    /// Why the run was skipped, or what else is worth knowing (an interrupted run).
    pub note: Option<String>,
    /// The `dcf-harness test` command line.
    pub command: Vec<String>,
}

impl RunRecord {
    /// `name#rep`.
    pub fn label(&self) -> String {
        format!("{}#{}", self.campaign, self.repetition)
    }

    pub fn skipped(&self) -> bool {
        self.met.is_none()
    }

    /// The run's `report.html`, if it has a folder.
    pub fn report(&self) -> Option<PathBuf> {
        self.run_dir.as_ref().map(|d| d.join("report.html"))
    }
}

/// The whole campaign.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// The campaign file's stem.
    pub name: String,
    pub file: PathBuf,
    pub started: String,
    pub budget_min: Option<f64>,
    pub duration_s: f64,
    /// Ctrl-C or SIGTERM ended the campaign early.
    pub interrupted: bool,
    pub runs: Vec<RunRecord>,
}

impl Summary {
    pub fn ran(&self) -> impl Iterator<Item = &RunRecord> {
        self.runs.iter().filter(|r| !r.skipped())
    }

    pub fn unmet(&self) -> usize {
        self.ran().filter(|r| r.met == Some(false)).count()
    }

    pub fn skipped(&self) -> usize {
        self.runs.iter().filter(|r| r.skipped()).count()
    }

    /// Writes the three files into `dir`.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(dir.join(SUMMARY_JSON), json)?;
        std::fs::write(dir.join(SUMMARY_HTML), self.html(dir))?;
        std::fs::write(dir.join(JUNIT_XML), self.junit())
    }

    /// The runs in the order a reader wants them: unmet expectations first,
    /// then skipped runs, then the rest, each in run order.
    fn ordered(&self) -> Vec<&RunRecord> {
        let rank = |r: &RunRecord| match r.met {
            Some(false) => 0,
            None => 1,
            Some(true) => 2,
        };
        let mut v: Vec<&RunRecord> = self.runs.iter().collect();
        v.sort_by_key(|r| rank(r));
        v
    }

    /// `summary.html`: one row per run, failures first; no script and no
    /// external resource.
    pub fn html(&self, dir: &Path) -> String {
        let ran = self.ran().count();
        let unmet = self.unmet();
        let status = if self.interrupted {
            ("interrupted", "unmet")
        } else if unmet > 0 {
            ("FAILED", "unmet")
        } else {
            ("PASSED", "met")
        };
        let mut s = String::new();
        let _ = write!(
            s,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>campaign {name}: {st}</title>\n<style>{STYLE}</style></head><body>\n\
             <h1>Campaign <code>{name}</code>: <span class=\"{cls}\">{st}</span></h1>\n\
             <p id=\"counts\">{ran} run{s1} ran, {unmet} did not meet {their} expected verdict, \
             {skipped} skipped; started {started}, {dur:.0} s{budget}. File: <code>{file}</code></p>\n",
            name = escape(&self.name),
            st = status.0,
            cls = status.1,
            s1 = if ran == 1 { "" } else { "s" },
            their = if unmet == 1 { "its" } else { "their" },
            skipped = self.skipped(),
            started = escape(&self.started),
            dur = self.duration_s,
            budget = self
                .budget_min
                .map_or(String::new(), |b| format!(" of a {b} min budget")),
            file = escape(&self.file.display().to_string()),
        );
        s.push_str(
            "<table id=\"runs\"><thead><tr><th>run</th><th>verdict</th><th>expected</th>\
             <th>duration</th><th>ops</th><th>faults</th><th>seed</th><th>first anomaly / note</th>\
             <th>report</th></tr></thead><tbody>\n",
        );
        for r in self.ordered() {
            let cls = match r.met {
                Some(false) => "unmet",
                None => "skipped",
                Some(true) => "met",
            };
            let report = match r.report() {
                Some(p) => format!("<a href=\"{}\">report</a>", escape(&relative_link(dir, &p))),
                None => String::new(),
            };
            let note = r
                .first_anomaly
                .iter()
                .chain(r.note.iter())
                .map(|t| escape(t))
                .collect::<Vec<_>>()
                .join("<br>");
            let faults = match &r.planted_bug {
                Some(b) => format!(
                    "{} <span class=\"bug\">bug {}</span>",
                    escape(&r.faults),
                    escape(b)
                ),
                None => escape(&r.faults),
            };
            let _ = writeln!(
                s,
                "<tr class=\"{cls}\"><td>{label}</td><td class=\"verdict\">{verdict}</td>\
                 <td>{expected}</td><td>{dur}</td><td>{ops}</td><td>{faults}</td><td>{seed}</td>\
                 <td>{note}</td><td>{report}</td></tr>",
                label = escape(&r.label()),
                verdict = escape(&r.verdict),
                expected = escape(&r.expected),
                dur = if r.skipped() {
                    String::new()
                } else {
                    format!("{:.0} s", r.duration_s)
                },
                ops = if r.skipped() {
                    String::new()
                } else {
                    r.ops.to_string()
                },
                seed = r.seed,
            );
        }
        s.push_str("</tbody></table>\n</body></html>\n");
        s
    }

    /// `junit.xml`: one test suite (the campaign file), one test case per
    /// run; an unmet expectation is a `failure`, a skipped run `skipped`.
    pub fn junit(&self) -> String {
        let tests = self.runs.len();
        let failures = self.unmet();
        let skipped = self.skipped();
        let time: f64 = self.ran().map(|r| r.duration_s).sum();
        let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            s,
            "<testsuites name=\"dcf-harness campaign\" tests=\"{tests}\" failures=\"{failures}\" \
             errors=\"0\" skipped=\"{skipped}\" time=\"{time:.3}\">"
        );
        let _ = writeln!(
            s,
            "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" \
             skipped=\"{skipped}\" time=\"{time:.3}\" timestamp=\"{}\">",
            xml(&self.name),
            xml(&self.started)
        );
        for r in &self.runs {
            let _ = write!(
                s,
                "    <testcase classname=\"{}.{}\" name=\"{}\" time=\"{:.3}\">",
                xml(&self.name),
                xml(&r.campaign),
                xml(&r.label()),
                r.duration_s
            );
            match r.met {
                None => {
                    let _ = write!(
                        s,
                        "<skipped message=\"{}\"/>",
                        xml(r.note.as_deref().unwrap_or("skipped"))
                    );
                }
                Some(false) => {
                    let mut text = format!(
                        "verdict: {}\nexpected: {}\nfirst anomaly: {}\nreport: {}\nseed: {}\ncommand: {}",
                        r.verdict,
                        r.expected,
                        r.first_anomaly.as_deref().unwrap_or("none"),
                        r.report()
                            .map_or("none".into(), |p| p.display().to_string()),
                        r.seed,
                        r.command.join(" ")
                    );
                    if let Some(n) = &r.note {
                        text.push_str(&format!("\nnote: {n}"));
                    }
                    let _ = write!(
                        s,
                        "\n      <failure message=\"{} (expected {})\" type=\"{}\">{}</failure>\n    ",
                        xml(&r.verdict),
                        xml(&r.expected),
                        xml(&r.verdict),
                        xml(&text)
                    );
                }
                Some(true) => {
                    if let Some(d) = &r.run_dir {
                        let _ = write!(
                            s,
                            "<system-out>{} seed {}</system-out>",
                            xml(&d.display().to_string()),
                            r.seed
                        );
                    }
                }
            }
            s.push_str("</testcase>\n");
        }
        s.push_str("  </testsuite>\n</testsuites>\n");
        s
    }
}

/// A link from the campaign folder to `target`: relative when both are in
/// the same tree (the store), so the store can be moved or served whole.
fn relative_link(from_dir: &Path, target: &Path) -> String {
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (from, to) = (abs(from_dir), abs(target));
    let from_parts: Vec<_> = from.components().collect();
    let to_parts: Vec<_> = to.components().collect();
    let common = from_parts
        .iter()
        .zip(&to_parts)
        .take_while(|(a, b)| a == b)
        .count();
    if common <= 1 {
        return format!("file://{}", to.display());
    }
    let mut rel = PathBuf::new();
    for _ in common..from_parts.len() {
        rel.push("..");
    }
    for p in &to_parts[common..] {
        rel.push(p);
    }
    rel.display().to_string()
}

/// Escapes text for XML attributes and content; drops characters XML 1.0
/// cannot hold.
pub fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' | '\r' => out.push(c),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;font-size:14px}th,td{border:1px solid #ccc;padding:4px 8px;\
text-align:left;vertical-align:top}th{background:#f0f0f0}.met .verdict{color:#176f2c}\
.unmet{background:#fde8e8}.unmet .verdict{color:#b00020;font-weight:bold}\
.skipped{color:#777;background:#f7f7f7}span.met{color:#176f2c}span.unmet{color:#b00020}\
.bug{background:#ffe9b3;border-radius:3px;padding:0 4px;font-size:12px}code{font-size:13px}";

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn record(campaign: &str, rep: u32, verdict: &str, expected: &str) -> RunRecord {
        let skipped = verdict == "skipped";
        RunRecord {
            campaign: campaign.into(),
            repetition: rep,
            seed: 42,
            verdict: verdict.into(),
            expected: expected.into(),
            met: (!skipped).then(|| verdict == expected),
            duration_s: if skipped { 0.0 } else { 12.5 },
            time_limit_s: 8,
            ops: 100,
            faults: "partition".into(),
            fault_events: 4,
            planted_bug: None,
            first_anomaly: (verdict == "invalid")
                .then(|| "key 3: process 2 `read 1` cannot be linearized".into()),
            run_dir: (!skipped).then(|| PathBuf::from(format!("/s/{campaign}/{rep}"))),
            note: skipped.then(|| "budget: needs 68 s, 10 s left".into()),
            command: vec!["dcf-harness".into(), "test".into()],
        }
    }

    fn summary() -> Summary {
        Summary {
            name: "nightly".into(),
            file: "ci/nightly.toml".into(),
            started: "20260101T000000.000Z".into(),
            budget_min: Some(20.0),
            duration_s: 40.0,
            interrupted: false,
            runs: vec![
                record("a", 1, "valid", "valid"),
                record("b<&>", 1, "invalid", "valid"),
                record("c", 1, "skipped", "invalid"),
            ],
        }
    }

    #[test]
    fn junit_has_one_testcase_per_run_with_the_failure_text() {
        let s = summary();
        let text = s.junit();
        let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
        let suites: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("testsuite"))
            .collect();
        assert_eq!(suites.len(), 1);
        assert_eq!(suites[0].attribute("name"), Some("nightly"));
        assert_eq!(suites[0].attribute("tests"), Some("3"));
        assert_eq!(suites[0].attribute("failures"), Some("1"));
        assert_eq!(suites[0].attribute("skipped"), Some("1"));
        let cases: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("testcase"))
            .collect();
        assert_eq!(cases.len(), 3);
        assert_eq!(cases[1].attribute("name"), Some("b<&>#1"));
        let failure = cases[1]
            .children()
            .find(|n| n.has_tag_name("failure"))
            .expect("failure element");
        assert_eq!(
            failure.attribute("message"),
            Some("invalid (expected valid)")
        );
        let body = failure.text().unwrap();
        assert!(body.contains("verdict: invalid"), "{body}");
        assert!(body.contains("expected: valid"), "{body}");
        assert!(body.contains("cannot be linearized"), "{body}");
        assert!(body.contains("report: /s/b<&>/1/report.html"), "{body}");
        assert!(cases[0].children().all(|n| !n.has_tag_name("failure")));
        let skipped = cases[2]
            .children()
            .find(|n| n.has_tag_name("skipped"))
            .expect("skipped element");
        assert!(skipped.attribute("message").unwrap().contains("budget"));
    }

    #[test]
    fn html_lists_failures_first_and_loads_nothing_external() {
        let s = summary();
        let html = s.html(Path::new("/s/campaign-x"));
        let rows: Vec<&str> = html
            .lines()
            .filter(|l| l.starts_with("<tr class="))
            .collect();
        assert_eq!(rows.len(), 3);
        assert!(rows[0].starts_with("<tr class=\"unmet\"") && rows[0].contains("b&lt;&amp;&gt;#1"));
        assert!(rows[1].starts_with("<tr class=\"skipped\""));
        assert!(rows[2].starts_with("<tr class=\"met\""));
        assert!(
            rows[2].contains("href=\"../a/1/report.html\""),
            "{}",
            rows[2]
        );
        assert!(html.contains("FAILED"));
        assert!(
            !html.contains("http://") && !html.contains("https://") && !html.contains("<script")
        );
    }

    #[test]
    fn files_are_written_and_json_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let s = summary();
        s.write(dir.path()).unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(SUMMARY_JSON)).unwrap()).unwrap();
        assert_eq!(v["runs"].as_array().unwrap().len(), 3);
        assert_eq!(v["runs"][1]["met"], false);
        assert_eq!(v["runs"][2]["met"], serde_json::Value::Null);
        assert_eq!(v["runs"][0]["run_dir"], "/s/a/1");
        assert!(dir.path().join(SUMMARY_HTML).is_file() && dir.path().join(JUNIT_XML).is_file());
    }

    #[test]
    fn xml_escapes_and_drops_control_characters() {
        assert_eq!(xml("a<b>&\"'\u{1}\n"), "a&lt;b&gt;&amp;&quot;&apos;\n");
    }
}
