//! Command-line value parsers: every option is checked while the command
//! line is parsed, so a usage error exits 64 with clap's message before a
//! run folder or anything else is created.
//!
//! [`Names`] parses a name from a registry (deployments, workloads, fault
//! kinds, checker models, formats) and lists the registry's names, with
//! their help, in `--help`.

use clap::builder::{PossibleValue, TypedValueParser};
use clap::error::ErrorKind;
use std::ffi::OsStr;
use std::marker::PhantomData;

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
        Some(Box::new(
            (self.choices)()
                .into_iter()
                .map(|(name, help)| PossibleValue::new(name).help(help)),
        ))
    }
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
