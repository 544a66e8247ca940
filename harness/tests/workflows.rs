//! The GitHub workflows and the nightly campaign file are checked here,
//! since nothing else would notice a broken one before the night it
//! should have run: both YAML files parse, trigger when they should, run
//! what they should, and the nightly uploads and publishes the files the
//! campaign writes. `ci/nightly.toml` parses as a campaign file.

use harness::campaign::{plan, summary};
use std::path::{Path, PathBuf};
use yaml_rust2::{Yaml, YamlLoader};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn load(rel: &str) -> Yaml {
    let path = repo().join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let mut docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{rel}: {e}"));
    assert_eq!(docs.len(), 1, "{rel}: one YAML document");
    docs.remove(0)
}

/// The workflow's only job.
fn job(w: &Yaml) -> &Yaml {
    let jobs = w["jobs"].as_hash().expect("jobs");
    assert_eq!(jobs.len(), 1, "one job");
    jobs.values().next().unwrap()
}

fn steps(job: &Yaml) -> &[Yaml] {
    job["steps"].as_vec().expect("steps").as_slice()
}

/// The step whose `run` contains `needle`.
fn run_step<'a>(job: &'a Yaml, needle: &str) -> &'a Yaml {
    steps(job)
        .iter()
        .find(|s| s["run"].as_str().is_some_and(|r| r.contains(needle)))
        .unwrap_or_else(|| panic!("no step runs {needle:?}"))
}

/// The steps that use the action `name` (any version).
fn uses<'a>(job: &'a Yaml, name: &str) -> Vec<&'a Yaml> {
    steps(job)
        .iter()
        .filter(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with(&format!("{name}@")))
        })
        .collect()
}

fn is_always(step: &Yaml) -> bool {
    step["if"].as_str().is_some_and(|c| c.contains("always()"))
}

#[test]
fn ci_workflow_runs_ci_run_on_every_push_and_pull_request() {
    let w = load(".github/workflows/ci.yml");
    let on = &w["on"];
    assert!(
        on.as_hash().is_some(),
        "`on` must be a mapping (a YAML 1.1 reader would take it for true): {on:?}"
    );
    for trigger in ["push", "pull_request"] {
        assert!(
            on.as_hash()
                .unwrap()
                .contains_key(&Yaml::String(trigger.into())),
            "ci.yml does not run on {trigger}"
        );
        assert!(
            on[trigger]["branches"].is_badvalue(),
            "ci.yml must run on every {trigger}, not some branches"
        );
    }
    let job = job(&w);
    assert!(job["runs-on"].as_str().unwrap().starts_with("ubuntu"));
    let step = run_step(job, ".ci/run");
    assert!(
        step["run"].as_str().unwrap().starts_with("sudo "),
        "the tests need root"
    );
    assert!(!uses(job, "actions/checkout").is_empty());
}

#[test]
fn nightly_workflow_runs_the_campaign_and_publishes_its_files() {
    let w = load(".github/workflows/nightly.yml");
    let on = &w["on"];
    let cron = on["schedule"].as_vec().expect("on.schedule")[0]["cron"]
        .as_str()
        .expect("a cron line");
    assert_eq!(
        cron.split_whitespace().count(),
        5,
        "cron needs 5 fields: {cron}"
    );
    assert!(
        on.as_hash()
            .unwrap()
            .contains_key(&Yaml::String("workflow_dispatch".into())),
        "the nightly must be startable by hand"
    );
    let job = job(&w);
    assert!(job["runs-on"].as_str().unwrap().starts_with("ubuntu"));

    // It installs what .ci/run installs: the same script.
    let install = run_step(job, ".ci/install");
    assert!(install["run"].as_str().unwrap().starts_with("sudo "));
    let ci_run = std::fs::read_to_string(repo().join(".ci/run")).unwrap();
    assert!(
        ci_run.lines().any(|l| l.trim() == "bash .ci/install"),
        ".ci/run must install through .ci/install"
    );

    run_step(job, "cargo build --release");
    // The campaign, as root, into the store named in the workflow's env.
    let store = w["env"]["STORE"].as_str().expect("env.STORE");
    let campaign = run_step(job, "dcf-harness campaign ci/nightly.toml")["run"]
        .as_str()
        .unwrap();
    assert!(
        campaign.starts_with("sudo "),
        "faults need root: {campaign}"
    );
    assert!(campaign.contains("--budget"), "{campaign}");
    assert!(
        campaign.contains("--store \"$STORE\"") || campaign.contains(&format!("--store {store}")),
        "{campaign}"
    );
    assert!(repo().join("ci/nightly.toml").is_file());

    // Both uploads run even when the campaign failed, and carry the
    // campaign folder and the whole store.
    let uploads = uses(job, "actions/upload-artifact");
    let paths: Vec<&str> = uploads
        .iter()
        .map(|s| s["with"]["path"].as_str().expect("upload path"))
        .collect();
    assert!(
        uploads.iter().all(|s| is_always(s)),
        "uploads need if: always()"
    );
    let campaign_dir = format!("{store}/campaign-*");
    assert!(
        paths
            .iter()
            .any(|p| p.trim_end_matches('/') == campaign_dir),
        "no upload of {campaign_dir}: {paths:?}"
    );
    assert!(
        paths.iter().any(|p| p.trim_end_matches('/') == store),
        "no upload of the store {store}: {paths:?}"
    );

    // The JUnit file the campaign writes is published as the test result.
    let publish = uses(job, "mikepenz/action-junit-report");
    assert_eq!(publish.len(), 1, "one JUnit publish step");
    assert!(is_always(publish[0]));
    assert_eq!(
        publish[0]["with"]["report_paths"].as_str(),
        Some(format!("{campaign_dir}/{}", summary::JUNIT_XML).as_str())
    );
    assert_eq!(
        w["permissions"]["checks"].as_str(),
        Some("write"),
        "publishing a check needs checks: write"
    );
}

#[test]
fn nightly_campaign_file_covers_every_fault_kind_and_the_zoo() {
    let plan = plan::load(&repo().join("ci/nightly.toml")).expect("ci/nightly.toml");
    for kind in nemesis::FaultKind::ALL {
        assert!(
            plan.campaigns.iter().any(|c| c.planted_bug.is_none()
                && c.expected == plan::Expected::Valid
                && c.faults.split(',').any(|k| k == kind.name())),
            "no campaign runs the correct node against {}",
            kind.name()
        );
    }
    // etcd: linearizable reads valid, serializable reads caught.
    for (name, expected) in [
        ("etcd-linearizable", plan::Expected::Valid),
        ("etcd-serializable-reads", plan::Expected::Invalid),
    ] {
        assert!(
            plan.campaigns
                .iter()
                .any(|c| c.name == name && c.expected == expected),
            "no {name} campaign expecting {expected:?}"
        );
    }
    // Bugs today's faults cannot catch reliably (their recipe says why)
    // stay out of the nightly unless named, so it does not fail on them.
    for bug in dcf::planted::PlantedBug::ALL {
        if bug.zoo_recipe().limitation.is_some() {
            continue;
        }
        assert!(
            plan.campaigns
                .iter()
                .any(|c| c.planted_bug == Some(bug) && c.expected == plan::Expected::Invalid),
            "the zoo bug {bug} is not in the nightly"
        );
    }
}
