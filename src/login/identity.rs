//! Who is logging in to what: the declarations of a login's first request (RFC 7143 §6.3.1,
//! §13.4, §13.5, §13.7, §13.21) and the target lookup with its access list.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

use super::chap::ChapPolicy;
use super::error::LoginError;
use super::keys::{Key, KeySet};
use super::params::{SessionParams, SessionType};
use super::value::{MAX_ISCSI_NAME_LEN, MAX_SIMPLE_VALUE_LEN};

/// A target a login can reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetEntry {
    pub name: String,
    pub alias: Option<String>,
    /// Initiator names allowed to log in; empty = all.
    pub allowed_initiators: Vec<String>,
    /// Networks the initiator's address must be in; empty = any address.
    pub allowed_networks: Vec<IpNet>,
    /// CHAP required of normal sessions to this target; None = no authentication.
    pub chap: Option<Arc<ChapPolicy>>,
    /// The target portal groups the target is reached through (each one target port, ALUA);
    /// empty = every portal, in the daemon's default group.
    pub portal_groups: Vec<PortalGroup>,
}

/// Portals that form one target portal group of a target (RFC 7143 §4.4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalGroup {
    /// Target portal group tag, also the SCSI target port group and relative port identifier.
    pub tag: u16,
    pub portals: Vec<SocketAddr>,
}

/// Whether a connection that arrived at `local` came through `portal` (a wildcard portal
/// address stands for every local address of its family).
pub fn portal_matches(portal: &SocketAddr, local: &SocketAddr) -> bool {
    portal.port() == local.port()
        && (portal.ip() == local.ip()
            || (portal.ip().is_unspecified() && portal.is_ipv4() == local.is_ipv4()))
}

impl TargetEntry {
    /// iSCSI names compare case-insensitively (RFC 7143 §4.2.7.1: names are normalized to lower
    /// case, RFC 3722).
    pub fn is_named(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    /// Whether this initiator, connecting from `peer`, may log in to (and discover) the target:
    /// its name and its address must both be allowed. An unknown address passes only when no
    /// network is configured.
    pub fn admits(&self, initiator: &str, peer: Option<IpAddr>) -> bool {
        let name_ok = self.allowed_initiators.is_empty()
            || self
                .allowed_initiators
                .iter()
                .any(|i| i.eq_ignore_ascii_case(initiator));
        name_ok && self.admits_address(peer)
    }

    /// The portal group tag of a connection that arrived at `local`; `default` when the
    /// target has no groups of its own, `None` when none of its groups holds that portal.
    pub fn portal_group_tag(&self, local: Option<SocketAddr>, default: u16) -> Option<u16> {
        let Some(first) = self.portal_groups.first() else {
            return Some(default);
        };
        let Some(local) = local else {
            return Some(first.tag);
        };
        self.portal_groups
            .iter()
            .find(|g| g.portals.iter().any(|p| portal_matches(p, &local)))
            .map(|g| g.tag)
    }

    /// An IPv4-mapped IPv6 peer (`::ffff:a.b.c.d`, as a dual-stack listener reports IPv4
    /// clients) is matched as the IPv4 address it stands for, and as itself.
    fn admits_address(&self, peer: Option<IpAddr>) -> bool {
        if self.allowed_networks.is_empty() {
            return true;
        }
        peer.is_some_and(|ip| {
            let v4 = ip.to_canonical();
            self.allowed_networks
                .iter()
                .any(|n| n.contains(&ip) || n.contains(&v4))
        })
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
/// defaults to Normal; a normal session needs a known TargetName this initiator may access from
/// `peer`. A TargetName in a discovery session is accepted and ignored.
pub fn identify(
    pairs: &[(String, String)],
    targets: &[TargetEntry],
    peer: Option<IpAddr>,
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
        SessionType::Normal => Some(find_target(target_name, initiator, peer, targets)?),
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
    peer: Option<IpAddr>,
    targets: &[TargetEntry],
) -> Result<TargetEntry, LoginError> {
    let name = name.ok_or(LoginError::MissingParameter("TargetName"))?;
    check_name(Key::TargetName, name)?;
    let entry = targets
        .iter()
        .find(|t| t.is_named(name))
        .ok_or_else(|| LoginError::TargetNotFound(name.into()))?;
    if !entry.admits(initiator, peer) {
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
    use std::net::{Ipv4Addr, Ipv6Addr};

    const PEER: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9)));

    fn targets() -> Vec<TargetEntry> {
        vec![
            TargetEntry {
                name: "iqn.2024-01.org.ringtgt:disk1".into(),
                alias: Some("Disk One".into()),
                ..Default::default()
            },
            TargetEntry {
                name: "iqn.2024-01.org.ringtgt:secret".into(),
                alias: None,
                allowed_initiators: vec!["iqn.1994-05.com.redhat:good".into()],
                ..Default::default()
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
            PEER,
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
            identify(&kv(&[("TargetName", "x")]), &t, PEER).unwrap_err(),
            LoginError::MissingParameter("InitiatorName")
        );
        assert_eq!(
            identify(&kv(&[("InitiatorName", "iqn.i")]), &t, PEER).unwrap_err(),
            LoginError::MissingParameter("TargetName")
        );
        assert!(matches!(
            identify(
                &kv(&[("InitiatorName", "iqn.i"), ("TargetName", "iqn.nope")]),
                &t,
                PEER
            ),
            Err(LoginError::TargetNotFound(_))
        ));
        assert!(matches!(
            identify(&kv(&[("InitiatorName", "")]), &t, PEER),
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
            PEER,
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
            PEER,
        )
        .unwrap();
        assert_eq!(id.params.session_type, SessionType::Discovery);
        assert!(id.target.is_none() && id.params.target_name.is_none());
        assert!(matches!(
            identify(
                &kv(&[("InitiatorName", "iqn.i"), ("SessionType", "Bogus")]),
                &t,
                PEER
            ),
            Err(LoginError::SessionTypeNotSupported(_))
        ));
    }

    fn networks(nets: &[&str]) -> TargetEntry {
        TargetEntry {
            name: "iqn.t".into(),
            allowed_networks: nets.iter().map(|n| n.parse().unwrap()).collect(),
            ..Default::default()
        }
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn no_networks_admit_any_address_even_an_unknown_one() {
        let t = networks(&[]);
        assert!(t.admits("iqn.i", ip("198.51.100.1")));
        assert!(t.admits("iqn.i", None));
    }

    #[test]
    fn networks_admit_only_their_addresses() {
        let t = networks(&["192.0.2.0/24", "2001:db8:1::/48"]);
        assert!(t.admits("iqn.i", ip("192.0.2.200")));
        assert!(!t.admits("iqn.i", ip("192.0.3.1")));
        assert!(t.admits("iqn.i", ip("2001:db8:1:2::5")));
        assert!(!t.admits("iqn.i", ip("2001:db8:2::5")));
        assert!(
            !t.admits("iqn.i", None),
            "unknown address with networks set"
        );
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_networks() {
        let t = networks(&["10.1.0.0/16"]);
        let mapped = Ipv4Addr::new(10, 1, 2, 3).to_ipv6_mapped();
        assert!(t.admits("iqn.i", Some(IpAddr::V6(mapped))));
        let outside = Ipv4Addr::new(10, 2, 0, 1).to_ipv6_mapped();
        assert!(!t.admits("iqn.i", Some(IpAddr::V6(outside))));
        let v6 = networks(&["::ffff:10.1.0.0/112"]);
        assert!(v6.admits("iqn.i", Some(IpAddr::V6(mapped))));
        assert!(!networks(&["::/0"]).admits("iqn.i", ip("10.1.2.3")));
        assert!(networks(&["::/0"]).admits("iqn.i", Some(IpAddr::V6(Ipv6Addr::LOCALHOST))));
    }

    #[test]
    fn name_and_network_must_both_be_allowed() {
        let t = TargetEntry {
            allowed_initiators: vec!["iqn.good".into()],
            ..networks(&["192.0.2.0/24"])
        };
        assert!(t.admits("IQN.GOOD", ip("192.0.2.1")));
        assert!(!t.admits("iqn.bad", ip("192.0.2.1")));
        assert!(!t.admits("iqn.good", ip("198.51.100.1")));
    }

    #[test]
    fn login_from_outside_the_networks_is_not_authorized() {
        let t = vec![networks(&["192.0.2.0/24"])];
        let pairs = kv(&[("InitiatorName", "iqn.i"), ("TargetName", "iqn.t")]);
        assert!(identify(&pairs, &t, ip("192.0.2.77")).is_ok());
        assert!(matches!(
            identify(&pairs, &t, ip("203.0.113.1")),
            Err(LoginError::NotAuthorized { .. })
        ));
        assert!(matches!(
            identify(&pairs, &t, None),
            Err(LoginError::NotAuthorized { .. })
        ));
        let discovery = kv(&[("InitiatorName", "iqn.i"), ("SessionType", "Discovery")]);
        assert!(identify(&discovery, &t, ip("203.0.113.1")).is_ok());
    }

    #[test]
    fn a_connection_gets_the_tag_of_the_group_holding_its_portal() {
        let sa = |s: &str| -> SocketAddr { s.parse().unwrap() };
        let mut t = TargetEntry::default();
        assert_eq!(t.portal_group_tag(Some(sa("10.0.0.1:3260")), 1), Some(1));
        t.portal_groups = vec![
            PortalGroup {
                tag: 5,
                portals: vec![sa("10.0.0.1:3260")],
            },
            PortalGroup {
                tag: 6,
                portals: vec![sa("0.0.0.0:3261"), sa("[::]:3261")],
            },
        ];
        assert_eq!(t.portal_group_tag(Some(sa("10.0.0.1:3260")), 1), Some(5));
        assert_eq!(
            t.portal_group_tag(Some(sa("10.9.9.9:3261")), 1),
            Some(6),
            "wildcard"
        );
        assert_eq!(t.portal_group_tag(Some(sa("[fd00::1]:3261")), 1), Some(6));
        assert_eq!(
            t.portal_group_tag(Some(sa("10.0.0.2:3260")), 1),
            None,
            "no group"
        );
        assert_eq!(
            t.portal_group_tag(None, 1),
            Some(5),
            "unknown portal: the first group"
        );
    }
}
