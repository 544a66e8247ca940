//! Commands sent to a remote shell are built from quoted arguments only,
//! never from unescaped text: an argument is wrapped in single quotes, and
//! a single quote inside it becomes `'\''`.

/// `arg` as one word for a POSIX shell.
pub fn quote(arg: &str) -> String {
    let safe = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if safe {
        return arg.to_string();
    }
    format!("'{}'", arg.replace('\'', r"'\''"))
}

/// Every argument quoted and joined with spaces.
pub fn command_line<S: AsRef<str>>(argv: &[S]) -> String {
    argv.iter()
        .map(|a| quote(a.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Every tricky argument reaches a real shell's program unchanged.
    #[test]
    fn a_shell_sees_exactly_the_arguments() {
        let args = [
            "plain",
            "two words",
            "it's",
            "$(touch /tmp/should-not-exist)",
            "`id`",
            "a;b|c&d",
            "*",
            "",
            "\"double\"",
            "back\\slash",
            "new\nline",
            "--flag=x y",
        ];
        let line = format!("printf '%s\\0' {}", command_line(&args));
        let out = Command::new("sh").arg("-c").arg(&line).output().unwrap();
        let got: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .split('\0')
            .map(str::to_string)
            .collect();
        let mut want: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        want.push(String::new()); // after the last NUL
        assert_eq!(got, want, "{line}");
        assert!(!std::path::Path::new("/tmp/should-not-exist").exists());
    }
}
