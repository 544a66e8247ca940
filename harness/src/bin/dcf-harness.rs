//! `dcf-harness`: the command-line entry point of the test harness.
fn main() {
    eprintln!("dcf-harness: no subcommands yet");
    std::process::exit(64);
}
