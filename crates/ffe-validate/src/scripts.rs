//! Inline scripts in our own containers (`python3 -c SCRIPT`, `bash -c SCRIPT`, `sh -c SCRIPT`) must
//! at least parse: no Kubernetes runs here, so a syntax error would otherwise first show as a
//! failing CronJob in the cluster. Checked with the interpreters themselves (`python3` compiling
//! the source without running it, `bash -n`, `sh -n`).

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

/// The interpreter and the script of a container whose command line is `<interp> -c <script>`
/// (command and args joined, as the kubelet does).
pub fn inline_script(container: &Value) -> Option<(String, String)> {
    let argv: Vec<&str> = ["command", "args"]
        .iter()
        .filter_map(|k| container.get(*k).and_then(Value::as_array))
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let interp = argv.first()?.rsplit('/').next()?;
    if !matches!(interp, "python3" | "python" | "bash" | "sh") {
        return None;
    }
    let at = argv.iter().position(|a| *a == "-c")?;
    argv.get(at + 1)
        .map(|s| (interp.to_string(), s.to_string()))
}

/// Ok when the script parses, else the interpreter's message.
pub fn syntax_check(interp: &str, script: &str) -> Result<(), String> {
    let mut cmd = match interp {
        "python3" | "python" => {
            let mut c = Command::new("python3");
            c.args([
                "-c",
                "import sys; compile(sys.stdin.read(), '<inline>', 'exec')",
            ]);
            c
        }
        "bash" => {
            let mut c = Command::new("bash");
            c.arg("-n");
            c
        }
        _ => {
            let mut c = Command::new("sh");
            c.arg("-n");
            c
        }
    };
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {interp} to check the script: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| format!("cannot pass the script to {interp}: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{interp} did not finish: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_script_after_dash_c() {
        let c = serde_json::json!({"command": ["python3", "-c", "print(1)"]});
        assert_eq!(
            inline_script(&c),
            Some(("python3".into(), "print(1)".into()))
        );
        let c = serde_json::json!({"command": ["/bin/sh"], "args": ["-ec", "x"]});
        assert_eq!(inline_script(&c), None, "-ec is not -c");
        let c = serde_json::json!({"command": ["/bin/bash", "-c"], "args": ["echo hi"]});
        assert_eq!(inline_script(&c), Some(("bash".into(), "echo hi".into())));
    }

    #[test]
    fn syntax_errors_are_reported() {
        assert!(syntax_check("python3", "import json\nprint(json.dumps({}))\n").is_ok());
        assert!(syntax_check("python3", "def f(:\n  pass\n").is_err());
        assert!(syntax_check("bash", "for x in 1 2; do echo $x; done").is_ok());
        assert!(syntax_check("bash", "if true; then echo").is_err());
        assert!(syntax_check("sh", "case x in").is_err());
    }
}
