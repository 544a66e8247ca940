//! # harness
//!
//! The `dcf-harness` test runner: deploys a `dcf-node` cluster (local
//! processes in network namespaces, or SSH hosts), drives a workload with
//! a nemesis alongside, records every operation to `history.jsonl`, checks it
//! and writes the run's folder in the store.

pub mod analysis;
pub mod analyze_cmd;
pub mod bench;
pub mod campaign;
pub mod check_cmd;
pub mod child_run;
pub mod cli;
pub mod deploy;
pub mod detect;
pub mod early_stop;
pub mod error;
pub mod exit;
pub mod interpreter;
pub mod log_audit;
pub mod logscan;
pub mod membership;
pub mod minority_rules;
pub mod progress;
pub mod recorder;
pub mod serve_cmd;
pub mod store;
pub mod test_cmd;
pub mod zoo;
pub mod zoo_page;
