//! Who is logging in to what: the declarations of a login's first request (RFC 7143 §6.3.1,
//! §13.4, §13.5, §13.7, §13.21) and the target lookup with its access list.

use super::error::LoginError;
use super::keys::{Key, KeySet};
use super::params::{SessionParams, SessionType};
use super::value::{MAX_ISCSI_NAME_LEN, MAX_SIMPLE_VALUE_LEN};

/// A target a login can reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetEntry {
    pub name: String,
    pub alias: Option<String>,
    /// Initiator names allowed to log in; empty = all.
    pub allowed_initiators: Vec<String>,
}

impl TargetEntry {
    /// iSCSI names compare case-insensitively (RFC 7143 §4.2.7.1: names are normalized to lower
    /// case, RFC 3722).
    pub fn is_named(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    pub fn admits(&self, initiator: &str) -> bool {
        self.allowed_initiators.is_empty()
            || self
                .allowed_initiators
                .iter()
                .any(|i| i.eq_ignore_ascii_case(initiator))
    }
}

/// The identity a login starts with.
#[derive(Debug, Clone)]
pub struct Identity {
    /// RFC defaults plus session type, names and alias.
    pub params: SessionParams,
    /// The identity keys that were present (consumed from the first request).
    pub keys: KeySet,
    /// The reached target, for normal sessions.
    pub target: Option<TargetEntry>,
}

fn first(pairs: &[(String, String)], key: Key) -> Option<&str> {
    pairs
        .iter()
        .find(|(k, _)| k == key.name())
        .map(|(_, v)| v.as_str())
}

fn check_name(key: Key, v: &str) -> Result<(), LoginError> {
    if v.is_empty() || v.len() > MAX_ISCSI_NAME_LEN {
        return Err(LoginError::protocol(format!(
            "{} of {} bytes",
            key.name(),
            v.len()
        )));
    }
    Ok(())
}

/// Reads the identity from the first request's pairs: InitiatorName is mandatory; SessionType
/// defaults to Normal; a normal session needs a known TargetName this initiator may access.
/// A TargetName in a discovery session is accepted and ignored.
pub fn identify(
    pairs: &[(String, String)],
    targets: &[TargetEntry],
) -> Result<Identity, LoginError> {
    let mut keys = KeySet::default();
    let initiator =
        first(pairs, Key::InitiatorName).ok_or(LoginError::MissingParameter("InitiatorName"))?;
    check_name(Key::InitiatorName, initiator)?;
    keys.insert(Key::InitiatorName);
    let session_type = match first(pairs, Key::SessionType) {
        Some(v) => {
            keys.insert(Key::SessionType);
            SessionType::parse(v).ok_or_else(|| LoginError::SessionTypeNotSupported(v.into()))?
        }
        None => SessionType::Normal,
    };
    let mut params = SessionParams::new(session_type, initiator.to_string());
    if let Some(alias) = first(pairs, Key::InitiatorAlias) {
        if alias.len() > MAX_SIMPLE_VALUE_LEN {
            return Err(LoginError::protocol("InitiatorAlias longer than 255 bytes"));
        }
        keys.insert(Key::InitiatorAlias);
        params.initiator_alias = Some(alias.to_string());
    }
    let target_name = first(pairs, Key::TargetName);
    if target_name.is_some() {
        keys.insert(Key::TargetName);
    }
    let target = match session_type {
        SessionType::Discovery => None,
        SessionType::Normal => Some(find_target(target_name, initiator, targets)?),
    };
    params.target_name = target.as_ref().map(|t| t.name.clone());
    Ok(Identity {
        params,
        keys,
        target,
    })
}

fn find_target(
    name: Option<&str>,
    initiator: &str,
    targets: &[TargetEntry],
) -> Result<TargetEntry, LoginError> {
    let name = name.ok_or(LoginError::MissingParameter("TargetName"))?;
    check_name(Key::TargetName, name)?;
    let entry = targets
        .iter()
        .find(|t| t.is_named(name))
        .ok_or_else(|| LoginError::TargetNotFound(name.into()))?;
    if !entry.admits(initiator) {
        return Err(LoginError::NotAuthorized {
            initiator: initiator.into(),
            target: entry.name.clone(),
        });
    }
    Ok(entry.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets() -> Vec<TargetEntry> {
        vec![
            TargetEntry {
                name: "iqn.2024-01.org.ringtgt:disk1".into(),
                alias: Some("Disk One".into()),
                allowed_initiators: vec![],
            },
            TargetEntry {
                name: "iqn.2024-01.org.ringtgt:secret".into(),
                alias: None,
                allowed_initiators: vec!["iqn.1994-05.com.redhat:good".into()],
            },
        ]
    }

    fn kv(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn normal_session_reaches_its_target() {
        let id = identify(
            &kv(&[
                ("InitiatorName", "iqn.1994-05.com.redhat:good"),
                ("InitiatorAlias", "host"),
                ("TargetName", "IQN.2024-01.org.ringtgt:DISK1"),
            ]),
            &targets(),
        )
        .unwrap();
        assert_eq!(id.params.session_type, SessionType::Normal);
        assert_eq!(
            id.params.target_name.as_deref(),
            Some("iqn.2024-01.org.ringtgt:disk1")
        );
        assert_eq!(id.params.initiator_alias.as_deref(), Some("host"));
        assert!(id.keys.contains(Key::InitiatorAlias));
    }

    #[test]
    fn missing_and_unknown_names() {
        let t = targets();
        assert_eq!(
            identify(&kv(&[("TargetName", "x")]), &t).unwrap_err(),
            LoginError::MissingParameter("InitiatorName")
        );
        assert_eq!(
            identify(&kv(&[("InitiatorName", "iqn.i")]), &t).unwrap_err(),
            LoginError::MissingParameter("TargetName")
        );
        assert!(matches!(
            identify(
                &kv(&[("InitiatorName", "iqn.i"), ("TargetName", "iqn.nope")]),
                &t
            ),
            Err(LoginError::TargetNotFound(_))
        ));
        assert!(matches!(
            identify(&kv(&[("InitiatorName", "")]), &t),
            Err(LoginError::Protocol(_))
        ));
    }

    #[test]
    fn access_list_is_enforced() {
        let t = targets();
        let bad = identify(
            &kv(&[
                ("InitiatorName", "iqn.bad"),
                ("TargetName", "iqn.2024-01.org.ringtgt:secret"),
            ]),
            &t,
        );
        assert!(matches!(bad, Err(LoginError::NotAuthorized { .. })));
    }

    #[test]
    fn discovery_ignores_target_name_and_bad_session_type_fails() {
        let t = targets();
        let id = identify(
            &kv(&[
                ("InitiatorName", "iqn.i"),
                ("SessionType", "Discovery"),
                ("TargetName", "iqn.nope"),
            ]),
            &t,
        )
        .unwrap();
        assert_eq!(id.params.session_type, SessionType::Discovery);
        assert!(id.target.is_none() && id.params.target_name.is_none());
        assert!(matches!(
            identify(
                &kv(&[("InitiatorName", "iqn.i"), ("SessionType", "Bogus")]),
                &t
            ),
            Err(LoginError::SessionTypeNotSupported(_))
        ));
    }
}
