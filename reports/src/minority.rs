//! Minority mode on the timeline: the minority fault's period split into
//! the phases the minority checker found (majority lost, minority mode,
//! return), each a labelled band.

use crate::model::FaultBand;
use crate::run_folder::ResultsFile;

/// `bands` with each `minority` band replaced by the phases of
/// `results.minority` (unchanged when there are none).
pub fn with_phases(
    bands: Vec<FaultBand>,
    results: Option<&ResultsFile>,
    end: u64,
) -> Vec<FaultBand> {
    let Some(report) = results.and_then(|r| r.minority.as_ref()) else {
        return bands;
    };
    if report.phases.is_empty() {
        return bands;
    }
    let mut out: Vec<FaultBand> = bands.into_iter().filter(|b| b.kind != "minority").collect();
    for p in &report.phases {
        out.push(FaultBand {
            kind: "minority".into(),
            label: format!("minority: {}", p.name),
            start: p.from_ns,
            end: p.to_ns.unwrap_or(end).max(p.from_ns),
            failed: false,
            note: String::new(),
        });
    }
    out.sort_by(|a, b| (a.start, &a.kind).cmp(&(b.start, &b.kind)));
    out
}

/// The minority checker's phases and findings (by guarantee) for the
/// report; empty for a run without minority mode.
pub fn section(results: Option<&ResultsFile>) -> String {
    use crate::html::{escape, secs};
    use std::fmt::Write;
    let Some(m) = results.and_then(|r| r.minority.as_ref()) else {
        return String::new();
    };
    let mut s = format!(
        "<details open><summary>Minority mode: {} (the plain checker said {})</summary>\n<table><tr><th>phase</th><th>from</th><th>to</th><th>what happened</th></tr>\n",
        m.valid.as_str(),
        m.plain.as_str()
    );
    for p in &m.phases {
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            escape(&p.name),
            secs(p.from_ns),
            p.to_ns.map_or_else(|| "end".to_string(), secs),
            escape(&p.note)
        );
    }
    s.push_str("</table>\n");
    if m.findings.is_empty() {
        s.push_str("<p>No guarantee of minority mode was broken, and no loss needed one to be allowed.</p>\n");
    } else {
        s.push_str("<table><tr><th>guarantee</th><th>verdict</th><th>finding</th></tr>\n");
        for f in &m.findings {
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&f.guarantee),
                if f.valid == checker::Validity::Invalid {
                    "violated"
                } else {
                    "allowed"
                },
                escape(&f.message)
            );
        }
        s.push_str("</table>\n");
    }
    s.push_str("</details>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use checker::minority::{MinorityPhase, MinorityReport};
    use checker::Validity;

    #[test]
    fn the_minority_band_becomes_its_phases() {
        let band = |kind: &str, start| FaultBand {
            kind: kind.into(),
            label: kind.into(),
            start,
            end: start + 5,
            failed: false,
            note: String::new(),
        };
        let phase = |name: &str, from, to| MinorityPhase {
            name: name.into(),
            from_ns: from,
            to_ns: to,
            note: String::new(),
        };
        let results = ResultsFile {
            minority: Some(MinorityReport {
                valid: Validity::Valid,
                plain: Validity::Valid,
                phases: vec![
                    phase("majority lost", 10, Some(13)),
                    phase("minority mode", 13, Some(20)),
                    phase("return", 20, None),
                ],
                findings: Vec::new(),
            }),
            ..ResultsFile::default()
        };
        let bands = vec![band("kill", 1), band("minority", 13)];
        let got = with_phases(bands.clone(), Some(&results), 30);
        let labels: Vec<(&str, u64, u64)> = got
            .iter()
            .map(|b| (b.label.as_str(), b.start, b.end))
            .collect();
        assert_eq!(
            labels,
            [
                ("kill", 1, 6),
                ("minority: majority lost", 10, 13),
                ("minority: minority mode", 13, 20),
                ("minority: return", 20, 30)
            ]
        );
        assert_eq!(with_phases(bands.clone(), None, 30), bands);
        assert!(section(Some(&results)).contains("minority mode"));
        assert_eq!(section(None), "");
        let mut broken = results.clone();
        let m = broken.minority.as_mut().unwrap();
        m.valid = Validity::Invalid;
        m.findings.push(checker::minority::GuaranteeFinding {
            guarantee: "M2".into(),
            valid: Validity::Invalid,
            message: "term 2 <not> 1001".into(),
        });
        let html = section(Some(&broken));
        assert!(html.contains("<td>M2</td><td>violated</td>"), "{html}");
        assert!(html.contains("&lt;not&gt;"), "escaped: {html}");
    }
}
