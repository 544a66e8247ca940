//! Running the host tools (`ip`, `iptables`) with their failures turned into
//! [`DeployError::Command`] that quote the command and its stderr.

use super::DeployError;
use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `program args...`, feeding `stdin` if given; returns stdout.
pub fn run_with_input(
    program: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String, DeployError> {
    let command = format!("{program} {}", args.join(" "));
    tracing::trace!(%command, "running");
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| DeployError::io(format!("cannot run `{command}`"), e))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())
            .map_err(|e| DeployError::io(format!("cannot feed `{command}`"), e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| DeployError::io(format!("cannot wait for `{command}`"), e))?;
    if !out.status.success() {
        return Err(DeployError::Command {
            command,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `program args...`; returns stdout.
pub fn run(program: &str, args: &[&str]) -> Result<String, DeployError> {
    run_with_input(program, args, None)
}

/// True if `program` is an executable file on `PATH` (or a path to one).
pub fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let is_exec = |p: &std::path::Path| {
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if program.contains('/') {
        return is_exec(std::path::Path::new(program));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].iter().map(Into::into))
        .any(|dir| is_exec(&dir.join(program)))
}

/// True if the process runs as root (network namespaces need it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
