//! A campaign file: TOML naming campaigns (`[[campaign]]` tables) and,
//! optionally, the planted-bug zoo (`[zoo]`). Every value is checked
//! before anything runs, each option with the same parser `dcf-harness
//! test` uses, so a bad file is one error naming the campaign and the key.
//!
//! ```toml
//! [[campaign]]
//! name = "register-partition"
//! workload = "register"          # default register
//! nemesis = ["partition", "kill"] # or "partition,kill"; default partition,kill,pause
//! nodes = 5                      # default 5
//! time_limit = 60                # seconds, default 60
//! repetitions = 2                # default 1
//! planted_bug = "local-reads"    # optional; then expected defaults to invalid
//! schedule = "5:partition:halves,15:heal"  # optional explicit schedule
//! options = ["--rate", "100"]    # optional further `dcf-harness test` options
//! seed = 7                       # optional: repetition r uses seed + r - 1
//! expected = "valid"             # valid | invalid | unknown
//!
//! [zoo]                          # one campaign per planted bug, expected invalid,
//! seeds = 1                      # and a control of the correct node, expected valid
//! time_limit = 60
//! bugs = ["local-reads"]         # optional: default every planted bug
//! control = ["--nemesis", "partition"]  # optional options of the control run
//! ```

use crate::test_cmd::TestArgs;
use checker::Validity;
use clap::Parser;
use dcf::planted::PlantedBug;
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use toml::{Table, Value};

/// Seconds of workload when a campaign does not say.
pub const DEFAULT_TIME_LIMIT: u64 = 60;

/// The keys of a `[[campaign]]` table.
const CAMPAIGN_KEYS: &[&str] = &[
    "name",
    "workload",
    "nemesis",
    "nodes",
    "time_limit",
    "repetitions",
    "planted_bug",
    "schedule",
    "options",
    "seed",
    "expected",
];
/// The keys of the `[zoo]` table.
const ZOO_KEYS: &[&str] = &["seeds", "time_limit", "bugs", "control", "seed"];
/// The top-level keys.
const TOP_KEYS: &[&str] = &["campaign", "zoo"];
/// `dcf-harness test` options the campaign sets itself, refused in `options`.
const OWN_OPTIONS: &[&str] = &["--store", "--name", "--seed", "--time-limit"];

/// A bad campaign file: where, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct PlanError {
    pub file: PathBuf,
    /// The campaign (or `zoo`) the error is in, if in one.
    pub campaign: Option<String>,
    /// The key, if one is to blame.
    pub key: Option<String>,
    pub why: String,
}

impl PlanError {
    fn render(&self) -> String {
        let mut s = format!("{}: ", self.file.display());
        if let Some(c) = &self.campaign {
            s.push_str(&format!("campaign {c:?}: "));
        }
        if let Some(k) = &self.key {
            s.push_str(&format!("key {k:?}: "));
        }
        s.push_str(&self.why);
        s
    }
}

/// The verdict a campaign's runs must reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Expected {
    Valid,
    Invalid,
    Unknown,
}

impl Expected {
    pub fn as_str(self) -> &'static str {
        match self {
            Expected::Valid => "valid",
            Expected::Invalid => "invalid",
            Expected::Unknown => "unknown",
        }
    }

    /// Whether a verdict is the one expected.
    pub fn met_by(self, v: Validity) -> bool {
        matches!(
            (self, v),
            (Expected::Valid, Validity::Valid)
                | (Expected::Invalid, Validity::Invalid)
                | (Expected::Unknown, Validity::Unknown)
        )
    }
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One campaign: a `dcf-harness test` command line run `repetitions` times.
#[derive(Debug, Clone, PartialEq)]
pub struct Campaign {
    pub name: String,
    /// The `dcf-harness test` options, without `--store`, `--name`, `--seed`
    /// (the campaign adds them per run); `--time-limit` included.
    pub args: Vec<String>,
    pub time_limit: u64,
    pub repetitions: u32,
    pub expected: Expected,
    /// Seed of the first repetition; random when absent.
    pub seed: Option<u64>,
    /// The faults, as the summary shows them (`partition,kill`, or the schedule).
    pub faults: String,
    pub planted_bug: Option<PlantedBug>,
}

impl Campaign {
    /// The seed of repetition `rep` (1-based), if the campaign fixes seeds.
    pub fn seed_of(&self, rep: u32) -> Option<u64> {
        self.seed.map(|s| s.wrapping_add(u64::from(rep) - 1))
    }
}

/// A parsed campaign file.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The file's stem: the JUnit test suite's name.
    pub name: String,
    pub campaigns: Vec<Campaign>,
}

/// `dcf-harness test`'s options, for checking a campaign's command line.
#[derive(Debug, Parser)]
#[command(name = "test", no_binary_name = true)]
struct TestLine {
    #[command(flatten)]
    args: TestArgs,
}

/// Parses `args` as `dcf-harness test` would (deployment checks included).
fn parse_test_line(args: &[String]) -> Result<TestArgs, String> {
    let line = TestLine::try_parse_from(args)
        .map_err(|e| crate::cli::one_line(&e.render().to_string()))?;
    line.args.validate()?;
    Ok(line.args)
}

/// Reads and checks a campaign file.
pub fn load(path: &Path) -> Result<Plan, PlanError> {
    let text = std::fs::read_to_string(path).map_err(|e| PlanError {
        file: path.to_path_buf(),
        campaign: None,
        key: None,
        why: format!("cannot read it: {e}"),
    })?;
    let name = path
        .file_stem()
        .map_or("campaign".into(), |s| s.to_string_lossy().into_owned());
    parse(path, &name, &text)
}

/// Parses the text of a campaign file (`file` names it in errors).
pub fn parse(file: &Path, name: &str, text: &str) -> Result<Plan, PlanError> {
    let err = |campaign: Option<&str>, key: Option<&str>, why: String| PlanError {
        file: file.to_path_buf(),
        campaign: campaign.map(str::to_string),
        key: key.map(str::to_string),
        why,
    };
    let table: Table = text
        .parse()
        .map_err(|e: toml::de::Error| err(None, None, one_line(&e.to_string())))?;
    if let Some(k) = table.keys().find(|k| !TOP_KEYS.contains(&k.as_str())) {
        return Err(err(
            None,
            Some(k),
            format!("unknown key (known: {})", TOP_KEYS.join(", ")),
        ));
    }
    let mut campaigns = Vec::new();
    match table.get("campaign") {
        None => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let Value::Table(t) = item else {
                    return Err(err(
                        None,
                        Some("campaign"),
                        format!("item {} is not a table ([[campaign]])", i + 1),
                    ));
                };
                campaigns
                    .push(campaign(t, i).map_err(|(c, k, why)| err(Some(&c), k.as_deref(), why))?);
            }
        }
        Some(_) => {
            return Err(err(
                None,
                Some("campaign"),
                "must be an array of tables ([[campaign]])".into(),
            ))
        }
    }
    match table.get("zoo") {
        None => {}
        Some(Value::Table(t)) => {
            campaigns.extend(zoo(t).map_err(|(k, why)| err(Some("zoo"), k.as_deref(), why))?);
        }
        Some(_) => return Err(err(None, Some("zoo"), "must be a table ([zoo])".into())),
    }
    if campaigns.is_empty() {
        return Err(err(
            None,
            None,
            "no campaign: add a [[campaign]] table or a [zoo] table".into(),
        ));
    }
    let mut seen = BTreeSet::new();
    for c in &campaigns {
        if !seen.insert(c.name.as_str()) {
            return Err(err(
                Some(&c.name),
                Some("name"),
                "a campaign of this name comes earlier in the file".into(),
            ));
        }
    }
    Ok(Plan {
        name: name.to_string(),
        campaigns,
    })
}

fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

type KeyError = (Option<String>, String);

fn string(v: &Value, key: &'static str) -> Result<String, KeyError> {
    v.as_str().map(str::to_string).ok_or((
        Some(key.to_string()),
        format!("must be a string, not {}", v.type_str()),
    ))
}

fn integer(v: &Value, key: &'static str, min: i64) -> Result<u64, KeyError> {
    match v.as_integer() {
        Some(n) if n >= min => Ok(n as u64),
        Some(n) => Err((Some(key.to_string()), format!("{n} is below {min}"))),
        None => Err((
            Some(key.to_string()),
            format!("must be an integer, not {}", v.type_str()),
        )),
    }
}

fn strings(v: &Value, key: &'static str) -> Result<Vec<String>, KeyError> {
    let bad = || {
        (
            Some(key.to_string()),
            "must be an array of strings".to_string(),
        )
    };
    v.as_array()
        .ok_or_else(bad)?
        .iter()
        .map(|x| x.as_str().map(str::to_string).ok_or_else(bad))
        .collect()
}

/// Checks one option alone with `dcf-harness test`'s parser, so its error
/// names the key it came from.
fn check_option(key: &'static str, args: &[String]) -> Result<(), KeyError> {
    parse_test_line(args)
        .map(|_| ())
        .map_err(|e| (Some(key.to_string()), e))
}

/// A name usable as a store folder and in JUnit.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        || name.starts_with('.')
    {
        return Err(format!(
            "{name:?} must be letters, digits, '-', '_' or '.' (it names the runs' store folder)"
        ));
    }
    Ok(())
}

/// One `[[campaign]]` table; errors carry the campaign's name (or its
/// position when it has none).
fn campaign(t: &Table, index: usize) -> Result<Campaign, (String, Option<String>, String)> {
    let label = t
        .get("name")
        .and_then(Value::as_str)
        .map_or(format!("#{}", index + 1), str::to_string);
    campaign_inner(t).map_err(|(k, why)| (label, k, why))
}

fn campaign_inner(t: &Table) -> Result<Campaign, KeyError> {
    if let Some(k) = t.keys().find(|k| !CAMPAIGN_KEYS.contains(&k.as_str())) {
        return Err((
            Some(k.clone()),
            format!("unknown key (known: {})", CAMPAIGN_KEYS.join(", ")),
        ));
    }
    let name = string(
        t.get("name")
            .ok_or((Some("name".to_string()), "missing".into()))?,
        "name",
    )?;
    check_name(&name).map_err(|e| (Some("name".to_string()), e))?;
    let mut args: Vec<String> = Vec::new();
    let mut push = |key: &'static str, opt: &str, value: String| -> Result<(), KeyError> {
        let pair = vec![opt.to_string(), value];
        check_option(key, &pair)?;
        args.extend(pair);
        Ok(())
    };
    if let Some(v) = t.get("workload") {
        push("workload", "--workload", string(v, "workload")?)?;
    }
    if let Some(v) = t.get("nemesis") {
        let list = match v {
            Value::Array(_) => strings(v, "nemesis")?.join(","),
            _ => string(v, "nemesis")?,
        };
        push("nemesis", "--nemesis", list)?;
    }
    if let Some(v) = t.get("nodes") {
        push("nodes", "--nodes", integer(v, "nodes", 1)?.to_string())?;
    }
    let time_limit = match t.get("time_limit") {
        Some(v) => integer(v, "time_limit", 1)?,
        None => DEFAULT_TIME_LIMIT,
    };
    push("time_limit", "--time-limit", time_limit.to_string())?;
    let planted_bug = match t.get("planted_bug") {
        Some(v) => {
            let s = string(v, "planted_bug")?;
            let bug: PlantedBug = s
                .parse()
                .map_err(|e| (Some("planted_bug".to_string()), e))?;
            push("planted_bug", "--planted-bug", s)?;
            Some(bug)
        }
        None => None,
    };
    if let Some(v) = t.get("schedule") {
        push("schedule", "--schedule", string(v, "schedule")?)?;
    }
    let repetitions = match t.get("repetitions") {
        Some(v) => u32::try_from(integer(v, "repetitions", 1)?)
            .map_err(|_| (Some("repetitions".to_string()), "too large".to_string()))?,
        None => 1,
    };
    let seed = t.get("seed").map(|v| integer(v, "seed", 0)).transpose()?;
    let expected = match t.get("expected") {
        Some(v) => match string(v, "expected")?.as_str() {
            "valid" => Expected::Valid,
            "invalid" => Expected::Invalid,
            "unknown" => Expected::Unknown,
            other => {
                return Err((
                    Some("expected".to_string()),
                    format!("{other:?} is not valid, invalid or unknown"),
                ))
            }
        },
        None if planted_bug.is_some() => Expected::Invalid,
        None => Expected::Valid,
    };
    if let Some(v) = t.get("options") {
        let extra = strings(v, "options")?;
        if let Some(own) = extra
            .iter()
            .find(|a| OWN_OPTIONS.contains(&a.split('=').next().unwrap_or(a)))
        {
            return Err((
                Some("options".to_string()),
                format!("{own} is set by the campaign (use its own key, or none)"),
            ));
        }
        args.extend(extra);
    }
    finish(
        name,
        args,
        time_limit,
        repetitions,
        expected,
        seed,
        "options",
    )
}

/// Checks the whole command line and builds the campaign.
fn finish(
    name: String,
    args: Vec<String>,
    time_limit: u64,
    repetitions: u32,
    expected: Expected,
    seed: Option<u64>,
    key: &'static str,
) -> Result<Campaign, KeyError> {
    let parsed = parse_test_line(&args).map_err(|e| (Some(key.to_string()), e))?;
    let faults = match &parsed.schedule {
        Some(s) => format!("schedule {}", s.text),
        None => parsed.nemesis.to_string(),
    };
    let planted_bug = parsed.planted_bugs().into_iter().next();
    Ok(Campaign {
        name,
        args,
        time_limit,
        repetitions,
        expected,
        seed,
        faults,
        planted_bug,
    })
}

/// The `[zoo]` table: one campaign per planted bug (its zoo recipe, expected
/// invalid) and controls of the correct node (expected valid). As in
/// `dcf-harness zoo`, control run `i` runs the recipe of the `i`-th bug
/// (cycling) without the bug, so the controls cover the recipes' faults;
/// `control = [...]` replaces them by one campaign with those options.
fn zoo(t: &Table) -> Result<Vec<Campaign>, KeyError> {
    if let Some(k) = t.keys().find(|k| !ZOO_KEYS.contains(&k.as_str())) {
        return Err((
            Some(k.clone()),
            format!("unknown key (known: {})", ZOO_KEYS.join(", ")),
        ));
    }
    let seeds = match t.get("seeds") {
        Some(v) => u32::try_from(integer(v, "seeds", 1)?)
            .map_err(|_| (Some("seeds".to_string()), "too large".to_string()))?,
        None => 1,
    };
    let time_limit = match t.get("time_limit") {
        Some(v) => integer(v, "time_limit", 1)?,
        None => DEFAULT_TIME_LIMIT,
    };
    let seed = t.get("seed").map(|v| integer(v, "seed", 0)).transpose()?;
    let bugs: Vec<PlantedBug> = match t.get("bugs") {
        Some(v) => strings(v, "bugs")?
            .iter()
            .map(|s| s.parse().map_err(|e| (Some("bugs".to_string()), e)))
            .collect::<Result<_, _>>()?,
        // A bug today's faults cannot catch reliably (its recipe says why)
        // runs only when named: a nightly run must not fail on it.
        None => PlantedBug::ALL
            .into_iter()
            .filter(|b| b.zoo_recipe().limitation.is_none())
            .collect(),
    };
    let limit = ["--time-limit".to_string(), time_limit.to_string()];
    let recipe = |bug: PlantedBug| -> Vec<String> {
        bug.zoo_recipe()
            .args
            .iter()
            .map(|a| a.to_string())
            .collect()
    };
    let mut out = Vec::new();
    for &bug in &bugs {
        let mut args = recipe(bug);
        args.extend(["--planted-bug".to_string(), bug.name().to_string()]);
        // A caught bug ends its run: the zoo costs what detection costs.
        args.push("--stop-on-invalid".to_string());
        args.extend(limit.clone());
        out.push(finish(
            format!("zoo-{}", bug.name()),
            args,
            time_limit,
            seeds,
            Expected::Invalid,
            seed,
            "bugs",
        )?);
    }
    if let Some(v) = t.get("control") {
        let mut control = strings(v, "control")?;
        if let Some(own) = control
            .iter()
            .find(|a| OWN_OPTIONS.contains(&a.as_str()) || a.as_str() == "--planted-bug")
        {
            return Err((
                Some("control".to_string()),
                format!("{own} is set by the zoo (the control runs the correct node)"),
            ));
        }
        control.extend(limit);
        out.push(finish(
            "zoo-control".into(),
            control,
            time_limit,
            seeds,
            Expected::Valid,
            seed,
            "control",
        )?);
        return Ok(out);
    }
    // Seed i's control runs the recipe of bug i (cycling): one campaign
    // per recipe used, with as many repetitions as seeds landed on it.
    for (i, &bug) in bugs.iter().enumerate() {
        let reps = (0..seeds as usize).filter(|s| s % bugs.len() == i).count() as u32;
        if reps == 0 {
            continue;
        }
        let mut args = recipe(bug);
        args.extend(limit.clone());
        out.push(finish(
            format!("zoo-control-{}", bug.name()),
            args,
            time_limit,
            reps,
            Expected::Valid,
            seed.map(|s| s.wrapping_add(i as u64)),
            "bugs",
        )?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Plan, PlanError> {
        parse(Path::new("t.toml"), "t", text)
    }

    #[test]
    fn a_campaign_with_every_key_becomes_its_test_command_line() {
        let plan = parse_str(
            r#"
            [[campaign]]
            name = "reg-part"
            workload = "register"
            nemesis = ["partition", "kill"]
            nodes = 3
            time_limit = 20
            repetitions = 2
            planted_bug = "local-reads"
            options = ["--rate", "50"]
            seed = 10
            "#,
        )
        .unwrap();
        assert_eq!(plan.name, "t");
        let c = &plan.campaigns[0];
        assert_eq!(c.name, "reg-part");
        assert_eq!(
            c.args,
            [
                "--workload",
                "register",
                "--nemesis",
                "partition,kill",
                "--nodes",
                "3",
                "--time-limit",
                "20",
                "--planted-bug",
                "local-reads",
                "--rate",
                "50"
            ]
        );
        assert_eq!((c.time_limit, c.repetitions), (20, 2));
        assert_eq!(
            c.expected,
            Expected::Invalid,
            "a planted bug expects invalid"
        );
        assert_eq!((c.seed_of(1), c.seed_of(2)), (Some(10), Some(11)));
        assert_eq!(c.faults, "partition,kill");
        assert_eq!(c.planted_bug, Some(PlantedBug::LocalReads));
    }

    #[test]
    fn defaults_are_one_valid_run_of_a_minute() {
        let plan = parse_str("[[campaign]]\nname = \"d\"\n").unwrap();
        let c = &plan.campaigns[0];
        assert_eq!(c.args, ["--time-limit", "60"]);
        assert_eq!(
            (c.repetitions, c.expected, c.seed),
            (1, Expected::Valid, None)
        );
        assert_eq!(c.faults, "partition,kill,pause");
    }

    #[test]
    fn the_zoo_is_one_campaign_per_bug_and_a_valid_control() {
        let plan = parse_str("[zoo]\nseeds = 2\ntime_limit = 30\n").unwrap();
        let reliable: Vec<PlantedBug> = PlantedBug::ALL
            .into_iter()
            .filter(|b| b.zoo_recipe().limitation.is_none())
            .collect();
        assert!(!reliable.is_empty());
        assert_eq!(plan.campaigns.len(), reliable.len() + 2);
        for (c, bug) in plan.campaigns.iter().zip(reliable.iter().copied()) {
            assert_eq!(c.name, format!("zoo-{}", bug.name()));
            assert_eq!(c.expected, Expected::Invalid);
            assert_eq!(c.planted_bug, Some(bug));
            assert_eq!(c.repetitions, 2);
            for a in bug.zoo_recipe().args {
                assert!(c.args.iter().any(|x| x == a), "{a} missing in {:?}", c.args);
            }
            assert!(c.args.ends_with(&["--time-limit".into(), "30".into()]));
            assert!(c.args.contains(&"--stop-on-invalid".to_string()));
        }
        let controls = &plan.campaigns[reliable.len()..];
        for (control, bug) in controls.iter().zip(reliable.iter().copied()) {
            assert_eq!(control.name, format!("zoo-control-{}", bug.name()));
            assert_eq!(
                (control.expected, control.planted_bug),
                (Expected::Valid, None)
            );
            assert_eq!(
                control.repetitions, 1,
                "one control per seed, cycling through the recipes"
            );
            let own: Vec<String> = bug
                .zoo_recipe()
                .args
                .iter()
                .map(|a| a.to_string())
                .collect();
            assert!(control.args.starts_with(&own), "{:?}", control.args);
        }
        let many =
            parse_str("[zoo]\nseeds = 3\nbugs = [\"no-checksum\", \"local-reads\"]\n").unwrap();
        let names: Vec<(&str, u32)> = many
            .campaigns
            .iter()
            .map(|c| (c.name.as_str(), c.repetitions))
            .collect();
        assert_eq!(
            names,
            [
                ("zoo-no-checksum", 3),
                ("zoo-local-reads", 3),
                ("zoo-control-no-checksum", 2),
                ("zoo-control-local-reads", 1)
            ]
        );
        let set = parse_str("[zoo]\ncontrol = [\"--nemesis\", \"kill\"]\n").unwrap();
        let c = set.campaigns.last().unwrap();
        assert_eq!(
            (c.name.as_str(), c.faults.as_str()),
            ("zoo-control", "kill")
        );
        let only = parse_str("[zoo]\nbugs = [\"no-checksum\"]\n").unwrap();
        assert_eq!(only.campaigns.len(), 2);
        assert!(
            only.campaigns[1].faults.contains("corrupt"),
            "{}",
            only.campaigns[1].faults
        );
    }

    /// Every mistake is an error naming the campaign and the key.
    #[test]
    fn bad_files_are_errors_naming_campaign_and_key() {
        let cases: &[(&str, Option<&str>, Option<&str>, &str)] = &[
            (
                "[[campaign]]\nname = \"a\"\nnodez = 3\n",
                Some("a"),
                Some("nodez"),
                "unknown key",
            ),
            (
                "[[campaign]]\nname = \"a\"\nworkload = \"regster\"\n",
                Some("a"),
                Some("workload"),
                "regster",
            ),
            (
                "[[campaign]]\nname = \"a\"\nnemesis = \"partition,fire\"\n",
                Some("a"),
                Some("nemesis"),
                "fire",
            ),
            (
                "[[campaign]]\nname = \"a\"\nnodes = 0\n",
                Some("a"),
                Some("nodes"),
                "below 1",
            ),
            (
                "[[campaign]]\nname = \"a\"\nnodes = \"3\"\n",
                Some("a"),
                Some("nodes"),
                "integer",
            ),
            (
                "[[campaign]]\nname = \"a\"\ntime_limit = 0\n",
                Some("a"),
                Some("time_limit"),
                "below 1",
            ),
            (
                "[[campaign]]\nname = \"a\"\nrepetitions = -1\n",
                Some("a"),
                Some("repetitions"),
                "below 1",
            ),
            (
                "[[campaign]]\nname = \"a\"\nplanted_bug = \"lazy\"\n",
                Some("a"),
                Some("planted_bug"),
                "unknown planted bug",
            ),
            (
                "[[campaign]]\nname = \"a\"\nschedule = \"5:explode\"\n",
                Some("a"),
                Some("schedule"),
                "explode",
            ),
            (
                "[[campaign]]\nname = \"a\"\nexpected = \"ok\"\n",
                Some("a"),
                Some("expected"),
                "not valid, invalid or unknown",
            ),
            (
                "[[campaign]]\nname = \"a\"\noptions = [\"--rate\", \"-1\"]\n",
                Some("a"),
                Some("options"),
                "-1",
            ),
            (
                "[[campaign]]\nname = \"a\"\noptions = [\"--store\", \"x\"]\n",
                Some("a"),
                Some("options"),
                "set by the campaign",
            ),
            (
                "[[campaign]]\nworkload = \"register\"\n",
                Some("#1"),
                Some("name"),
                "missing",
            ),
            (
                "[[campaign]]\nname = \"a b\"\n",
                Some("a b"),
                Some("name"),
                "letters",
            ),
            (
                "[[campaign]]\nname = \"a\"\n[[campaign]]\nname = \"a\"\n",
                Some("a"),
                Some("name"),
                "earlier",
            ),
            ("[zoo]\nseeds = 0\n", Some("zoo"), Some("seeds"), "below 1"),
            (
                "[zoo]\nbugs = [\"nope\"]\n",
                Some("zoo"),
                Some("bugs"),
                "unknown planted bug",
            ),
            (
                "[zoo]\ncolour = 1\n",
                Some("zoo"),
                Some("colour"),
                "unknown key",
            ),
            ("campaigns = 1\n", None, Some("campaigns"), "unknown key"),
            ("", None, None, "no campaign"),
            ("[[campaign]\n", None, None, "TOML"),
        ];
        for (text, campaign, key, why) in cases {
            let e = parse_str(text).expect_err(text);
            assert_eq!(e.campaign.as_deref(), *campaign, "{text}: {e}");
            assert_eq!(e.key.as_deref(), *key, "{text}: {e}");
            assert!(
                e.to_string().contains(why) || (*why == "TOML" && e.to_string().contains("t.toml")),
                "{text}: {e} should say {why}"
            );
        }
    }
}
