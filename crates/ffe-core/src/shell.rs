//! Building remote shell commands safely.

/// Quote `s` as one POSIX shell word (single quotes; embedded quotes closed and escaped).
pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Test support: run `script` with `sh -c`, `dir` first on PATH (where a test puts fake tools).
#[cfg(test)]
pub(crate) fn sh_with_tools(script: &str, dir: &std::path::Path) -> std::process::Output {
    let path = std::env::var("PATH").unwrap_or_default();
    std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .env("PATH", format!("{}:{path}", dir.display()))
        .output()
        .expect("run sh")
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn plain_words_stay_plain() {
        assert_eq!(
            quote("/etc/rancher/k3s/config.yaml"),
            "/etc/rancher/k3s/config.yaml"
        );
    }

    #[test]
    fn metacharacters_are_quoted() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("$(reboot)"), "'$(reboot)'");
    }

    #[test]
    fn quoted_words_survive_a_real_shell() {
        for word in ["a b", "it's", "$HOME", "`x`", "a\nb", "*"] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", quote(word)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), word);
        }
    }
}
