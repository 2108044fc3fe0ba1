use std::path::{Path, PathBuf};

/// Errors of the stand-in. `Failed` carries a k3s-like message and the exit code to return.
#[derive(Debug, thiserror::Error)]
pub enum StandinError {
    #[error("{message}")]
    Failed { code: i32, message: String },
    #[error("k3s stand-in: {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("k3s stand-in: {path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("k3s stand-in: settings not found (looked in {looked})")]
    NoSettings { looked: String },
}

impl StandinError {
    pub fn failed(code: i32, message: impl Into<String>) -> Self {
        StandinError::Failed {
            code,
            message: message.into(),
        }
    }

    pub fn io(path: &Path, source: std::io::Error) -> Self {
        StandinError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn json(path: &Path, source: serde_json::Error) -> Self {
        StandinError::Json {
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            StandinError::Failed { code, .. } => *code,
            _ => 1,
        }
    }
}
