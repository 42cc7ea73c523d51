//! Text spanning several PDUs in both directions (RFC 7143 §11.12.2, §11.13.2: C bit).

use super::*;

fn send_cont(h: &mut Harness, csg: Stage, data: &[u8]) -> LoginAction {
    let req = h.req(csg, OP, false, true);
    h.send(req, data)
}

#[test]
fn request_text_split_mid_pair_is_reassembled() {
    let mut h = Harness::new();
    let text = encode_pairs(&[
        ("InitiatorName", GOOD),
        ("TargetName", DISK),
        ("SessionType", "Normal"),
        ("AuthMethod", "None"),
    ]);
    let (a, rest) = text.split_at(10);
    let (b, c) = rest.split_at(25);
    for part in [a, b] {
        let (rsp, data) = respond(send_cont(&mut h, SEC, part));
        assert!(data.is_empty());
        assert!(!rsp.transit && !rsp.cont);
        assert_eq!(rsp.csg, SEC);
    }
    let req = h.req(SEC, OP, true, false);
    let (rsp, data) = respond(h.send(req, c));
    assert!(rsp.transit);
    assert_eq!(get(&data, "AuthMethod").as_deref(), Some("None"));
    assert_eq!(get(&data, "TargetPortalGroupTag").as_deref(), Some("1"));
}

#[test]
fn continued_text_must_stay_in_its_stage() {
    let mut h = Harness::new();
    respond(send_cont(&mut h, SEC, b"InitiatorName=iqn"));
    let st = fail_status(h.send_kv(OP, FFP, true, &[]));
    assert_eq!(st, LoginStatus::INITIATOR_ERROR);
}

#[test]
fn accumulated_text_beyond_64k_is_refused() {
    let mut h = Harness::new();
    let chunk = vec![b'a'; 8192];
    for _ in 0..8 {
        respond(send_cont(&mut h, SEC, &chunk));
    }
    let st = fail_status(send_cont(&mut h, SEC, b"x"));
    assert_eq!(st, LoginStatus::INITIATOR_ERROR);
}

#[test]
fn one_megabyte_in_one_pdu_is_refused() {
    let mut h = Harness::new();
    let req = h.req(SEC, OP, true, false);
    let st = fail_status(h.send(req, &vec![b'A'; 1 << 20]));
    assert_eq!(st, LoginStatus::INITIATOR_ERROR);
}

/// Many unknown keys make an answer longer than 8192 bytes.
fn many_unknown_keys(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("X-com.example.key{i:05}"), "v".into()))
        .collect()
}

#[test]
fn long_answer_is_sent_in_pieces_and_transit_comes_last() {
    let mut h = Harness::new();
    to_operational(&mut h);
    let keys = many_unknown_keys(600);
    let req = h.req(OP, FFP, true, false);
    let mut received = Vec::new();
    let mut action = h.send(req, &encode_pairs(&keys));
    let mut pieces = 0;
    let outcome = loop {
        match action {
            LoginAction::Respond(rsp, data) => {
                assert!(rsp.cont, "intermediate pieces carry C=1");
                assert!(!rsp.transit);
                assert!(data.len() <= MAX_LOGIN_DATA);
                assert_eq!(data.last(), Some(&0), "pieces end on pair boundaries");
                received.extend(data);
                pieces += 1;
                let req = h.req(OP, FFP, true, false);
                action = h.send(req, &[]);
            }
            LoginAction::Ready(o) => break o,
            LoginAction::Fail(_, _, r) => panic!("failed: {r}"),
        }
    };
    assert!(pieces >= 2);
    let (fin, last) = h.login.accept(3, 0x1000 + 8);
    assert!(fin.transit && !fin.cont);
    received.extend(last);
    let answers = pairs(&received);
    assert_eq!(
        answers.iter().filter(|(_, v)| v == "NotUnderstood").count(),
        600
    );
    assert_eq!(outcome.params.target_mrdsl, 262_144);
}

#[test]
fn long_answer_ends_without_transit_when_last_collect_has_t0() {
    let mut h = Harness::new();
    to_operational(&mut h);
    let req = h.req(OP, FFP, true, false);
    let (rsp, _) = respond(h.send(req, &encode_pairs(&many_unknown_keys(400))));
    assert!(rsp.cont);
    let mut last = rsp;
    while last.cont {
        let req = h.req(OP, FFP, false, false);
        last = respond(h.send(req, &[])).0;
    }
    assert!(!last.transit);
    ready(h.send_kv(OP, FFP, true, &[]));
}

#[test]
fn new_text_while_the_answer_is_incomplete_is_an_error() {
    let mut h = Harness::new();
    to_operational(&mut h);
    let req = h.req(OP, FFP, false, false);
    let (rsp, _) = respond(h.send(req, &encode_pairs(&many_unknown_keys(400))));
    assert!(rsp.cont);
    let st = fail_status(h.send_kv(OP, FFP, false, &[("MaxBurstLength", "65536")]));
    assert_eq!(st, LoginStatus::INITIATOR_ERROR);
}

#[test]
fn answer_amplification_is_bounded() {
    let mut h = Harness::new();
    to_operational(&mut h);
    // ~64 KiB of one-letter unknown keys would be answered with ~5x as much text.
    let mut text = Vec::new();
    while text.len() + 4 < 60_000 {
        text.extend_from_slice(b"Q=1\0");
    }
    let req = h.req(OP, FFP, false, false);
    let st = fail_status(h.send(req, &text));
    assert_eq!(st, LoginStatus::INITIATOR_ERROR);
}
