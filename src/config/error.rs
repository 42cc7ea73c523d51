//! The one error type of the configuration: every variant displays as one line.

use std::fmt;
use std::path::{Path, PathBuf};

/// A configuration problem. `Display` is always one line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("{}: cannot read config file: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// TOML syntax error, wrong value type or unknown key.
    #[error("{}", render_parse(file.as_deref(), *line, *column, message))]
    Parse {
        file: Option<PathBuf>,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },
    /// A value breaks a rule; `field` is its path, e.g. `target[0].lun[1].block_size`.
    #[error("{field}: {problem}")]
    Invalid { field: String, problem: String },
    /// A command-line flag is wrong; `flag` names it, with its value if it has one.
    #[error("{flag}: {problem}")]
    Flag { flag: String, problem: String },
    /// Two command-line flags that exclude each other were both given.
    #[error("{flag} cannot be combined with {other}")]
    Conflict {
        flag: &'static str,
        other: &'static str,
    },
    /// The configuration could not be written as TOML.
    #[error("cannot write config as TOML: {0}")]
    Serialize(String),
}

impl ConfigError {
    pub(super) fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError::Invalid {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// Field path of an [`ConfigError::Invalid`] error, or the flag of a [`ConfigError::Flag`].
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { field, .. } => Some(field),
            ConfigError::Flag { flag, .. } => Some(flag),
            _ => None,
        }
    }
}

/// A problem that does not stop the daemon but that the operator should hear about (e.g. a
/// secret file other users can read). `Display` is one line, `field: problem` like an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// Field path (`target[0].chap.secret_file`) or flag (`--chap-secret-file /x`).
    pub field: String,
    pub problem: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

fn render_parse(
    file: Option<&Path>,
    line: Option<usize>,
    column: Option<usize>,
    message: &str,
) -> String {
    let origin = match file {
        Some(p) => p.display().to_string(),
        None => "config".to_string(),
    };
    match (line, column) {
        (Some(l), Some(c)) => format!("{origin}:{l}:{c}: {message}"),
        (Some(l), None) => format!("{origin}:{l}: {message}"),
        _ => format!("{origin}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_single_lines() {
        let e = ConfigError::Parse {
            file: Some("/etc/r.toml".into()),
            line: Some(3),
            column: None,
            message: "x".into(),
        };
        assert_eq!(e.to_string(), "/etc/r.toml:3: x");
        let e = ConfigError::Conflict {
            flag: "--lun",
            other: "--config",
        };
        assert_eq!(e.to_string(), "--lun cannot be combined with --config");
    }
}
