//! What `--nemesis` lists: fault kinds whose argument the randomised
//! schedule picks (`partition`), or faults with their argument pinned
//! (`partition:leader`), so a run can aim the random schedule at the one
//! shape of a fault that exposes a bug without writing a fixed timeline.

use crate::faults::{Fault, FaultKind};
use rand::rngs::StdRng;
use std::fmt;
use std::str::FromStr;

/// One entry of the randomised schedule's menu.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultChoice {
    /// This kind, with an argument chosen at random each time.
    Any(FaultKind),
    /// Exactly this fault every time.
    Exactly(Fault),
}

impl FaultChoice {
    /// The kind of fault it starts.
    pub fn kind(self) -> FaultKind {
        match self {
            FaultChoice::Any(k) => k,
            FaultChoice::Exactly(f) => f.kind(),
        }
    }

    /// The fault to start now.
    pub fn pick(self, rng: &mut StdRng) -> Fault {
        match self {
            FaultChoice::Any(k) => k.random_fault(rng),
            FaultChoice::Exactly(f) => f,
        }
    }
}

impl From<FaultKind> for FaultChoice {
    fn from(k: FaultKind) -> Self {
        FaultChoice::Any(k)
    }
}

impl From<Fault> for FaultChoice {
    fn from(f: Fault) -> Self {
        FaultChoice::Exactly(f)
    }
}

impl fmt::Display for FaultChoice {
    /// `partition` or `partition:leader`, as on the command line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultChoice::Any(k) => write!(f, "{k}"),
            FaultChoice::Exactly(fault) if fault.kind().arg().is_some() => {
                write!(f, "{}:{}", fault.kind(), fault.arg_name())
            }
            FaultChoice::Exactly(fault) => write!(f, "{}", fault.kind()),
        }
    }
}

impl FromStr for FaultChoice {
    type Err = String;
    /// `KIND` or `KIND:ARG` (the argument as in a schedule).
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, arg) = match s.split_once(':') {
            Some((n, a)) => (n.trim(), Some(a.trim())),
            None => (s.trim(), None),
        };
        let kind: FaultKind = name.parse()?;
        match (arg, kind.arg()) {
            (None, _) => Ok(FaultChoice::Any(kind)),
            (Some(a), Some(_)) => kind
                .parse_fault(a)
                .map(FaultChoice::Exactly)
                .map_err(|e| format!("{kind}:{a}: {e}")),
            (Some(a), None) => Err(format!("{kind} takes no argument, got {a:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Topology;
    use rand::SeedableRng;

    #[test]
    fn kinds_and_pinned_faults_parse_and_print_back() {
        let any: FaultChoice = "partition".parse().unwrap();
        assert_eq!(any, FaultChoice::Any(FaultKind::Partition));
        let pinned: FaultChoice = " partition : leader ".parse().unwrap();
        assert_eq!(
            pinned,
            FaultChoice::Exactly(Fault::Partition(Topology::Leader))
        );
        assert_eq!(pinned.to_string(), "partition:leader");
        assert_eq!(any.to_string(), "partition");
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..20 {
            assert_eq!(pinned.pick(&mut rng), Fault::Partition(Topology::Leader));
            assert_eq!(any.pick(&mut rng).kind(), FaultKind::Partition);
        }
        for k in FaultKind::ALL {
            let c: FaultChoice = k.name().parse().unwrap();
            assert_eq!(c.to_string().parse::<FaultChoice>(), Ok(c));
        }
        let e = "partition:diagonal".parse::<FaultChoice>().unwrap_err();
        assert!(e.contains("partition:diagonal"), "{e}");
        let e = "minority:x".parse::<FaultChoice>().unwrap_err();
        assert!(e.contains("takes no argument"), "{e}");
        assert!("bogus:leader".parse::<FaultChoice>().is_err());
    }
}
