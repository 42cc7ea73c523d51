//! Login-side access control: the initiator's name and address must both be allowed by the
//! target (authorization failure, 0x0202, otherwise).

use std::net::Ipv6Addr;

use super::*;

/// A harness whose target DISK accepts only `networks` (and SECRET only GOOD, as always).
fn harness(networks: &[&str], peer: Option<IpAddr>) -> Harness {
    let mut h = Harness::new();
    h.peer = peer;
    for t in &mut h.targets {
        t.allowed_networks = networks.iter().map(|n| n.parse().unwrap()).collect();
    }
    h
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> Option<IpAddr> {
    Some(IpAddr::V4(Ipv4Addr::new(a, b, c, d)))
}

#[track_caller]
fn admitted(h: &mut Harness, target: &str) {
    respond(h.security(target));
}

#[track_caller]
fn refused(h: &mut Harness, target: &str) {
    let (rsp, data) = fail(h.security(target));
    assert_eq!(rsp.status, LoginStatus::AUTHORIZATION_FAILURE);
    assert!(data.is_empty());
}

#[test]
fn ipv4_networks_admit_only_their_addresses() {
    let nets = ["192.0.2.0/25", "198.51.100.7/32"];
    admitted(&mut harness(&nets, v4(192, 0, 2, 100)), DISK);
    admitted(&mut harness(&nets, v4(198, 51, 100, 7)), DISK);
    refused(&mut harness(&nets, v4(192, 0, 2, 200)), DISK);
    refused(&mut harness(&nets, v4(198, 51, 100, 8)), DISK);
}

#[test]
fn ipv6_networks_admit_only_their_addresses() {
    let nets = ["2001:db8:a::/48"];
    let inside = "2001:db8:a:1::9".parse::<Ipv6Addr>().unwrap();
    let outside = "2001:db8:b::9".parse::<Ipv6Addr>().unwrap();
    admitted(&mut harness(&nets, Some(IpAddr::V6(inside))), DISK);
    refused(&mut harness(&nets, Some(IpAddr::V6(outside))), DISK);
    refused(&mut harness(&nets, v4(192, 0, 2, 1)), DISK);
}

#[test]
fn ipv4_mapped_peers_match_ipv4_networks() {
    let mapped = |a, b, c, d| Some(IpAddr::V6(Ipv4Addr::new(a, b, c, d).to_ipv6_mapped()));
    admitted(&mut harness(&["192.0.2.0/24"], mapped(192, 0, 2, 5)), DISK);
    refused(
        &mut harness(&["192.0.2.0/24"], mapped(203, 0, 113, 5)),
        DISK,
    );
}

#[test]
fn unknown_peer_is_refused_only_when_networks_are_set() {
    refused(&mut harness(&["0.0.0.0/0"], None), DISK);
    admitted(&mut harness(&[], None), DISK);
}

#[test]
fn name_and_network_must_both_be_allowed() {
    let nets = ["192.0.2.0/24"];
    admitted(&mut harness(&nets, v4(192, 0, 2, 1)), SECRET);
    refused(&mut harness(&nets, v4(203, 0, 113, 1)), SECRET);
    let mut h = harness(&nets, v4(192, 0, 2, 1));
    h.targets[1].allowed_initiators = vec!["iqn.someone-else".into()];
    refused(&mut h, SECRET);
}

#[test]
fn outcome_carries_the_authorized_peer() {
    let mut h = harness(&["192.0.2.0/24"], v4(192, 0, 2, 1));
    to_operational(&mut h);
    let o = ready(h.send_kv(OP, FFP, true, &[]));
    assert_eq!(o.peer, v4(192, 0, 2, 1));
}
