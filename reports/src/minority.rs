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
        });
    }
    out.sort_by(|a, b| (a.start, &a.kind).cmp(&(b.start, &b.kind)));
    out
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
    }
}
