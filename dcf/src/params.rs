//! DCF parameters (`dcf_set_param` / `dcf_get_param`) with DCF's names,
//! defaults and ranges (docs/DCF.md lists them). Values are decimal strings as in
//! DCF; unknown names and out-of-range values are rejected with an error
//! that names the parameter and the accepted range.

use std::collections::BTreeMap;

/// Why a parameter could not be set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("unknown parameter {0:?} (see `dcfctl get-param --help` for the list)")]
    Unknown(String),
    #[error("bad value {value:?} for {name}: {expected}")]
    BadValue {
        name: &'static str,
        value: String,
        expected: String,
    },
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// An integer in an inclusive range.
    Int { min: u64, max: u64 },
    /// One of a list of integers.
    OneOf(&'static [u64]),
    /// Any string.
    Text,
    /// `|`-joined log levels, or NONE.
    LogLevel,
    /// Comma-separated group ids (possibly empty).
    Groups,
}

struct Spec {
    name: &'static str,
    default: &'static str,
    kind: Kind,
    doc: &'static str,
}

const LOG_LEVELS: &[&str] = &[
    "RUN_ERR",
    "RUN_WAR",
    "RUN_INF",
    "DEBUG_ERR",
    "DEBUG_WAR",
    "DEBUG_INF",
    "MEC",
    "OPER",
    "TRACE",
    "PROFILE",
];

const SPECS: &[Spec] = &[
    Spec {
        name: "ELECTION_TIMEOUT",
        default: "3000",
        kind: Kind::Int {
            min: 10,
            max: 600_000,
        },
        doc: "election timeout in ms",
    },
    Spec {
        name: "HEARTBEAT_INTERVAL",
        default: "1000",
        kind: Kind::Int {
            min: 1,
            max: 600_000,
        },
        doc: "heartbeat interval in ms",
    },
    Spec {
        name: "AUTO_ELC_PRIORITY_EN",
        default: "1",
        kind: Kind::OneOf(&[0, 1]),
        doc: "hand leadership to the highest-priority node",
    },
    Spec {
        name: "ELECTION_SWITCH_THRESHOLD",
        default: "0",
        kind: Kind::Int {
            min: 0,
            max: 600_000,
        },
        doc: "s a follower waits after it starts following before it may campaign",
    },
    Spec {
        name: "RUN_MODE",
        default: "0",
        kind: Kind::OneOf(&[0, 1, 2]),
        doc: "0 AUTO, 1 MANUAL, 2 DISABLE",
    },
    Spec {
        name: "INSTANCE_NAME",
        default: "",
        kind: Kind::Text,
        doc: "instance name",
    },
    Spec {
        name: "DATA_PATH",
        default: "",
        kind: Kind::Text,
        doc: "data directory",
    },
    Spec {
        name: "LOG_PATH",
        default: "",
        kind: Kind::Text,
        doc: "log directory",
    },
    Spec {
        name: "LOG_LEVEL",
        default: "RUN_ERR|RUN_WAR|DEBUG_ERR|OPER",
        kind: Kind::LogLevel,
        doc: "|-joined log levels or NONE",
    },
    Spec {
        name: "LOG_BACKUP_FILE_COUNT",
        default: "10",
        kind: Kind::Int { min: 1, max: 100 },
        doc: "rotated log files kept",
    },
    Spec {
        name: "MAX_LOG_FILE_SIZE",
        default: "10",
        kind: Kind::Int { min: 1, max: 1000 },
        doc: "MB per log file",
    },
    Spec {
        name: "LOG_FILE_PERMISSION",
        default: "600",
        kind: Kind::OneOf(&[600, 640]),
        doc: "log file mode",
    },
    Spec {
        name: "LOG_PATH_PERMISSION",
        default: "700",
        kind: Kind::OneOf(&[700, 750]),
        doc: "log directory mode",
    },
    Spec {
        name: "MEC_AGENT_THREAD_NUM",
        default: "10",
        kind: Kind::Int { min: 1, max: 1000 },
        doc: "network agent threads",
    },
    Spec {
        name: "MEC_REACTOR_THREAD_NUM",
        default: "1",
        kind: Kind::Int { min: 1, max: 100 },
        doc: "network reactor threads",
    },
    Spec {
        name: "MEC_CHANNEL_NUM",
        default: "1",
        kind: Kind::Int { min: 1, max: 64 },
        doc: "connections per peer",
    },
    Spec {
        name: "MEM_POOL_INIT_SIZE",
        default: "32",
        kind: Kind::Int {
            min: 32,
            max: u32::MAX as u64,
        },
        doc: "MB",
    },
    Spec {
        name: "MEM_POOL_MAX_SIZE",
        default: "256",
        kind: Kind::Int {
            min: 32,
            max: u32::MAX as u64,
        },
        doc: "MB; a write may use a quarter",
    },
    Spec {
        name: "STG_POOL_INIT_SIZE",
        default: "32",
        kind: Kind::Int {
            min: 32,
            max: u32::MAX as u64,
        },
        doc: "MB",
    },
    Spec {
        name: "STG_POOL_MAX_SIZE",
        default: "200",
        kind: Kind::Int {
            min: 32,
            max: u32::MAX as u64,
        },
        doc: "MB",
    },
    Spec {
        name: "MEC_POOL_MAX_SIZE",
        default: "100",
        kind: Kind::Int {
            min: 32,
            max: u32::MAX as u64,
        },
        doc: "MB",
    },
    Spec {
        name: "COMPRESS_ALGORITHM",
        default: "0",
        kind: Kind::OneOf(&[0, 1, 2]),
        doc: "0 none, 1 ZSTD, 2 LZ4",
    },
    Spec {
        name: "COMPRESS_LEVEL",
        default: "1",
        kind: Kind::Int { min: 1, max: 22 },
        doc: "1..22 (LZ4 at most 9)",
    },
    Spec {
        name: "SOCKET_TIMEOUT",
        default: "5000",
        kind: Kind::Int {
            min: 10,
            max: 600_000,
        },
        doc: "ms",
    },
    Spec {
        name: "CONNECT_TIMEOUT",
        default: "60000",
        kind: Kind::Int {
            min: 10,
            max: 600_000,
        },
        doc: "ms",
    },
    Spec {
        name: "REP_APPEND_THREAD_NUM",
        default: "2",
        kind: Kind::Int { min: 1, max: 1000 },
        doc: "append threads",
    },
    Spec {
        name: "MEC_FRAGMENT_SIZE",
        default: "64",
        kind: Kind::Int {
            min: 32,
            max: 10240,
        },
        doc: "KB",
    },
    Spec {
        name: "MEC_BATCH_SIZE",
        default: "0",
        kind: Kind::Int { min: 0, max: 1024 },
        doc: "entries per message; 0 = default and commit-latency flow control",
    },
    Spec {
        name: "FLOW_CONTROL_CPU_THRESHOLD",
        default: "100",
        kind: Kind::Int {
            min: 0,
            max: u32::MAX as u64,
        },
        doc: "%",
    },
    Spec {
        name: "FLOW_CONTROL_NET_QUEUE_MESSAGE_NUM_THRESHOLD",
        default: "1024",
        kind: Kind::Int {
            min: 0,
            max: u32::MAX as u64,
        },
        doc: "messages",
    },
    Spec {
        name: "FLOW_CONTROL_DISK_RAWAIT_THRESHOLD",
        default: "100000",
        kind: Kind::Int {
            min: 0,
            max: u32::MAX as u64,
        },
        doc: "µs",
    },
    Spec {
        name: "SSL_CA",
        default: "",
        kind: Kind::Text,
        doc: "CA certificate path",
    },
    Spec {
        name: "SSL_KEY",
        default: "",
        kind: Kind::Text,
        doc: "private key path",
    },
    Spec {
        name: "SSL_CRL",
        default: "",
        kind: Kind::Text,
        doc: "CRL path",
    },
    Spec {
        name: "SSL_CERT",
        default: "",
        kind: Kind::Text,
        doc: "certificate path",
    },
    Spec {
        name: "SSL_CIPHER",
        default: "",
        kind: Kind::Text,
        doc: "cipher list",
    },
    Spec {
        name: "DATA_FILE_SIZE",
        default: "500",
        kind: Kind::Int { min: 10, max: 2048 },
        doc: "MB per log segment",
    },
    Spec {
        name: "DN_FLOW_CONTROL_RTO",
        default: "0",
        kind: Kind::Int {
            min: 0,
            max: u32::MAX as u64,
        },
        doc: "stored for the host",
    },
    Spec {
        name: "DN_FLOW_CONTROL_RPO",
        default: "0",
        kind: Kind::Int {
            min: 0,
            max: u32::MAX as u64,
        },
        doc: "stored for the host",
    },
    Spec {
        name: "MAJORITY_GROUPS",
        default: "",
        kind: Kind::Groups,
        doc: "comma-separated group ids",
    },
];

/// The parameter values of one node.
#[derive(Clone, Debug)]
pub struct Params {
    values: BTreeMap<&'static str, String>,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            values: SPECS
                .iter()
                .map(|s| (s.name, s.default.to_string()))
                .collect(),
        }
    }
}

fn spec(name: &str) -> Option<&'static Spec> {
    let upper = name.trim().to_ascii_uppercase();
    SPECS.iter().find(|s| s.name == upper)
}

fn validate(s: &'static Spec, value: &str) -> Result<String, ParamError> {
    let bad = |expected: String| ParamError::BadValue {
        name: s.name,
        value: value.to_string(),
        expected,
    };
    let v = value.trim();
    match s.kind {
        Kind::Int { min, max } => {
            let n: u64 = v
                .parse()
                .map_err(|_| bad(format!("a decimal integer in {min}..={max}")))?;
            if n < min || n > max {
                return Err(bad(format!("a decimal integer in {min}..={max}")));
            }
            Ok(n.to_string())
        }
        Kind::OneOf(allowed) => {
            let n: u64 = v.parse().map_err(|_| bad(format!("one of {allowed:?}")))?;
            if !allowed.contains(&n) {
                return Err(bad(format!("one of {allowed:?}")));
            }
            Ok(n.to_string())
        }
        Kind::Text => Ok(v.to_string()),
        Kind::LogLevel => {
            if v.eq_ignore_ascii_case("NONE") {
                return Ok("NONE".into());
            }
            let parts: Vec<String> = v
                .split('|')
                .map(|p| p.trim().to_ascii_uppercase())
                .collect();
            if parts.iter().any(|p| !LOG_LEVELS.contains(&p.as_str())) {
                return Err(bad(format!(
                    "NONE or |-joined levels of {}",
                    LOG_LEVELS.join(" ")
                )));
            }
            Ok(parts.join("|"))
        }
        Kind::Groups => {
            if v.is_empty() {
                return Ok(String::new());
            }
            let groups: Result<Vec<u32>, _> =
                v.split(',').map(|g| g.trim().parse::<u32>()).collect();
            groups
                .map(|g| {
                    g.iter()
                        .map(|x| x.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .map_err(|_| bad("comma-separated group ids".into()))
        }
    }
}

impl Params {
    /// Sets a parameter by its DCF name (case-insensitive).
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), ParamError> {
        let s = spec(name).ok_or_else(|| ParamError::Unknown(name.to_string()))?;
        let v = validate(s, value)?;
        if s.name == "COMPRESS_LEVEL" && self.get_u64("COMPRESS_ALGORITHM") == 2 {
            let n: u64 = v.parse().unwrap_or(0);
            if n > 9 {
                return Err(ParamError::BadValue {
                    name: s.name,
                    value: value.to_string(),
                    expected: "1..=9 with LZ4".into(),
                });
            }
        }
        self.values.insert(s.name, v);
        Ok(())
    }

    /// Reads a parameter by its DCF name.
    pub fn get(&self, name: &str) -> Result<String, ParamError> {
        let s = spec(name).ok_or_else(|| ParamError::Unknown(name.to_string()))?;
        Ok(self.values.get(s.name).cloned().unwrap_or_default())
    }

    /// A numeric parameter (0 if it is not numeric).
    pub fn get_u64(&self, name: &str) -> u64 {
        self.get(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// MAJORITY_GROUPS as a list.
    pub fn majority_groups(&self) -> Vec<u32> {
        self.get("MAJORITY_GROUPS")
            .unwrap_or_default()
            .split(',')
            .filter_map(|g| g.trim().parse().ok())
            .collect()
    }

    /// Every parameter name with its documentation, for `--help` texts.
    pub fn describe() -> Vec<(&'static str, &'static str, &'static str)> {
        SPECS.iter().map(|s| (s.name, s.default, s.doc)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_names() {
        let p = Params::default();
        assert_eq!(p.get("election_timeout").unwrap(), "3000");
        assert_eq!(p.get_u64("HEARTBEAT_INTERVAL"), 1000);
        assert_eq!(
            p.get("LOG_LEVEL").unwrap(),
            "RUN_ERR|RUN_WAR|DEBUG_ERR|OPER"
        );
    }

    #[test]
    fn rejects_unknown_and_out_of_range() {
        let mut p = Params::default();
        assert_eq!(
            p.set("NO_SUCH", "1"),
            Err(ParamError::Unknown("NO_SUCH".into()))
        );
        let e = p.set("RUN_MODE", "3").unwrap_err();
        assert!(e.to_string().contains("RUN_MODE"), "{e}");
        assert!(p.set("ELECTION_TIMEOUT", "abc").is_err());
        assert!(p.set("ELECTION_TIMEOUT", "5").is_err());
        assert!(p.set("LOG_LEVEL", "RUN_ERR|LOUD").is_err());
        p.set("COMPRESS_ALGORITHM", "2").unwrap();
        assert!(p.set("COMPRESS_LEVEL", "12").is_err());
        p.set("MAJORITY_GROUPS", "1, 2").unwrap();
        assert_eq!(p.majority_groups(), vec![1, 2]);
        p.set("election_timeout", "500").unwrap();
        assert_eq!(p.get_u64("ELECTION_TIMEOUT"), 500);
    }
}
