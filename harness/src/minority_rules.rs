//! How the minority checker's report combines with the plain checker's
//! verdict in a run with minority mode.
//!
//! The plain linearizability checker judges the whole history as if no
//! guarantee were given up; minority mode gives some up on purpose (L1:
//! writes acknowledged by the lost majority may be lost). So:
//!
//! - the plain result is kept, unchanged, in `results.json` `checker`;
//! - each minority finding becomes a verdict rule `minority-<GUARANTEE>`
//!   (`invalid` for a violation, `valid` for an anomaly a guarantee
//!   allows), so `decided_by` names the guarantee a violation breaks;
//! - when the plain checker found the history invalid and the minority
//!   checker explains every anomaly, the verdict is valid and the rule
//!   `minority-allowed` says that the plain verdict was overridden and
//!   why; when the minority checker finds a violation, the verdict is
//!   invalid, decided by that guarantee's rule.

use checker::health::RuleFinding;
use checker::minority::MinorityReport;
use checker::{CheckResult, Validity};

/// The rule that records an overridden plain verdict.
pub const ALLOWED: &str = "minority-allowed";

/// Adds the report's findings to `findings` and makes `judged` (a copy of
/// the plain result, used only for the decision) say what the minority
/// checker decided about the history.
pub fn apply(report: &MinorityReport, judged: &mut CheckResult, findings: &mut Vec<RuleFinding>) {
    for f in &report.findings {
        findings.push(RuleFinding::new(
            &format!("minority-{}", f.guarantee),
            f.valid,
            format!("{}: {}", f.guarantee, f.message),
        ));
    }
    if report.plain == Validity::Invalid {
        // The violations (if any) decide through their own rules.
        judged.valid = Validity::Valid;
        if report.valid != Validity::Invalid {
            findings.push(RuleFinding::new(
                ALLOWED,
                Validity::Valid,
                "the linearizability checker found the history invalid (its result is kept in \
                 `checker`); every anomaly is a loss the minority-mode guarantees allow (see the \
                 L1/N2 findings), so the run is valid",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use checker::health;
    use checker::minority::GuaranteeFinding;

    fn report(plain: Validity, findings: &[(&str, Validity)]) -> MinorityReport {
        let findings: Vec<GuaranteeFinding> = findings
            .iter()
            .map(|(g, v)| GuaranteeFinding {
                guarantee: g.to_string(),
                valid: *v,
                message: "m".into(),
            })
            .collect();
        let valid = findings.iter().fold(Validity::Valid, |a, f| a.and(f.valid));
        MinorityReport {
            valid,
            plain,
            phases: Vec::new(),
            findings,
        }
    }

    fn decide(r: &MinorityReport) -> health::Decision {
        let mut plain = CheckResult::new("linearizable", "cas-register");
        plain.valid = r.plain;
        let mut judged = plain.clone();
        let mut findings = Vec::new();
        apply(r, &mut judged, &mut findings);
        health::decide(&judged, &findings)
    }

    /// An allowed loss overrides the plain verdict and says so; a broken
    /// guarantee decides by its own name; a valid history stays valid.
    #[test]
    fn the_combination_names_what_decided() {
        let d = decide(&report(Validity::Invalid, &[("L1", Validity::Valid)]));
        assert_eq!((d.valid, d.rule.as_str()), (Validity::Valid, "checker"));
        let d = decide(&report(Validity::Invalid, &[("G2", Validity::Invalid)]));
        assert_eq!(
            (d.valid, d.rule.as_str()),
            (Validity::Invalid, "minority-G2")
        );
        let d = decide(&report(Validity::Valid, &[("M2", Validity::Invalid)]));
        assert_eq!(
            (d.valid, d.rule.as_str()),
            (Validity::Invalid, "minority-M2")
        );
        let d = decide(&report(Validity::Valid, &[]));
        assert_eq!(d.valid, Validity::Valid);
        let mut judged = CheckResult::new("linearizable", "cas-register");
        judged.valid = Validity::Invalid;
        let mut f = Vec::new();
        apply(
            &report(Validity::Invalid, &[("L1", Validity::Valid)]),
            &mut judged,
            &mut f,
        );
        assert!(f.iter().any(|x| x.rule == ALLOWED), "{f:?}");
    }
}
