//! Deterministic simulation of `StreamCore` clusters under message loss,
//! duplication, reordering, delay, partitions, crashes that lose unsynced
//! writes, and restarts; every invariant is checked after every event.
//!
//! - `DCF_SIM_SEED=<n>` replays one seed (and prints its statistics);
//!   with `DCF_SIM_BUG=<name>`, a seed of the planted-bug zoo;
//! - `DCF_SIM_SEEDS=<count>` runs that many seeds instead of the default 500;
//! - `cargo test -p dcf-core --test sim -- --ignored` runs the long campaign.

#[path = "sim/world.rs"]
mod world;
#[path = "sim/zoo.rs"]
mod zoo;

use std::time::Instant;
use world::{run_seed, run_seeds, HostBug, SimConfig};

const DEFAULT_SEEDS: u64 = 500;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn check_seeds(seeds: Vec<u64>, cfg: &SimConfig) -> world::Stats {
    let started = Instant::now();
    let (failures, stats) = run_seeds(&seeds, cfg);
    eprintln!(
        "sim: {} seeds in {:.1?}: {} events, {} elections, {} committed entries, {} reads, {} crashes, {} runs with membership changes, {} committed membership changes, {} leadership transfers started, {} checkpoints in {} runs, {} compactions in {} runs, {} checkpoint installs in {} runs, {} failures, trace digest {:016x}",
        seeds.len(),
        started.elapsed(),
        stats.events,
        stats.elections,
        stats.committed,
        stats.reads_ok,
        stats.crashes,
        stats.runs_with_changes,
        stats.config_changes,
        stats.transfers,
        stats.checkpoints,
        stats.runs_with_checkpoints,
        stats.compactions,
        stats.runs_with_compactions,
        stats.installs,
        stats.runs_with_installs,
        failures.len(),
        stats.trace_digest
    );
    if !failures.is_empty() {
        let seeds: Vec<u64> = failures.iter().map(|f| f.seed).collect();
        let mut msg = format!("{} of the seeds failed: {seeds:?}\n", failures.len());
        for f in failures.iter().take(3) {
            msg.push_str(&f.to_string());
        }
        panic!("{msg}");
    }
    stats
}

/// The default run: 500 seeds (or `DCF_SIM_SEEDS`), or one replayed seed.
#[test]
fn simulated_clusters_keep_every_invariant() {
    if let Some(seed) = env_u64("DCF_SIM_SEED") {
        // DCF_SIM_BUG=NAME replays a seed of the zoo (steered, with that bug).
        let cfg = match std::env::var("DCF_SIM_BUG") {
            Ok(name) => SimConfig {
                planted: zoo::by_name(&name).expect("a bug of sim/zoo.rs"),
                ..zoo::steered()
            },
            Err(_) => SimConfig::default(),
        };
        match run_seed(seed, &cfg) {
            Ok(st) => eprintln!("seed {seed} passed: {st:?}"),
            Err(f) => panic!("{f}"),
        }
        return;
    }
    let n = env_u64("DCF_SIM_SEEDS").unwrap_or(DEFAULT_SEEDS);
    let stats = check_seeds((0..n).collect(), &SimConfig::default());
    // The run must really exercise checkpoints, compaction and transfers.
    for (what, runs) in [
        ("checkpoints", stats.runs_with_checkpoints),
        ("compactions", stats.runs_with_compactions),
        ("checkpoint installs", stats.runs_with_installs),
    ] {
        assert!(
            n < 100 || runs * 4 >= n,
            "only {runs} of {n} runs had {what}: the simulator no longer covers them"
        );
    }
}

/// A longer campaign: more seeds, longer fault phases, busier nemesis.
#[test]
#[ignore]
fn long_simulation_campaign() {
    let n = env_u64("DCF_SIM_SEEDS").unwrap_or(5000);
    let cfg = SimConfig {
        chaos_ms: 15_000,
        heal_ms: 3000,
        nemesis_gap_ms: 150,
        ..SimConfig::default()
    };
    check_seeds((1_000_000..1_000_000 + n).collect(), &cfg);
}

/// The correct core under the zoo's steered faults, on many seeds (the
/// zoo's control runs only its 100): `cargo test --release -p dcf-core
/// --test sim long_steered_campaign -- --ignored` (5000 seeds, or
/// `DCF_SIM_SEEDS`).
#[test]
#[ignore]
fn long_steered_campaign() {
    let n = env_u64("DCF_SIM_SEEDS").unwrap_or(5000);
    check_seeds((0..n).collect(), &zoo::steered());
}

/// Figure 8 is rare here (a new leader ships its own entry with the older
/// ones): the seeds known to catch `old-term-commit` by its consequence (a
/// committed entry overwritten), with the direct check of the commit rule
/// off, must go on catching it with a safety invariant (309 of the
/// regression configuration, 314 of the zoo's; about 1 in 400 to 1500
/// seeds).
#[test]
fn pinned_seeds_catch_old_term_commit() {
    let (_, planted) = zoo::old_term_commit();
    let regression = SimConfig {
        membership: false,
        snapshots: false,
        planted,
        check_leader_commit_term: false,
        ..SimConfig::default()
    };
    let steered = SimConfig {
        planted,
        check_leader_commit_term: false,
        ..zoo::steered()
    };
    for (seed, cfg) in [(309, regression), (314, steered)] {
        let f = run_seed(seed, &cfg).expect_err("the seed must catch old-term-commit");
        assert_ne!(f.invariant, "liveness after healing", "{f}");
    }
}

/// Seeds of the zoo's steered runs that caught simulator bugs (each fails
/// if its fix is reverted): 4022: a host restarting from a checkpoint
/// beyond its log reset the log but kept an older checkpoint, fell back to
/// it at a later restart and found a hole; 4921: a clock left slow after
/// healing kept the cluster from committing before the liveness deadline.
#[test]
fn steered_regression_seeds() {
    check_seeds(vec![4022, 4921], &zoo::steered());
}

/// Runs seeds of a deliberately broken host until one fails; returns it.
fn first_failure(bug: HostBug, tries: u64) -> Option<Box<world::Failure>> {
    let cfg = SimConfig {
        host_bug: bug,
        nemesis_gap_ms: 120,
        ..SimConfig::default()
    };
    (0..tries).find_map(|s| run_seed(s, &cfg).err())
}

/// The checker notices a host that claims durability before a sync: the
/// crash loses acknowledged entries, which breaks commit safety.
#[test]
fn simulator_catches_a_host_that_acknowledges_unsynced_writes() {
    let f = first_failure(HostBug::EarlyPersist, 400).expect("some seed must fail");
    eprintln!("{f}");
    assert_ne!(f.invariant, "liveness after healing", "{f}");
}

/// Seeds that caught real core bugs (each fails if its fix is reverted):
/// 8, 36, 39: a restart clamped the host's applied index to the durable
/// log and re-applied entries; 57, 211, 497: followers echoed an old
/// leader's heartbeat round and confirmed stale reads. 309 catches the
/// "commit entries of older terms by counting" mutation.
#[test]
fn regression_seeds() {
    let cfg = SimConfig {
        membership: false,
        snapshots: false,
        ..SimConfig::default()
    };
    check_seeds(vec![8, 36, 39, 57, 211, 497, 309], &cfg);
}

/// Seeds that caught membership bugs (each fails if its fix is reverted):
/// 264: a leader that stepped down with its own removal still uncommitted
/// never campaigned again, and the remaining voters could not elect anyone
/// (a node stays eligible until its removal commits); 7, 8: a node
/// switching between LOGGER and an applying role left a gap in the
/// host's state machine (LOGGER role changes are refused now); 1816: voters
/// refused a candidate whose removal was not yet committed.
#[test]
fn membership_regression_seeds() {
    let cfg = SimConfig {
        snapshots: false,
        ..SimConfig::default()
    };
    check_seeds(vec![7, 8, 264, 1816], &cfg);
}

/// Seeds that caught bugs of checkpoints, compaction and elections with
/// them on (each fails if its fix is reverted): 1075: a node that
/// installed a checkpoint over a log it dropped kept that log's
/// configuration entries; 2195: only a LOGGER held the freshest entries
/// (their leader had removed itself) and no voter could be elected;
/// 11629, 14097: a node being added had not yet received the entry making
/// it a voter and refused the only candidate that could send it.
#[test]
fn snapshot_regression_seeds() {
    check_seeds(vec![1075, 2195, 11629, 14097], &SimConfig::default());
}

/// A host that compacts its log without a checkpoint loses committed
/// entries from its state machine at the next restart: the simulator
/// must notice (this is the bug `dcfctl truncate` + restart once had).
#[test]
fn simulator_catches_truncation_without_a_checkpoint() {
    let f = first_failure(HostBug::TruncateWithoutCheckpoint, 200).expect("some seed must fail");
    eprintln!("{f}");
    assert!(
        f.invariant == "applied sequence" || f.invariant.starts_with("state machine"),
        "{f}"
    );
}

/// The planted-bug zoo: every core defect the simulator can exercise
/// (`sim/zoo.rs`) over a fixed range of random seeds with steered faults
/// (`SimConfig::steer`), and the correct core as a control on the same
/// seeds; prints the table (bug, caught k/N, the invariant that fired
/// most) and fails when a bug is caught by fewer seeds than its floor, or
/// the control by any. `DCF_SIM_ZOO_SEEDS=n` runs n seeds per bug (the
/// floors are checked for the default only).
#[test]
fn planted_core_bugs_are_caught_by_random_seeds() {
    let n = env_u64("DCF_SIM_ZOO_SEEDS").unwrap_or(zoo::SEEDS);
    let seeds: Vec<u64> = (0..n).collect();
    let base = zoo::steered();
    let mut rows = vec![zoo::row(
        "(correct core)",
        Default::default(),
        &seeds,
        &base,
    )];
    for (bug, planted) in zoo::core_bugs() {
        rows.push(zoo::row(bug, planted, &seeds, &base));
    }
    let (bug, planted) = zoo::old_term_commit();
    rows.push(zoo::row(bug, planted, &seeds, &base));
    // Without the direct checks. Figure 8 then needs a rare sequence of
    // leaders; it gets more seeds.
    let wide: Vec<u64> = (0..n * zoo::OLD_TERM_COMMIT_SEEDS_FACTOR).collect();
    let (bug, planted, unchecked) = zoo::old_term_commit_unchecked();
    rows.push(zoo::row(bug, planted, &wide, &unchecked));
    let (bug, planted, unchecked) = zoo::vote_not_persisted_unchecked();
    rows.push(zoo::row(bug, planted, &seeds, &unchecked));
    eprintln!("sim zoo: seeds 0..N, steered faults (SimConfig::steer)");
    eprintln!("{}", zoo::HEADER);
    for r in &rows {
        eprintln!("{r}");
    }
    eprintln!("(*) without the simulator's direct check (old-term-commit: a leader's commit moves only to its own term's entries; vote-not-persisted: term and vote are stored at once)");
    eprintln!("old-term-commit: also pinned, seeds 309 (regression config) and 314 (steered)");
    let control = &rows[0];
    assert!(
        control.caught == 0 && control.liveness == 0,
        "the correct core failed: {control}"
    );
    if n != zoo::SEEDS {
        return;
    }
    for r in &rows[1..] {
        let floor = zoo::floor(r.bug);
        assert!(
            r.caught >= floor,
            "{} is caught by only {}/{} seeds (floor {floor}); replay a seed with DCF_SIM_SEED",
            r.bug,
            r.caught,
            r.seeds
        );
    }
}
