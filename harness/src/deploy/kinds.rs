//! The deployment kinds `--deploy` chooses from, in one list ([`KINDS`]).
//!
//! A kind is one module that provides a [`DeploymentKind`]: the `--deploy`
//! values that choose it, its own command-line options (an SSH deployment's
//! `--hosts`, say), how to build a [`Deployment`] and how to undo what its
//! resource file lists. Adding a kind is that module plus one line in
//! [`KINDS`]; the harness drives every kind through `Arc<dyn Deployment>`.

use super::resources::CleanupReport;
use super::{local, ssh, ClusterSpec, DeployError, Deployment};
use clap::parser::ValueSource;
use clap::{Arg, ArgMatches, Command};
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// Every deployment kind. Names and `--deploy` values must be unique.
pub static KINDS: &[&DeploymentKind] = &[&local::KIND, &ssh::KIND];

/// A `--deploy` value and what it means.
#[derive(Debug)]
pub struct Choice {
    /// The value, e.g. `loopback`.
    pub value: &'static str,
    /// One line for `--help`.
    pub help: &'static str,
}

/// Makes a deployment of a spec for a `--deploy` value with the kind's
/// options; nothing is created until [`Deployment::setup`].
pub type BuildFn = fn(
    choice: &str,
    spec: ClusterSpec,
    options: &KindOptions,
) -> Result<Arc<dyn Deployment>, DeployError>;

/// One kind of deployment.
#[derive(Debug)]
pub struct DeploymentKind {
    /// Its name in the resource file and in `results.json`, e.g. `local`.
    pub name: &'static str,
    /// The `--deploy` values that choose it.
    pub choices: &'static [Choice],
    /// The options of `dcf-harness test` this kind adds (beyond `--deploy`);
    /// their values reach [`DeploymentKind::build`] as [`KindOptions`].
    pub args: fn() -> Vec<Arg>,
    /// Checks the kind's options together (one needs another, say) while
    /// the command line is parsed, so a usage error creates nothing.
    pub validate: fn(&KindOptions) -> Result<(), String>,
    /// A deployment of `spec` for the chosen `--deploy` value. Nothing is
    /// created until [`Deployment::setup`].
    pub build: BuildFn,
    /// Removes what the resource file at `file` (written by a deployment of
    /// this kind) lists and is still there.
    pub cleanup: fn(file: &Path) -> Result<CleanupReport, DeployError>,
}

/// The kind named `name`.
pub fn by_name(name: &str) -> Option<&'static DeploymentKind> {
    KINDS.iter().copied().find(|k| k.name == name)
}

/// Every kind's name.
pub fn names() -> Vec<&'static str> {
    KINDS.iter().map(|k| k.name).collect()
}

/// Every `--deploy` value with its help, in registration order.
pub fn choices() -> impl Iterator<Item = &'static Choice> {
    KINDS.iter().flat_map(|k| k.choices.iter())
}

/// A parsed `--deploy` value: the kind and the value that chose it.
#[derive(Debug, Clone, Copy)]
pub struct DeployChoice {
    pub kind: &'static DeploymentKind,
    pub value: &'static str,
}

impl DeployChoice {
    /// Checks the chosen kind's options together.
    pub fn validate(&self, options: &KindOptions) -> Result<(), String> {
        (self.kind.validate)(options)
    }

    /// Builds the chosen deployment of `spec`.
    pub fn build(
        &self,
        spec: ClusterSpec,
        options: &KindOptions,
    ) -> Result<Arc<dyn Deployment>, DeployError> {
        (self.kind.build)(self.value, spec, options)
    }
}

impl PartialEq for DeployChoice {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl std::str::FromStr for DeployChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        KINDS
            .iter()
            .flat_map(|k| k.choices.iter().map(move |c| (*k, c)))
            .find(|(_, c)| c.value == s)
            .map(|(kind, c)| DeployChoice {
                kind,
                value: c.value,
            })
            .ok_or_else(|| {
                let values: Vec<&str> = choices().map(|c| c.value).collect();
                format!(
                    "unknown deployment {s:?} (expected one of {})",
                    values.join(", ")
                )
            })
    }
}

impl std::fmt::Display for DeployChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.value)
    }
}

impl Serialize for DeployChoice {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.value)
    }
}

/// The values of the options the deployment kinds add to `dcf-harness
/// test`, by option id, as typed (values the user did not give are left
/// out). Recorded in `test.json` with the other options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct KindOptions(BTreeMap<String, Vec<String>>);

impl KindOptions {
    /// The option's (first) value, if given.
    pub fn get(&self, id: &str) -> Option<&str> {
        self.0.get(id).and_then(|v| v.first()).map(String::as_str)
    }

    /// Every value of a repeatable option.
    pub fn get_all(&self, id: &str) -> &[String] {
        self.0.get(id).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Adds the options of `kinds` to `cmd`.
    pub fn augment(cmd: Command, kinds: &[&DeploymentKind]) -> Command {
        kinds
            .iter()
            .flat_map(|k| (k.args)())
            .fold(cmd, Command::arg)
    }

    /// The values of `kinds`' options in `matches`.
    pub fn from_matches(matches: &ArgMatches, kinds: &[&DeploymentKind]) -> KindOptions {
        let mut out = BTreeMap::new();
        for arg in kinds.iter().flat_map(|k| (k.args)()) {
            let id = arg.get_id().as_str();
            if matches.value_source(id) != Some(ValueSource::CommandLine) {
                continue;
            }
            if let Some(raw) = matches.get_raw(id) {
                let values = raw.map(|v| v.to_string_lossy().into_owned()).collect();
                out.insert(id.to_string(), values);
            }
        }
        KindOptions(out)
    }
}

impl clap::Args for KindOptions {
    fn augment_args(cmd: Command) -> Command {
        KindOptions::augment(cmd, KINDS)
    }
    fn augment_args_for_update(cmd: Command) -> Command {
        KindOptions::augment(cmd, KINDS)
    }
}

impl clap::FromArgMatches for KindOptions {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        Ok(KindOptions::from_matches(matches, KINDS))
    }
    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = KindOptions::from_matches(matches, KINDS);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_values_are_unique_and_parse_back() {
        let mut names = names();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), KINDS.len(), "duplicate kind names");
        let values: Vec<&str> = choices().map(|c| c.value).collect();
        for v in &values {
            let c: DeployChoice = v.parse().unwrap();
            assert_eq!(c.value, *v);
            assert_eq!(values.iter().filter(|x| *x == v).count(), 1, "{v} twice");
        }
        assert_eq!(
            "loopback".parse::<DeployChoice>().unwrap().kind.name,
            "local"
        );
        let e = "cloud".parse::<DeployChoice>().unwrap_err();
        assert!(
            e.contains("\"cloud\"") && e.contains("auto, namespaces, loopback"),
            "{e}"
        );
    }

    fn refuse(
        _: &str,
        _: ClusterSpec,
        o: &KindOptions,
    ) -> Result<Arc<dyn Deployment>, DeployError> {
        Err(DeployError::Other(format!(
            "hosts {:?}",
            o.get_all("hosts")
        )))
    }

    fn nothing(_: &Path) -> Result<CleanupReport, DeployError> {
        Ok(CleanupReport::default())
    }

    static REMOTE: DeploymentKind = DeploymentKind {
        name: "remote",
        choices: &[Choice {
            value: "remote",
            help: "hosts somewhere else",
        }],
        args: || {
            vec![
                Arg::new("hosts")
                    .long("hosts")
                    .action(clap::ArgAction::Append),
                Arg::new("key").long("key").default_value("id"),
            ]
        },
        validate: |_| Ok(()),
        build: refuse,
        cleanup: nothing,
    };

    /// A kind's own options reach its build, as given on the command line.
    #[test]
    fn a_kinds_options_reach_its_build() {
        let cmd = KindOptions::augment(Command::new("test"), &[&REMOTE]);
        let m = cmd
            .try_get_matches_from(["test", "--hosts", "a", "--hosts", "b"])
            .unwrap();
        let opts = KindOptions::from_matches(&m, &[&REMOTE]);
        assert_eq!(opts.get_all("hosts"), ["a", "b"]);
        assert_eq!(opts.get("key"), None, "defaults are the kind's to apply");
        let choice = DeployChoice {
            kind: &REMOTE,
            value: "remote",
        };
        let spec = ClusterSpec::new(1, "/bin/true", "/tmp/x");
        let Err(e) = choice.build(spec, &opts) else {
            panic!("the test kind refuses to build")
        };
        assert_eq!(e.to_string(), r#"hosts ["a", "b"]"#);
        assert_eq!(
            serde_json::to_value(&opts).unwrap(),
            serde_json::json!({"hosts": ["a", "b"]})
        );
    }
}
