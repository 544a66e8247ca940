//! `zoo.html`: the zoo's table as a self-contained page (no scripts, no
//! external resources), with every run linked to its report.

use crate::zoo::{report_link, ZooSummary, CONTROL};
use reports::html::escape;
use std::fmt::Write;
use std::path::Path;

/// The page for `summary`, written into `dir` (links are relative to it).
pub fn render(summary: &ZooSummary, dir: &Path) -> String {
    let mut h = String::new();
    let verdict = if summary.passed { "passed" } else { "FAILED" };
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Planted-bug zoo: {verdict}</title><style>{CSS}</style></head><body>\
         <h1>Planted-bug zoo: <span class=\"{cls}\">{verdict}</span></h1>\
         <p>{} seed(s) from {} per bug, {} s of workload per run, {} core(s){}. \
         A bug is caught when its run ends invalid; the control (the correct node, \
         running each bug's recipe in turn) must stay valid. Detect time: from the \
         run's start to the first operation its verdict blames.</p>",
        summary.seeds,
        summary.first_seed,
        summary.time_limit,
        summary.cores,
        if summary.interrupted {
            "; interrupted before the end"
        } else {
            ""
        },
        cls = if summary.passed { "ok" } else { "bad" },
    );
    h.push_str(
        "<table><thead><tr><th>planted bug</th><th>caught</th><th>median detect</th>\
         <th>rule it breaks</th><th>recipe</th><th>why</th></tr></thead><tbody>",
    );
    for l in &summary.lines {
        let full = l.met == l.runs && l.runs > 0;
        let what = if l.entry == CONTROL {
            "valid"
        } else {
            "caught"
        };
        let _ = write!(
            h,
            "<tr><td><b>{}</b></td><td class=\"{}\">{what} {}/{}</td><td>{}</td><td>{}</td>\
             <td><code>{}</code></td><td>{}{}</td></tr>",
            escape(&l.entry),
            if full { "ok" } else { "bad" },
            l.met,
            l.runs,
            l.median_detect_s
                .map_or("–".to_string(), |d| format!("{d:.1} s")),
            escape(&l.rule),
            escape(&l.recipe),
            escape(&l.why),
            l.limitation.as_ref().map_or(String::new(), |x| format!(
                "<br><i>limitation: {}</i>",
                escape(x)
            )),
        );
    }
    h.push_str(
        "</tbody></table><h2>Runs</h2><table><thead><tr><th>entry</th><th>seed</th>\
         <th>verdict</th><th>duration</th><th>ops</th><th>first evidence</th><th>decided by</th>\
         <th>report</th></tr></thead><tbody>",
    );
    for r in &summary.runs {
        let Some(o) = &r.outcome else {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td colspan=\"6\">not run</td></tr>",
                escape(&r.entry),
                r.seed
            );
            continue;
        };
        let expected = if r.entry == CONTROL {
            "valid"
        } else {
            "invalid"
        };
        let link = o.run_dir.as_ref().map_or("–".to_string(), |d| {
            format!("<a href=\"{}\">report</a>", escape(&report_link(d, dir)))
        });
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{:.0} s</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{link}</td></tr>",
            escape(&r.entry),
            r.seed,
            if o.verdict == expected { "ok" } else { "bad" },
            escape(&o.verdict),
            o.seconds,
            o.ops,
            o.detection.as_ref().map_or("–".to_string(), |d| format!(
                "{:.1} s: {}",
                d.at_ms as f64 / 1000.0,
                escape(&d.what)
            )),
            escape(o.reason.as_deref().unwrap_or("")),
        );
    }
    h.push_str("</tbody></table></body></html>\n");
    h
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;\
text-align:left;vertical-align:top}th{background:#f3f3f3}.ok{color:#1a7f37}\
.bad{color:#c62828;font-weight:bold}code{font-size:90%}";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zoo::{ZooLine, ZooRun};

    #[test]
    fn the_page_escapes_and_shows_every_line_and_run() {
        let s = ZooSummary {
            seeds: 1,
            first_seed: 1,
            time_limit: 60,
            passed: false,
            interrupted: false,
            cores: 2,
            lines: vec![ZooLine {
                entry: "read-lease".into(),
                rule: "a <quorum> round".into(),
                met: 0,
                runs: 1,
                median_detect_s: None,
                recipe: "--nemesis clock".into(),
                why: "w".into(),
                limitation: Some("needs x".into()),
            }],
            runs: vec![ZooRun {
                entry: "read-lease".into(),
                seed: 1,
                args: vec![],
                outcome: None,
            }],
        };
        let page = render(&s, Path::new("/tmp"));
        assert!(page.contains("a &lt;quorum&gt; round"));
        assert!(page.contains("caught 0/1") && page.contains("FAILED"));
        assert!(page.contains("limitation: needs x") && page.contains("not run"));
        assert!(!page.contains("<script"));
    }
}
