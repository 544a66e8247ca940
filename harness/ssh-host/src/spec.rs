//! Which host to reach and as whom: `user@host[:port]` on the command line,
//! or a hosts file with one host per line.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// One SSH host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostSpec {
    /// The login user (default: the `USER` of the harness, else `root`).
    pub user: String,
    /// A host name or IP address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// A private key for this host only (else the run's key, else the agent).
    pub key: Option<PathBuf>,
}

impl HostSpec {
    /// `host:port`, bracketing IPv6 addresses, for connecting.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for HostSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.user, self.address())
    }
}

fn default_user() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "root".into())
}

impl FromStr for HostSpec {
    type Err = String;
    /// `[user@]host[:port]`; IPv6 as `[addr]` or `[addr]:port`.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty host".into());
        }
        let (user, rest) = match s.rsplit_once('@') {
            Some((u, r)) if !u.is_empty() => (u.to_string(), r),
            Some(_) => return Err(format!("{s:?}: empty user before '@'")),
            None => (default_user(), s),
        };
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{s:?}: missing ']' after an IPv6 address"))?;
            match after {
                "" => (h.to_string(), 22),
                p => (
                    h.to_string(),
                    parse_port(
                        p.strip_prefix(':')
                            .ok_or_else(|| format!("{s:?}: expected ':port' after ']'"))?,
                        s,
                    )?,
                ),
            }
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), parse_port(p, s)?),
                None => (rest.to_string(), 22),
            }
        };
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(format!("{s:?}: bad host name"));
        }
        Ok(HostSpec {
            user,
            host,
            port,
            key: None,
        })
    }
}

fn parse_port(p: &str, whole: &str) -> Result<u16, String> {
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("{whole:?}: port {p:?} is not in 1..65535")),
        Ok(n) => Ok(n),
    }
}

/// Parses a hosts file: one host per line as `[user@]host[:port]`,
/// optionally followed by `key=PATH`; blank lines and `#` comments are
/// skipped. Errors name the line.
pub fn parse_hosts_file(text: &str) -> Result<Vec<HostSpec>, String> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut fields = line.split_whitespace();
        let mut spec: HostSpec = fields
            .next()
            .expect("non-empty line")
            .parse()
            .map_err(|e| format!("line {}: {e}", i + 1))?;
        for f in fields {
            match f.split_once('=') {
                Some(("key", path)) if !path.is_empty() => spec.key = Some(PathBuf::from(path)),
                _ => {
                    return Err(format!(
                        "line {}: unknown field {f:?} (expected key=PATH)",
                        i + 1
                    ))
                }
            }
        }
        out.push(spec);
    }
    if out.is_empty() {
        return Err("no host in the file".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_and_names_bad_ones() {
        let h: HostSpec = "alice@db1.example:2222".parse().unwrap();
        assert_eq!(
            (h.user.as_str(), h.host.as_str(), h.port),
            ("alice", "db1.example", 2222)
        );
        let h: HostSpec = "root@[fd00::5]:23".parse().unwrap();
        assert_eq!((h.host.as_str(), h.port), ("fd00::5", 23));
        assert_eq!(h.address(), "[fd00::5]:23");
        let h: HostSpec = "10.0.0.7".parse().unwrap();
        assert_eq!((h.host.as_str(), h.port), ("10.0.0.7", 22));
        for bad in [
            "",
            "@host",
            "host:0",
            "host:99999",
            "host:ssh",
            "[::1",
            "a b",
        ] {
            assert!(bad.parse::<HostSpec>().is_err(), "{bad:?}");
        }
        let file = "# test hosts\nu@h1:2201 key=/k1\n\n  u@h2  # second\n";
        let hs = parse_hosts_file(file).unwrap();
        assert_eq!(hs.len(), 2);
        assert_eq!(hs[0].key.as_deref(), Some(std::path::Path::new("/k1")));
        assert_eq!(hs[1].port, 22);
        let e = parse_hosts_file("u@h1\nu@h2 colour=red\n").unwrap_err();
        assert!(e.starts_with("line 2:"), "{e}");
        assert!(parse_hosts_file("# nothing\n").is_err());
    }
}
