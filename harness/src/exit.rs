//! The exit statuses of `dcf-harness`, one table for every subcommand:
//! a verdict maps to its status the same way whether it came from `test`,
//! `analyze` or `check`, so scripts (CI, campaigns) read them alike.

use checker::Validity;

/// The history (or every file) is valid.
pub const VALID: i32 = 0;
/// A checker or a run rule found a violation.
pub const INVALID: i32 = 1;
/// Undecided: a checker limit, a rule that asks for `unknown`.
pub const UNKNOWN: i32 = 2;
/// `campaign`: a run that ran did not reach its expected verdict (or the
/// harness failed in it).
pub const CAMPAIGN_UNMET: i32 = 3;
/// `campaign`: Ctrl-C or SIGTERM stopped it; the summary holds what ran.
pub const INTERRUPTED: i32 = 130;
/// Bad usage (the sysexits `EX_USAGE`), or a file `check` cannot read.
pub const USAGE: i32 = 64;
/// The harness failed; no verdict on the system.
pub const HARNESS_FAILURE: i32 = 255;

/// The exit status of a verdict.
pub fn exit_code(v: Validity) -> i32 {
    match v {
        Validity::Valid => VALID,
        Validity::Invalid => INVALID,
        Validity::Unknown => UNKNOWN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_map_to_distinct_documented_statuses() {
        assert_eq!(exit_code(Validity::Valid), 0);
        assert_eq!(exit_code(Validity::Invalid), 1);
        assert_eq!(exit_code(Validity::Unknown), 2);
        assert_eq!((USAGE, HARNESS_FAILURE), (64, 255));
        assert_eq!((CAMPAIGN_UNMET, INTERRUPTED), (3, 130));
    }
}
