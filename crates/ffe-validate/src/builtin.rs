//! Built-in Kubernetes kinds, validated by `kubernetes-validate --strict` (PyPI), run once per
//! batch. Each document is written to its own temporary file so every output line maps back to
//! exactly one document; a document the tool says nothing about is itself a problem.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::docs::Doc;
use crate::{Error, KubeVersion, Problem};

/// Environment variable naming the `kubernetes-validate` executable.
pub const ENV_VAR: &str = "FFE_KUBERNETES_VALIDATE";

/// Finds `kubernetes-validate`: `$FFE_KUBERNETES_VALIDATE`, else the first one on `PATH`.
pub fn locate() -> Result<PathBuf, Error> {
    if let Some(path) = std::env::var_os(ENV_VAR) {
        return Ok(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("kubernetes-validate"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            Error::KubernetesValidate(format!(
                "not found on PATH and {ENV_VAR} is unset (run `make deps`; it lives in tools/venv/bin)"
            ))
        })
}

/// Classification of one output line of kubernetes-validate.
#[derive(Debug, PartialEq, Eq)]
enum Line<'a> {
    Passed(&'a str),
    Problem(&'a str, String),
    Fatal(String),
    Other,
}

fn parse_line<'a>(line: &'a str, crds_dir: &Path) -> Line<'a> {
    let Some((level, rest)) = line.split_once(' ') else {
        return Line::Other;
    };
    if level == "FATAL" {
        return Line::Fatal(line.to_string());
    }
    let Some((file, message)) = rest.split_once(' ') else {
        return Line::Other;
    };
    match level {
        "INFO" if message.starts_with("passed") => Line::Passed(file),
        "ERROR" => {
            let text = if let Some(i) = message.find(" against version ") {
                let after = &message[i + " against version ".len()..];
                after
                    .split_once(": ")
                    .map(|(_, m)| m.to_string())
                    .unwrap_or_else(|| message.to_string())
            } else if let Some(m) = message.strip_prefix("could not be validated: ") {
                format!("could not be validated: {m}")
            } else {
                message.to_string()
            };
            // kubernetes-validate prints `path: message`, with an empty path at the root
            let text = match text.strip_prefix(": ") {
                Some(m) => format!("/: {m}"),
                None => text,
            };
            Line::Problem(file, text)
        }
        "WARN" if message.starts_with("Couldn't find schema") => Line::Problem(
            file,
            format!(
                "unknown kind: neither a built-in kind nor defined by a CRD in {} ({message})",
                crds_dir.display()
            ),
        ),
        "WARN" => Line::Problem(file, message.to_string()),
        _ => Line::Other,
    }
}

/// Validates built-in kinds. `Err` only if kubernetes-validate cannot be run or rejects the
/// Kubernetes version as a whole.
pub fn validate(
    exe: &Path,
    kube: &KubeVersion,
    crds_dir: &Path,
    docs: &[&Doc],
) -> Result<Vec<Problem>, Error> {
    if docs.is_empty() {
        return Ok(Vec::new());
    }
    let dir = tempfile::tempdir().map_err(|source| Error::Read {
        path: std::env::temp_dir(),
        source,
    })?;
    let mut names: BTreeMap<String, &Doc> = BTreeMap::new();
    for (i, doc) in docs.iter().enumerate() {
        let name = format!("{i}.yaml");
        // JSON is YAML: no re-serialisation surprises.
        let path = dir.path().join(&name);
        std::fs::write(&path, doc.value.to_string())
            .map_err(|source| Error::Read { path, source })?;
        names.insert(name, doc);
    }
    let output = Command::new(exe)
        .current_dir(dir.path())
        .arg("--strict")
        .arg("--kubernetes-version")
        .arg(kube.to_string())
        .args(names.keys())
        .output()
        .map_err(|e| Error::KubernetesValidate(format!("cannot run {}: {e}", exe.display())))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);

    let mut problems = Vec::new();
    let mut answered: BTreeMap<&str, bool> = BTreeMap::new();
    for line in stdout.lines() {
        match parse_line(line, crds_dir) {
            Line::Fatal(message) => return Err(Error::KubernetesValidate(message)),
            Line::Passed(file) => {
                answered.insert(file, true);
            }
            Line::Problem(file, message) => match names.get(file) {
                Some(doc) => {
                    answered.insert(file, true);
                    problems.push(doc.problem(message));
                }
                None => problems.push(Problem::file("kubernetes-validate", line)),
            },
            Line::Other => {}
        }
    }
    for (name, doc) in &names {
        if !answered.contains_key(name.as_str()) {
            problems.push(doc.problem(format!(
                "kubernetes-validate gave no verdict (exit {:?}): {}",
                output.status.code(),
                stderr.lines().last().unwrap_or("")
            )));
        }
    }
    if !output.status.success() && problems.is_empty() {
        return Err(Error::KubernetesValidate(format!(
            "exit {:?} without a reported problem: {}",
            output.status.code(),
            stderr.trim()
        )));
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_output_lines() {
        let crds = Path::new("crds");
        assert_eq!(
            parse_line(
                "INFO 0.yaml passed for resource configmap/a against version 1.33",
                crds
            ),
            Line::Passed("0.yaml")
        );
        assert_eq!(
            parse_line(
                "ERROR 1.yaml did not validate for resource deployment/x against version 1.29: \
                 spec.template.spec.containers.0: Additional properties are not allowed ('b' was unexpected)",
                crds
            ),
            Line::Problem(
                "1.yaml",
                "spec.template.spec.containers.0: Additional properties are not allowed ('b' was unexpected)"
                    .into()
            )
        );
        assert_eq!(
            parse_line(
                "ERROR 2.yaml did not validate for resource service/x against version 1.29: : 'spec' is a required property",
                crds
            ),
            Line::Problem("2.yaml", "/: 'spec' is a required property".into())
        );
        match parse_line(
            "WARN 3.yaml Couldn't find schema for kind Bar with api version foo/v1 for kubernetes version 1.29",
            crds,
        ) {
            Line::Problem("3.yaml", m) => assert!(m.starts_with("unknown kind"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_line(
                "FATAL kubernetes-validate 1.37.0 does not support kubernetes version 1.99",
                crds
            ),
            Line::Fatal(_)
        ));
    }
}
