//! Command-line value parsers: every option is checked while the command
//! line is parsed, so a usage error exits 64 with clap's message before a
//! run folder or anything else is created.
//!
//! [`Names`] parses a name from a registry (deployments, workloads, fault
//! kinds, checker models, formats) and lists the registry's names, with
//! their help, in `--help`. The typed values a run records in `test.json`
//! ([`WorkloadChoice`], [`NemesisList`], [`ScheduleArg`]) serialise as
//! they were written.

use checker::{Checker, ConsistencyModel, Format, ModelKind, Semantics};
use clap::builder::{PossibleValue, TypedValueParser};
use clap::error::ErrorKind;
use nemesis::{FaultChoice, FaultKind, Step};
use serde::{Serialize, Serializer};
use std::ffi::OsStr;
use std::fmt;
use std::marker::PhantomData;
use std::path::PathBuf;
use workloads::WorkloadKind;

/// Parses a value with `parse`; `choices` are the names (and one line of
/// help each) that `--help` lists.
pub struct Names<T> {
    choices: fn() -> Vec<(&'static str, &'static str)>,
    parse: fn(&str) -> Result<T, String>,
    _value: PhantomData<fn() -> T>,
}

impl<T> Clone for Names<T> {
    fn clone(&self) -> Self {
        Names {
            choices: self.choices,
            parse: self.parse,
            _value: PhantomData,
        }
    }
}

impl<T> Names<T> {
    pub fn new(
        choices: fn() -> Vec<(&'static str, &'static str)>,
        parse: fn(&str) -> Result<T, String>,
    ) -> Names<T> {
        Names {
            choices,
            parse,
            _value: PhantomData,
        }
    }
}

/// The error of a value `parse` refused: one line naming the option, the
/// value and why.
pub fn invalid(
    cmd: &clap::Command,
    arg: Option<&clap::Arg>,
    value: &str,
    why: &str,
) -> clap::Error {
    let arg = arg.map_or_else(|| "...".to_string(), ToString::to_string);
    clap::Error::raw(
        ErrorKind::InvalidValue,
        format!("invalid value '{value}' for '{arg}': {why}\n"),
    )
    .with_cmd(cmd)
}

impl<T: Clone + Send + Sync + 'static> TypedValueParser for Names<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<T, clap::Error> {
        let text = value
            .to_str()
            .ok_or_else(|| clap::Error::new(ErrorKind::InvalidUtf8).with_cmd(cmd))?;
        (self.parse)(text).map_err(|why| invalid(cmd, arg, text, &why))
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new((self.choices)().into_iter().map(
            |(name, help)| {
                let v = PossibleValue::new(name);
                if help.is_empty() {
                    v
                } else {
                    v.help(help)
                }
            },
        )))
    }
}

/// Names without help.
fn bare(names: &'static [&'static str]) -> Vec<(&'static str, &'static str)> {
    names.iter().map(|n| (*n, "")).collect()
}

/// clap's error message on one line: its lines up to the usage and help
/// hints, joined. A usage error is then one line a script can show as is.
pub fn one_line(message: &str) -> String {
    let mut out = String::new();
    for line in message.lines().map(str::trim) {
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if line.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push_str(if out.ends_with(':') { " " } else { "; " });
        }
        out.push_str(line);
    }
    out
}

/// `--workload`: a registered workload.
#[derive(Debug, Clone, Copy)]
pub struct WorkloadChoice(pub &'static WorkloadKind);

impl WorkloadChoice {
    pub fn name(self) -> &'static str {
        self.0.name
    }
}

impl fmt::Display for WorkloadChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name)
    }
}

impl Serialize for WorkloadChoice {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.name)
    }
}

/// `--workload`.
pub fn workload() -> Names<WorkloadChoice> {
    Names::new(
        || {
            workloads::WORKLOADS
                .iter()
                .map(|k| (k.name, k.about))
                .collect()
        },
        |s| {
            workloads::kind(s)
                .map(WorkloadChoice)
                .map_err(|e| e.to_string())
        },
    )
}

/// `--nemesis`: fault kinds, or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NemesisList(pub Vec<FaultChoice>);

impl NemesisList {
    /// The fault kinds listed, each once.
    pub fn kinds(&self) -> Vec<FaultKind> {
        let mut kinds: Vec<FaultKind> = self.0.iter().map(|c| c.kind()).collect();
        kinds.sort_unstable();
        kinds.dedup();
        kinds
    }
}

/// The `--nemesis` value that asks for no faults.
const NO_FAULTS: &str = "none";

impl fmt::Display for NemesisList {
    /// `partition,kill` (or `none`), as on the command line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str(NO_FAULTS);
        }
        let names: Vec<String> = self.0.iter().map(|c| c.to_string()).collect();
        f.write_str(&names.join(","))
    }
}

impl Serialize for NemesisList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::str::FromStr for NemesisList {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim() == NO_FAULTS || s.trim().is_empty() {
            return Ok(NemesisList(Vec::new()));
        }
        s.split(',')
            .map(|k| k.trim().parse::<FaultChoice>())
            .collect::<Result<_, _>>()
            .map(NemesisList)
    }
}

/// `--nemesis`: comma-separated fault kinds from the registry.
pub fn nemesis() -> Names<NemesisList> {
    Names::new(
        || {
            std::iter::once((NO_FAULTS, "no faults"))
                .chain(FaultKind::ALL.iter().map(|k| (k.name(), k.about())))
                .collect()
        },
        str::parse,
    )
}

/// `--schedule`: an explicit fault schedule, parsed, and its text; or
/// `serial`, the randomised schedule with one fault at a time.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleArg {
    pub text: String,
    /// The explicit steps (none for `serial`).
    pub steps: Vec<Step>,
    /// `serial`: one randomised fault at a time, whatever its kind.
    pub serial: bool,
    /// The period of a schedule whose last item is `SECONDS:repeat`.
    pub repeat: Option<std::time::Duration>,
}

impl Serialize for ScheduleArg {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// `--schedule`'s long help: the grammar, with every fault kind's verbs.
pub fn schedule_help() -> String {
    format!(
        "By default faults are random: each kind of --nemesis on its own timeline (a few \
         seconds healthy, 5-10 s faulty), so faults of different kinds overlap in every \
         order. `serial` runs one fault at a time instead. Or an explicit schedule: SECONDS:ACTION \
         items separated by commas, SECONDS counted from the start of the run, ACTION one \
         of {}; TOPOLOGY one of {}; TARGET one of {}; CLOCK is MODE[-TARGET][-BOUND] \
         (bump, strobe, rate or slow, e.g. bump-leader-2s, rate-all-4x, slow-leader-10x); \
         LINKS is link, node, leader or all, with -delay or -stall for slow-net and -MAX% \
         for lossy-net (e.g. node-stall, all-20%). \
         A last item SECONDS:repeat plays the items again every SECONDS. \
         E.g. \"5:partition:halves,15:heal,20:kill:leader,28:restart\".",
        nemesis::schedule::grammar().join(", "),
        names(nemesis::Topology::ALL.iter().map(|t| t.name())),
        names(nemesis::Target::ALL.iter().map(|t| t.name())),
    )
}

fn names<'a>(it: impl Iterator<Item = &'a str>) -> String {
    it.collect::<Vec<_>>().join(", ")
}

/// Parses `--schedule` with the fault kinds' grammar.
pub fn schedule(s: &str) -> Result<ScheduleArg, String> {
    if s.trim() == nemesis::schedule::SERIAL {
        return Ok(ScheduleArg {
            text: s.trim().to_string(),
            steps: Vec::new(),
            serial: true,
            repeat: None,
        });
    }
    nemesis::parse_explicit(s)
        .map(|(steps, repeat)| ScheduleArg {
            text: s.to_string(),
            steps,
            serial: false,
            repeat,
        })
        .map_err(|e| e.to_string())
}

/// `--param NAME=VALUE`: a DCF parameter the nodes accept.
pub fn param(s: &str) -> Result<String, String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not NAME=VALUE"))?;
    dcf::params::Params::default()
        .set(name, value)
        .map_err(|e| e.to_string())?;
    Ok(s.to_string())
}

/// `--planted-bug NAME`: a deliberate defect `dcf-node` knows.
pub fn planted_bug(s: &str) -> Result<dcf::planted::PlantedBug, String> {
    s.parse()
}

/// A path that must be an existing file.
pub fn existing_file(s: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(s);
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!("{s} does not exist or is not a file"))
    }
}

/// A number of seconds greater than zero.
pub fn positive_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(t) if t.is_finite() && t > 0.0 => Ok(t),
        _ => Err("expected a positive number of seconds".into()),
    }
}

/// A finite number that is not negative.
pub fn non_negative(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(t) if t.is_finite() && t >= 0.0 => Ok(t),
        _ => Err("expected a number that is not negative".into()),
    }
}

/// `check --format`.
pub fn format() -> Names<Format> {
    Names::new(
        || bare(Format::NAMES),
        |s| s.parse().map_err(|e: checker::CheckError| e.to_string()),
    )
}

/// `check --semantics`.
pub fn semantics() -> Names<Semantics> {
    Names::new(
        || bare(Semantics::NAMES),
        |s| s.parse().map_err(|e: checker::CheckError| e.to_string()),
    )
}

/// `check --model`.
pub fn model() -> Names<Checker> {
    Names::new(
        || bare(ModelKind::NAMES),
        |s| s.parse().map_err(|e: checker::CheckError| e.to_string()),
    )
}

/// `check --consistency-model`: a model of Elle's ladder.
pub fn consistency_model() -> Names<ConsistencyModel> {
    Names::new(
        || {
            ConsistencyModel::LADDER
                .iter()
                .map(|m| (m.name(), ""))
                .collect()
        },
        |s| s.parse().map_err(|e: checker::CheckError| e.to_string()),
    )
}

/// `--deploy`: a value of a registered deployment kind.
pub fn deployment() -> Names<crate::deploy::DeployChoice> {
    Names::new(
        || {
            crate::deploy::kinds::choices()
                .map(|c| (c.value, c.help))
                .collect()
        },
        str::parse,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, Command};

    #[test]
    fn clap_messages_fold_into_one_line() {
        let e = "error: invalid value '0' for '--nodes <NODES>': 0 is not in 1..=32\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line(e),
            "error: invalid value '0' for '--nodes <NODES>': 0 is not in 1..=32"
        );
        let e = "error: the following required arguments were not provided:\n  <FILE>...\n\nUsage: dcf-harness check <FILE>...\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line(e),
            "error: the following required arguments were not provided: <FILE>..."
        );
    }

    #[test]
    fn nemesis_lists_round_trip_as_written() {
        let l: NemesisList = "partition, kill".parse().unwrap();
        assert_eq!(l.kinds(), [FaultKind::Partition, FaultKind::Kill]);
        assert_eq!(l.to_string(), "partition,kill");
        let pinned: NemesisList = "kill,partition:leader".parse().unwrap();
        assert_eq!(pinned.to_string(), "kill,partition:leader");
        assert!("partition:sideways"
            .parse::<NemesisList>()
            .unwrap_err()
            .contains("partition:sideways"));
        let serial = schedule(" serial ").unwrap();
        assert!(serial.serial && serial.steps.is_empty());
        assert_eq!("none".parse::<NemesisList>().unwrap().to_string(), "none");
        assert!("partition,bogus"
            .parse::<NemesisList>()
            .unwrap_err()
            .contains("\"bogus\""));
        assert_eq!(
            serde_json::to_value(schedule("1:kill:one, 2:restart").unwrap()).unwrap(),
            "1:kill:one, 2:restart"
        );
        assert!(param("ELECTION_TIMEOUT=1000").is_ok());
        assert!(param("ELECTION_TIMEOUT")
            .unwrap_err()
            .contains("NAME=VALUE"));
    }

    fn cmd() -> Command {
        Command::new("t").arg(
            Arg::new("deploy")
                .long("deploy")
                .value_parser(deployment())
                .default_value("auto"),
        )
    }

    #[test]
    fn a_registered_value_parses_and_others_are_one_line_errors() {
        let m = cmd()
            .try_get_matches_from(["t", "--deploy", "loopback"])
            .unwrap();
        assert_eq!(
            m.get_one::<crate::deploy::DeployChoice>("deploy")
                .unwrap()
                .value,
            "loopback"
        );
        let e = cmd()
            .try_get_matches_from(["t", "--deploy", "cloud"])
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidValue);
        let text = e.to_string();
        let first = text.lines().next().unwrap();
        assert!(
            first.contains("'cloud'") && first.contains("--deploy") && first.contains("loopback"),
            "{text}"
        );
    }

    #[test]
    fn help_lists_every_value_with_its_help() {
        let help = cmd().render_long_help().to_string();
        for c in crate::deploy::kinds::choices() {
            assert!(help.contains(c.value) && help.contains(c.help), "{help}");
        }
    }
}
