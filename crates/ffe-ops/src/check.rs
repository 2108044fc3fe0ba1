//! One check's result with its evidence, a command's report, and the exit codes the CLI
//! documents (`ffe-ha --help`, docs/operations.md).

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    /// Works, but not as the seed asks (e.g. an OS the seed does not list).
    Warn,
    /// A hard requirement is not met.
    Fail,
    /// Could not be evaluated: the node is unreachable or the check timed out.
    Error,
}

impl Status {
    /// How bad it is, as the exit code ranks it: a failure outranks a check not evaluated.
    pub fn severity(self) -> u8 {
        match self {
            Status::Pass => 0,
            Status::Warn => 1,
            Status::Error => 2,
            Status::Fail => 3,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Error => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// Stable id (`cpu.min`, `backup.shared`, ...), listed in docs/operations.md.
    pub id: &'static str,
    /// A node name, or `cluster` for checks over all nodes.
    pub subject: String,
    pub status: Status,
    /// What was measured, in words and numbers.
    pub evidence: String,
    /// What to do about a warn/fail/error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Check {
    pub fn new(
        id: &'static str,
        subject: impl Into<String>,
        status: Status,
        evidence: impl Into<String>,
    ) -> Self {
        Self {
            id,
            subject: subject.into(),
            status,
            evidence: evidence.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// [`hint`](Self::hint) only when `cond` holds (the row is not a pass).
    pub fn hint_if(self, cond: bool, hint: &str) -> Self {
        if cond {
            self.hint(hint)
        } else {
            self
        }
    }
}

/// Exit codes of every `ffe-ha` command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitCode {
    /// Every check passed (warnings allowed unless `--strict`).
    Ok = 0,
    /// At least one check failed.
    Failed = 1,
    /// The command line could not be parsed (clap's own code).
    Usage = 2,
    /// No usable inventory: no Terraform state, wrong `--tf-dir`, unreadable file, bad setting.
    Inventory = 3,
    /// Nothing failed, but at least one check could not be evaluated (unreachable node,
    /// timeout).
    Incomplete = 4,
    /// `drill`: refused before touching anything (the cluster is not healthy, the drill would
    /// break quorum, or it could not restore what it breaks).
    Refused = 5,
}

impl ExitCode {
    pub fn code(self) -> i32 {
        self as i32
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub pass: usize,
    pub warn: usize,
    pub fail: usize,
    pub error: usize,
}

/// What a command found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub command: &'static str,
    pub checks: Vec<Check>,
    /// Warnings count as failures.
    pub strict: bool,
}

impl Report {
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for c in &self.checks {
            match c.status {
                Status::Pass => s.pass += 1,
                Status::Warn => s.warn += 1,
                Status::Fail => s.fail += 1,
                Status::Error => s.error += 1,
            }
        }
        s
    }

    /// A failure outranks an unevaluated check: the operator has something to fix either way.
    pub fn exit_code(&self) -> ExitCode {
        let s = self.summary();
        if s.fail > 0 || (self.strict && s.warn > 0) {
            ExitCode::Failed
        } else if s.error > 0 {
            ExitCode::Incomplete
        } else {
            ExitCode::Ok
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(statuses: &[Status], strict: bool) -> Report {
        Report {
            command: "t",
            checks: statuses
                .iter()
                .map(|s| Check::new("x", "n", *s, "e"))
                .collect(),
            strict,
        }
    }

    #[test]
    fn exit_code_precedence() {
        use Status::*;
        assert_eq!(report(&[Pass, Warn], false).exit_code(), ExitCode::Ok);
        assert_eq!(report(&[Pass, Warn], true).exit_code(), ExitCode::Failed);
        assert_eq!(
            report(&[Error, Pass], false).exit_code(),
            ExitCode::Incomplete
        );
        assert_eq!(report(&[Error, Fail], false).exit_code(), ExitCode::Failed);
        assert_eq!(report(&[Error, Fail], false).summary().error, 1);
    }
}
