//! The file format of who may log in: source networks, CHAP (with secret files) and LUN ACLs.

use std::fmt;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::config::error::{ConfigError, ConfigWarning};
use crate::config::model::{
    ChapAlgorithm, ChapConfig, ChapSecret, LunAcl, MutualChap, Secret, SecretSource,
    MAX_CHAP_TEXT_LEN,
};
use crate::config::validate::LUN_ID_RANGE;

/// Parses a source network in CIDR notation (`"10.0.0.0/24"`, `"fd00::/64"`). Host bits are
/// checked by validation, so that the error can suggest the network meant.
pub fn parse_network(s: &str) -> Result<IpNet, String> {
    s.trim().parse().map_err(|_| {
        format!(
            "expected a network like 10.0.0.0/24 or fd00::/64, got {s:?} (write 10.0.0.5/32 for one host)"
        )
    })
}

/// Reads a CHAP secret file: the whole file is the secret, less one trailing newline (`"\n"` or
/// `"\r\n"`). Returns the secret and, when group or others have any access to the file, a
/// warning (not an error: the operator may have reasons, but should hear about it). Errors name
/// the path, never the contents.
pub fn read_secret_file(path: &Path) -> Result<(ChapSecret, Option<String>), String> {
    let cannot = |e: std::io::Error| format!("cannot read secret file {}: {e}", path.display());
    let file = std::fs::File::open(path).map_err(cannot)?;
    // The mode of the descriptor we read from, so the check and the read see the same file.
    let mode = file.metadata().map_err(cannot)?.permissions().mode();
    // A secret plus "\r\n", and one byte more to tell a too-long file without reading it all
    // (the path could name a device that never ends).
    let cap = MAX_CHAP_TEXT_LEN + 3;
    let mut bytes = Vec::with_capacity(cap);
    file.take(cap as u64)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() == cap {
        return Err(format!(
            "secret file {} is longer than {} bytes; a CHAP secret is at most {MAX_CHAP_TEXT_LEN} bytes",
            path.display(),
            cap - 1
        ));
    }
    if bytes.ends_with(b"\r\n") {
        bytes.truncate(bytes.len() - 2);
    } else if bytes.ends_with(b"\n") {
        bytes.truncate(bytes.len() - 1);
    }
    let warning = (mode & 0o077 != 0).then(|| {
        format!(
            "secret file {} can be accessed by group or others (mode {:04o}); chmod 600 it",
            path.display(),
            mode & 0o7777
        )
    });
    let secret = ChapSecret {
        value: Secret::new(bytes),
        source: SecretSource::File(path.to_path_buf()),
    };
    Ok((secret, warning))
}

/// An inline secret as written in the file. Kept as any TOML value so that a value of the wrong
/// type is reported by this module, without echoing it the way a serde type error would.
#[derive(Deserialize, Serialize)]
#[serde(transparent)]
pub(super) struct RawSecret(toml::Value);

impl fmt::Debug for RawSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawChap {
    user: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<RawSecret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mutual_user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mutual_secret: Option<RawSecret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mutual_secret_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    algorithms: Option<Vec<String>>,
}

/// `[discovery]`: settings of discovery sessions.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDiscovery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) chap: Option<RawChap>,
}

impl RawDiscovery {
    pub(super) fn from_chap(chap: &ChapConfig) -> RawDiscovery {
        RawDiscovery {
            chap: Some(RawChap::from_chap(chap)),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAcl {
    initiator: String,
    luns: Vec<i64>,
}

impl RawChap {
    /// Converts `[…chap]` at field path `prefix`, reading secret files; a loose file mode adds a
    /// warning. Lengths and the other rules are checked by validation.
    pub(super) fn into_chap(
        self,
        prefix: &str,
        warnings: &mut Vec<ConfigWarning>,
    ) -> Result<ChapConfig, ConfigError> {
        // The shape is checked before any file is read, so a misplaced key is reported as such.
        if self.mutual_user.is_none() {
            let stray = [
                ("mutual_secret", self.mutual_secret.is_some()),
                ("mutual_secret_file", self.mutual_secret_file.is_some()),
            ];
            if let Some((key, _)) = stray.into_iter().find(|(_, given)| *given) {
                return Err(ConfigError::invalid(
                    format!("{prefix}.{key}"),
                    "is only used with mutual_user",
                ));
            }
        }
        let secret = load_secret(prefix, "secret", self.secret, self.secret_file, warnings)?;
        let mutual = match self.mutual_user {
            Some(user) => {
                let secret = load_secret(
                    prefix,
                    "mutual_secret",
                    self.mutual_secret,
                    self.mutual_secret_file,
                    warnings,
                )?;
                Some(MutualChap { user, secret })
            }
            None => None,
        };
        let algorithms = match self.algorithms {
            None => ChapConfig::DEFAULT_ALGORITHMS.to_vec(),
            Some(names) => names
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    name.parse::<ChapAlgorithm>()
                        .map_err(|e| ConfigError::invalid(format!("{prefix}.algorithms[{i}]"), e))
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(ChapConfig {
            user: self.user,
            secret,
            mutual,
            algorithms,
        })
    }

    pub(super) fn from_chap(c: &ChapConfig) -> RawChap {
        let (secret, secret_file) = raw_secret(&c.secret);
        let (mutual_user, mutual_secret, mutual_secret_file) = match &c.mutual {
            Some(m) => {
                let (inline, file) = raw_secret(&m.secret);
                (Some(m.user.clone()), inline, file)
            }
            None => (None, None, None),
        };
        RawChap {
            user: c.user.clone(),
            secret,
            secret_file,
            mutual_user,
            mutual_secret,
            mutual_secret_file,
            algorithms: Some(c.algorithms.iter().map(|a| a.name().into()).collect()),
        }
    }
}

/// The secret of `{prefix}.{key}`, given inline as `key` or as a file `{key}_file`: exactly one.
fn load_secret(
    prefix: &str,
    key: &str,
    inline: Option<RawSecret>,
    file: Option<String>,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<ChapSecret, ConfigError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(ConfigError::invalid(
            format!("{prefix}.{key}_file"),
            format!("cannot be combined with {key}; give one of the two"),
        )),
        (None, None) => Err(ConfigError::invalid(
            format!("{prefix}.{key}"),
            format!("required: give {key} or {key}_file"),
        )),
        (Some(RawSecret(toml::Value::String(s))), None) => Ok(ChapSecret::inline(s)),
        (Some(RawSecret(other)), None) => Err(ConfigError::invalid(
            format!("{prefix}.{key}"),
            format!("must be a string (found {})", other.type_str()),
        )),
        (None, Some(path)) => {
            let field = format!("{prefix}.{key}_file");
            let (secret, warning) =
                read_secret_file(Path::new(&path)).map_err(|e| ConfigError::invalid(&field, e))?;
            if let Some(problem) = warning {
                warnings.push(ConfigWarning { field, problem });
            }
            Ok(secret)
        }
    }
}

/// The `(key, key_file)` pair that writes `secret` back the way it was given. An inline secret
/// or a path that is not UTF-8 (possible only when built in code) is written lossily.
fn raw_secret(secret: &ChapSecret) -> (Option<RawSecret>, Option<String>) {
    match &secret.source {
        SecretSource::Inline => {
            let text = String::from_utf8_lossy(secret.value.expose()).into_owned();
            (Some(RawSecret(toml::Value::String(text))), None)
        }
        SecretSource::File(path) => (None, Some(path.to_string_lossy().into_owned())),
    }
}

impl RawAcl {
    pub(super) fn into_acl(self, prefix: &str) -> Result<LunAcl, ConfigError> {
        let luns = self
            .luns
            .into_iter()
            .enumerate()
            .map(|(i, id)| LUN_ID_RANGE.convert(&format!("{prefix}.luns[{i}]"), id))
            .collect::<Result<_, _>>()?;
        Ok(LunAcl {
            initiator: self.initiator,
            luns,
        })
    }

    pub(super) fn from_acl(acl: &LunAcl) -> RawAcl {
        RawAcl {
            initiator: acl.initiator.clone(),
            luns: acl.luns.iter().map(|&id| id.into()).collect(),
        }
    }
}
