//! Full-feature-phase Text Requests: `SendTargets` (RFC 7143 §13.3, Appendix C) and the answers
//! to other keys sent outside login.

use std::net::{IpAddr, SocketAddr};

use super::identity::{portal_matches, TargetEntry};
use super::keys::{Key, Usage};
use super::params::{SessionParams, SessionType, MAX_DATA_LENGTH, MIN_DATA_LENGTH};
use super::rules::{NOT_UNDERSTOOD, REJECT};
use super::text::push_pair;

/// RFC 7143 Appendix C: the value asking for every target.
const ALL: &str = "All";

/// Answer to a Text Request carrying `SendTargets=<value>` (RFC 7143 §13.3, Appendix C):
/// "All" in discovery sessions lists every target the initiator may log in to from `peer` (its
/// address; filtered by name and address as the login is, [`TargetEntry::admits`]), a target
/// name lists that one, "" in a normal session lists the session's own target. Each target is
/// followed by a `TargetAddress=<ip>:<port>,<tpgt>` per portal (IPv6 in brackets): every portal
/// with `tpgt`, or, for a target with portal groups, the portals of its groups with their tags.
/// Anything else ("All" in a normal session, which Appendix C forbids supporting; "" in a
/// discovery session; an unknown or hidden name) gets an empty answer: a SendTargets response
/// carries only TargetName/TargetAddress records.
///
/// `portals` should be concrete addresses (e.g. the connection's local address); wildcard
/// addresses (0.0.0.0, ::) are skipped, which RFC 7143 Appendix C allows: without a
/// TargetAddress the initiator uses the address of the current connection.
pub fn send_targets(
    value: &str,
    session: &SessionParams,
    peer: Option<IpAddr>,
    targets: &[TargetEntry],
    portals: &[SocketAddr],
    tpgt: u16,
) -> Vec<u8> {
    let mut out = Vec::new();
    let concrete = || portals.iter().filter(|p| !p.ip().is_unspecified());
    for t in visible(value, session, peer, targets) {
        push_pair(&mut out, Key::TargetName.name(), &t.name);
        let mut address = |p: &SocketAddr, tag: u16| {
            push_pair(&mut out, Key::TargetAddress.name(), &target_address(p, tag));
        };
        if t.portal_groups.is_empty() {
            concrete().for_each(|p| address(p, tpgt));
        }
        // A target with port groups is reached through their portals only, each with its
        // group's tag (a wildcard group portal stands for the concrete address it answers on).
        for g in &t.portal_groups {
            concrete()
                .filter(|p| g.portals.iter().any(|gp| portal_matches(gp, p)))
                .for_each(|p| address(p, g.tag));
        }
    }
    out
}

/// The targets a SendTargets value names, filtered by the initiator's access.
fn visible<'a>(
    value: &'a str,
    session: &'a SessionParams,
    peer: Option<IpAddr>,
    targets: &'a [TargetEntry],
) -> impl Iterator<Item = &'a TargetEntry> {
    let own = session.target_name.as_deref();
    targets.iter().filter(move |t| {
        let named = match (session.session_type, value) {
            (SessionType::Discovery, ALL) => true,
            (SessionType::Discovery, "") => false,
            // Appendix C: "All" MUST NOT be supported on a normal session, which reports only
            // its own target ("" or that target's name).
            (SessionType::Normal, ALL) => false,
            (SessionType::Normal, "") => own.is_some_and(|n| t.is_named(n)),
            (SessionType::Normal, name) => own.is_some_and(|n| t.is_named(n)) && t.is_named(name),
            (SessionType::Discovery, name) => t.is_named(name),
        };
        named && t.admits(&session.initiator_name, peer)
    })
}

/// RFC 7143 §13.8: `address:port,tpgt`, IPv6 addresses in brackets, without a zone index.
fn target_address(p: &SocketAddr, tpgt: u16) -> String {
    match p {
        SocketAddr::V4(a) => format!("{}:{},{}", a.ip(), a.port(), tpgt),
        SocketAddr::V6(a) => format!("[{}]:{},{}", a.ip(), a.port(), tpgt),
    }
}

/// Full answer to a full-feature-phase Text Request's key/value pairs (RFC 7143 §6.2, §13).
///
/// - `SendTargets`: [`send_targets`] (only the first one of a request is answered, which bounds
///   the answer); a value that is neither `All` (discovery sessions), empty (normal sessions)
///   nor an iSCSI name is answered `SendTargets=Reject` so the initiator is never left waiting.
/// - `MaxRecvDataSegmentLength` (declarative in any phase, RFC 7143 §13.12): a valid value
///   becomes the session's limit for what the target sends; an invalid one gets `Reject`.
/// - `InitiatorAlias`: accepted silently (declarative).
/// - Keys negotiable only during login (security, operational): `Reject`.
/// - Unknown and X-/X# keys: `NotUnderstood` (RFC 7143 §6.2).
pub fn text_request_answer(
    pairs: &[(String, String)],
    session: &mut SessionParams,
    peer: Option<IpAddr>,
    targets: &[TargetEntry],
    portals: &[SocketAddr],
    tpgt: u16,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut answered_send_targets = false;
    for (k, v) in pairs {
        match Key::lookup(k) {
            Some(Key::SendTargets) if !answered_send_targets => {
                answered_send_targets = true;
                if send_targets_value_is_valid(v, session.session_type) {
                    out.extend(send_targets(v, session, peer, targets, portals, tpgt));
                } else {
                    push_pair(&mut out, k, REJECT);
                }
            }
            Some(Key::MaxRecvDataSegmentLength) => match parse_mrdsl(v) {
                Some(n) => session.initiator_mrdsl = n,
                None => push_pair(&mut out, k, REJECT),
            },
            Some(Key::SendTargets | Key::InitiatorAlias) => {}
            Some(key) if key.spec().usage != Usage::FullFeature => push_pair(&mut out, k, REJECT),
            Some(_) => {}
            None => push_pair(&mut out, k, NOT_UNDERSTOOD),
        }
    }
    out
}

/// RFC 7143 Appendix C: `All` (discovery sessions only), empty (normal sessions only: the
/// session's own target) or an iSCSI name (`iqn.`, `eui.`, `naa.`, RFC 7143 §4.2.7.2).
fn send_targets_value_is_valid(value: &str, session_type: SessionType) -> bool {
    let name = ["iqn.", "eui.", "naa."]
        .iter()
        .any(|p| value.len() > p.len() && value[..p.len()].eq_ignore_ascii_case(p));
    match (session_type, value) {
        (SessionType::Discovery, ALL) | (SessionType::Normal, "") => true,
        _ => name,
    }
}

/// RFC 7143 §13.12: 512..=2^24-1 in decimal or hex.
fn parse_mrdsl(v: &str) -> Option<u32> {
    let n = super::value::parse_number(v)?;
    (u64::from(MIN_DATA_LENGTH)..=u64::from(MAX_DATA_LENGTH))
        .contains(&n)
        .then_some(n as u32)
}

#[cfg(test)]
mod tests {
    use super::super::text::parse_pairs;
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV6};

    const PEER: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9)));

    fn targets() -> Vec<TargetEntry> {
        vec![
            TargetEntry {
                name: "iqn.2024-01.org.ringtgt:open".into(),
                alias: None,
                ..Default::default()
            },
            TargetEntry {
                name: "iqn.2024-01.org.ringtgt:acl".into(),
                alias: None,
                allowed_initiators: vec!["iqn.good".into()],
                ..Default::default()
            },
        ]
    }

    fn session(t: SessionType, initiator: &str, target: Option<&str>) -> SessionParams {
        let mut p = SessionParams::new(t, initiator.into());
        p.target_name = target.map(String::from);
        p
    }

    fn portals() -> Vec<SocketAddr> {
        vec![
            SocketAddr::from((Ipv4Addr::new(192, 0, 2, 1), 3260)),
            SocketAddr::V6(SocketAddrV6::new(
                "2001:db8::1".parse::<Ipv6Addr>().unwrap(),
                3261,
                0,
                7,
            )),
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, 3260)),
        ]
    }

    fn names(wire: &[u8]) -> Vec<(String, String)> {
        parse_pairs(wire).unwrap()
    }

    #[test]
    fn all_lists_visible_targets_with_every_portal() {
        let s = session(SessionType::Discovery, "iqn.good", None);
        let got = names(&send_targets("All", &s, PEER, &targets(), &portals(), 1));
        let expect: Vec<(String, String)> = [
            ("TargetName", "iqn.2024-01.org.ringtgt:open"),
            ("TargetAddress", "192.0.2.1:3260,1"),
            ("TargetAddress", "[2001:db8::1]:3261,1"),
            ("TargetName", "iqn.2024-01.org.ringtgt:acl"),
            ("TargetAddress", "192.0.2.1:3260,1"),
            ("TargetAddress", "[2001:db8::1]:3261,1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, expect);
    }

    #[test]
    fn acl_hides_targets() {
        let s = session(SessionType::Discovery, "iqn.other", None);
        let got = names(&send_targets("All", &s, PEER, &targets(), &portals(), 1));
        assert_eq!(got.iter().filter(|(k, _)| k == "TargetName").count(), 1);
        assert!(send_targets(
            "iqn.2024-01.org.ringtgt:acl",
            &s,
            PEER,
            &targets(),
            &portals(),
            1
        )
        .is_empty());
    }

    #[test]
    fn named_and_empty_values() {
        let d = session(SessionType::Discovery, "iqn.good", None);
        let one = names(&send_targets(
            "iqn.2024-01.org.ringtgt:ACL",
            &d,
            PEER,
            &targets(),
            &[],
            1,
        ));
        assert_eq!(
            one,
            vec![("TargetName".into(), "iqn.2024-01.org.ringtgt:acl".into())]
        );
        assert!(send_targets("", &d, PEER, &targets(), &portals(), 1).is_empty());
        let n = session(
            SessionType::Normal,
            "iqn.good",
            Some("iqn.2024-01.org.ringtgt:open"),
        );
        let own = names(&send_targets("", &n, PEER, &targets(), &portals()[..1], 3));
        assert_eq!(
            own,
            vec![
                ("TargetName".into(), "iqn.2024-01.org.ringtgt:open".into()),
                ("TargetAddress".into(), "192.0.2.1:3260,3".into())
            ]
        );
        assert!(send_targets("All", &n, PEER, &targets(), &portals(), 3).is_empty());
        let named = send_targets("iqn.2024-01.org.ringtgt:open", &n, PEER, &targets(), &[], 3);
        assert_eq!(names(&named).len(), 1);
        assert!(
            send_targets("iqn.2024-01.org.ringtgt:acl", &n, PEER, &targets(), &[], 3).is_empty()
        );
    }

    #[test]
    fn text_request_answers_other_keys() {
        let mut s = session(SessionType::Discovery, "iqn.good", None);
        let req: Vec<(String, String)> = [
            ("SendTargets", "All"),
            ("SendTargets", "All"),
            ("X-com.example.foo", "1"),
            ("MaxBurstLength", "4096"),
            ("InitiatorAlias", "h"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let got = names(&text_request_answer(&req, &mut s, PEER, &targets(), &[], 1));
        assert_eq!(
            got,
            [
                ("TargetName", "iqn.2024-01.org.ringtgt:open"),
                ("TargetName", "iqn.2024-01.org.ringtgt:acl"),
                ("X-com.example.foo", "NotUnderstood"),
                ("MaxBurstLength", "Reject"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
        );
    }

    #[test]
    fn invalid_send_targets_values_are_rejected_and_mrdsl_is_taken() {
        let kv = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        let mut d = session(SessionType::Discovery, "iqn.good", None);
        for bad in ["all", "ALL", "", "foo", "iqn."] {
            let got = names(&text_request_answer(
                &kv("SendTargets", bad),
                &mut d,
                PEER,
                &targets(),
                &[],
                1,
            ));
            assert_eq!(got, kv("SendTargets", "Reject"), "{bad:?}");
        }
        let unknown = "iqn.2024-01.org.ringtgt:nope";
        let got = text_request_answer(
            &kv("SendTargets", unknown),
            &mut d,
            PEER,
            &targets(),
            &[],
            1,
        );
        assert!(
            got.is_empty(),
            "an unknown (or hidden) name gets an empty answer"
        );
        let mut n = session(
            SessionType::Normal,
            "iqn.good",
            Some("iqn.2024-01.org.ringtgt:open"),
        );
        let got = names(&text_request_answer(
            &kv("SendTargets", "All"),
            &mut n,
            PEER,
            &targets(),
            &[],
            1,
        ));
        assert_eq!(
            got,
            kv("SendTargets", "Reject"),
            "All is for discovery sessions"
        );
        assert!(text_request_answer(
            &kv("MaxRecvDataSegmentLength", "16384"),
            &mut n,
            PEER,
            &targets(),
            &[],
            1
        )
        .is_empty());
        assert_eq!(n.initiator_mrdsl, 16384);
        let got = names(&text_request_answer(
            &kv("MaxRecvDataSegmentLength", "100"),
            &mut n,
            PEER,
            &targets(),
            &[],
            1,
        ));
        assert_eq!(got, kv("MaxRecvDataSegmentLength", "Reject"));
        assert_eq!(n.initiator_mrdsl, 16384);
    }

    #[test]
    fn discovery_hides_targets_the_peer_address_may_not_reach() {
        let lan = TargetEntry {
            name: "iqn.2024-01.org.ringtgt:lan".into(),
            allowed_networks: vec!["192.0.2.0/24".parse().unwrap()],
            ..Default::default()
        };
        let lan_and_name = TargetEntry {
            name: "iqn.2024-01.org.ringtgt:lan-good".into(),
            allowed_initiators: vec!["iqn.good".into()],
            ..lan.clone()
        };
        let all = [targets(), vec![lan, lan_and_name]].concat();
        let listed = |initiator: &str, peer: Option<IpAddr>| -> Vec<String> {
            let s = session(SessionType::Discovery, initiator, None);
            names(&send_targets("All", &s, peer, &all, &[], 1))
                .into_iter()
                .map(|(_, v)| v)
                .collect()
        };
        let inside = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 77)));
        let outside = Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 5)));
        let mapped = Some(IpAddr::V6(Ipv4Addr::new(192, 0, 2, 77).to_ipv6_mapped()));
        let open = "iqn.2024-01.org.ringtgt:open";
        let acl = "iqn.2024-01.org.ringtgt:acl";
        let lan = "iqn.2024-01.org.ringtgt:lan";
        let both = "iqn.2024-01.org.ringtgt:lan-good";
        assert_eq!(listed("iqn.good", inside), [open, acl, lan, both]);
        assert_eq!(listed("iqn.good", mapped), [open, acl, lan, both]);
        assert_eq!(listed("iqn.other", inside), [open, lan]);
        assert_eq!(listed("iqn.good", outside), [open, acl]);
        assert_eq!(listed("iqn.good", None), [open, acl]);
        let mut s = session(SessionType::Discovery, "iqn.good", None);
        assert!(send_targets(lan, &s, outside, &all, &[], 1).is_empty());
        let req = vec![("SendTargets".to_string(), "All".to_string())];
        let got = names(&text_request_answer(&req, &mut s, outside, &all, &[], 1));
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn a_target_with_port_groups_lists_their_portals_with_their_tags() {
        let mut t = targets();
        t[0].portal_groups = vec![
            super::super::identity::PortalGroup {
                tag: 2,
                portals: vec![portals()[1]],
            },
            super::super::identity::PortalGroup {
                tag: 3,
                portals: vec!["0.0.0.0:3260".parse().unwrap()],
            },
        ];
        let s = session(SessionType::Discovery, "iqn.any", None);
        let text = send_targets("iqn.2024-01.org.ringtgt:open", &s, PEER, &t, &portals(), 1);
        let pairs = crate::login::parse_pairs(&text).unwrap();
        let addresses: Vec<_> = pairs
            .iter()
            .filter(|(k, _)| k == "TargetAddress")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(addresses, vec!["[2001:db8::1]:3261,2", "192.0.2.1:3260,3"]);
    }
}
