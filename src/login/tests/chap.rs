//! CHAP through whole logins (RFC 7143 §12.1.3): one-way and mutual, every algorithm, and each
//! way an initiator can get it wrong. Challenges come from `counting_source(0x10)`: identifier
//! 16, challenge bytes 0x11, 0x12, …

use std::sync::Arc;

use super::*;
use crate::login::value::hex_constant;

const USER: &str = "alice";
const USER_SECRET: &str = "alice-secret-12";
const TARGET_USER: &str = "target-tgt";
const TARGET_SECRET: &str = "target-secret-34";

fn one_way() -> ChapPolicy {
    ChapPolicy::new(ChapCredentials::new(USER, USER_SECRET))
}

fn mutual() -> ChapPolicy {
    one_way().with_mutual(ChapCredentials::new(TARGET_USER, TARGET_SECRET))
}

/// A harness whose target DISK requires `policy`.
fn harness(policy: ChapPolicy) -> Harness {
    let mut h = Harness::new();
    h.targets[0].chap = Some(Arc::new(policy));
    h
}

/// The first request as libiscsi sends it: T=1, AuthMethod=CHAP,None.
fn first_request(h: &mut Harness) -> LoginAction {
    h.send_kv(
        SEC,
        OP,
        true,
        &[
            ("InitiatorName", GOOD),
            ("TargetName", DISK),
            ("SessionType", "Normal"),
            ("AuthMethod", "CHAP,None"),
        ],
    )
}

/// The target must answer the first request with CHAP and stay in the security stage.
fn offer_chap(h: &mut Harness) {
    let (rsp, data) = respond(first_request(h));
    assert!(!rsp.transit, "no transit before CHAP is done");
    assert_eq!(get(&data, "AuthMethod").as_deref(), Some("CHAP"));
}

/// The target's challenge: algorithm, identifier and challenge bytes.
struct Challenge {
    algorithm: ChapAlgorithm,
    id: u8,
    bytes: Vec<u8>,
}

impl Challenge {
    /// The initiator's correct CHAP_R.
    fn answer(&self, secret: &str) -> String {
        hex_constant(
            &self
                .algorithm
                .response(self.id, &secret.into(), &self.bytes),
        )
    }
}

fn challenge(h: &mut Harness, algorithms: &str) -> Challenge {
    let (rsp, data) = respond(h.send_kv(SEC, OP, false, &[("CHAP_A", algorithms)]));
    assert!(!rsp.transit);
    let code: u64 = get(&data, "CHAP_A").unwrap().parse().unwrap();
    let id: u8 = get(&data, "CHAP_I").unwrap().parse().unwrap();
    let c = get(&data, "CHAP_C").unwrap();
    assert!(c.starts_with("0x"), "challenges are sent in hex: {c}");
    Challenge {
        algorithm: ChapAlgorithm::from_code(code).unwrap(),
        id,
        bytes: value::parse_large_binary(&c, 1024).unwrap(),
    }
}

/// Offer CHAP and take an MD5 challenge.
fn to_response(h: &mut Harness) -> Challenge {
    offer_chap(h);
    challenge(h, "5")
}

/// Sends the response keys with T=1 towards the operational stage.
fn send_response(h: &mut Harness, kv: &[(&str, &str)]) -> LoginAction {
    h.send_kv(SEC, OP, true, kv)
}

/// Sends the right response to `c` with the initiator's own CHAP_I and CHAP_C.
fn send_mutual(h: &mut Harness, c: &Challenge, i: &str, cc: &str) -> LoginAction {
    let r = c.answer(USER_SECRET);
    let kv = [
        ("CHAP_N", USER),
        ("CHAP_R", &r),
        ("CHAP_I", i),
        ("CHAP_C", cc),
    ];
    send_response(h, &kv)
}

/// A failure with the given status and no text: nothing hints at what was wrong.
#[track_caller]
fn fails_silently(action: LoginAction, status: LoginStatus) {
    let (rsp, data) = fail(action);
    assert_eq!(rsp.status, status);
    assert!(data.is_empty(), "failure text {:?}", pairs(&data));
}

#[test]
fn one_way_chap_succeeds_with_each_algorithm() {
    for (code, len) in [(5, 16), (6, 20), (7, 32), (8, 32)] {
        let mut h = harness(one_way());
        offer_chap(&mut h);
        let c = challenge(&mut h, &code.to_string());
        assert_eq!(u64::from(c.algorithm.code()), code);
        assert_eq!(c.id, 0x10);
        assert_eq!(c.bytes, (0x11..0x11 + len).collect::<Vec<u8>>(), "{code}");
        let r = c.answer(USER_SECRET);
        let (rsp, data) = respond(send_response(&mut h, &[("CHAP_N", USER), ("CHAP_R", &r)]));
        assert!(rsp.transit && rsp.nsg == OP, "CHAP_A={code}");
        assert_eq!(get(&data, "CHAP_N"), None);
        assert_eq!(get(&data, "CHAP_R"), None);
        let o = ready(h.send_kv(OP, FFP, true, &[]));
        assert_eq!(o.params.target_name.as_deref(), Some(DISK));
    }
}

/// The initiator's response hard-coded from Python, not computed by the code under test:
/// `hashlib.md5(bytes([16]) + b"alice-secret-12" + bytes(range(0x11, 0x21))).hexdigest()`.
#[test]
fn md5_login_as_libiscsi_performs_it() {
    let mut h = harness(one_way());
    offer_chap(&mut h);
    let c = challenge(&mut h, "5");
    assert_eq!(c.answer(USER_SECRET), "0x5723cee4f42ba05b24d93c59a8264b2b");
    let (rsp, _) = respond(send_response(
        &mut h,
        &[
            ("CHAP_N", USER),
            ("CHAP_R", "0x5723CEE4F42BA05B24D93C59A8264B2B"),
        ],
    ));
    assert!(rsp.transit);
    ready(h.send_kv(OP, FFP, true, &[]));
}

/// Target responses hard-coded from Python:
/// `hashlib.new(alg, bytes([77]) + b"target-secret-34" + bytes(range(0xc0, 0xe0))).hexdigest()`.
#[test]
fn mutual_chap_answers_the_initiators_challenge() {
    let initiator_challenge = hex_constant(&(0xc0..0xe0).collect::<Vec<u8>>());
    for (alg, expected) in [
        ("5", "0xdafae8e9c9a9de781c53327731376e42"),
        (
            "7",
            "0xdb1e89f37001f684535e27c90793c6fa24732fb2feedcedd1ab6d10a75d641b5",
        ),
    ] {
        let mut h = harness(mutual());
        offer_chap(&mut h);
        let c = challenge(&mut h, alg);
        let (rsp, data) = respond(send_response(
            &mut h,
            &[
                ("CHAP_N", USER),
                ("CHAP_R", &c.answer(USER_SECRET)),
                ("CHAP_I", "77"),
                ("CHAP_C", &initiator_challenge),
            ],
        ));
        assert!(rsp.transit && rsp.csg == SEC, "CHAP_N/CHAP_R come with T=1");
        assert_eq!(get(&data, "CHAP_N").as_deref(), Some(TARGET_USER));
        assert_eq!(get(&data, "CHAP_R").as_deref(), Some(expected));
        ready(h.send_kv(OP, FFP, true, &[]));
    }
}

#[test]
fn mutual_answer_rides_on_the_final_response_of_a_direct_transit() {
    let mut h = harness(mutual());
    let c = to_response(&mut h);
    let ic = hex_constant(&[0x5a; 16]);
    ready(h.send_kv(
        SEC,
        FFP,
        true,
        &[
            ("CHAP_N", USER),
            ("CHAP_R", &c.answer(USER_SECRET)),
            ("CHAP_I", "0"),
            ("CHAP_C", &ic),
        ],
    ));
    let (fin, data) = h.login.accept(3, 0x1000);
    assert!(fin.transit && (fin.csg, fin.nsg) == (SEC, FFP));
    let expected = ChapAlgorithm::Md5.response(0, &TARGET_SECRET.into(), &[0x5a; 16]);
    assert_eq!(get(&data, "CHAP_N").as_deref(), Some(TARGET_USER));
    assert_eq!(get(&data, "CHAP_R"), Some(hex_constant(&expected)));
}

#[test]
fn wrong_secret_and_wrong_user_fail_alike() {
    let mut answers = Vec::new();
    for (user, secret) in [(USER, "not-the-secret"), ("mallory", USER_SECRET)] {
        let mut h = harness(one_way());
        let c = to_response(&mut h);
        let r = c.answer(secret);
        let (rsp, data) = fail(send_response(&mut h, &[("CHAP_N", user), ("CHAP_R", &r)]));
        answers.push((rsp.status, data));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(
        answers[0],
        (LoginStatus::AUTHENTICATION_FAILURE, Vec::new())
    );
}

#[test]
fn missing_response_or_name_is_a_missing_parameter() {
    for kv in [
        ("CHAP_N", USER),
        ("CHAP_R", "0x00112233445566778899aabbccddeeff"),
    ] {
        let mut h = harness(one_way());
        to_response(&mut h);
        fails_silently(send_response(&mut h, &[kv]), LoginStatus::MISSING_PARAMETER);
    }
}

#[test]
fn only_none_offered_while_chap_is_required_is_rejected() {
    let mut h = harness(one_way());
    let (rsp, data) = fail(h.security(DISK));
    assert_eq!(rsp.status, LoginStatus::AUTHENTICATION_FAILURE);
    assert_eq!(pairs(&data), [("AuthMethod".into(), "Reject".into())]);
}

#[test]
fn skipping_the_security_stage_fails_when_chap_is_required() {
    let identity = [("InitiatorName", GOOD), ("TargetName", DISK)];
    let mut h = harness(one_way());
    fails_silently(
        h.send_kv(OP, FFP, true, &identity),
        LoginStatus::AUTHENTICATION_FAILURE,
    );
    let mut h = harness(one_way());
    fails_silently(
        h.send_kv(OP, FFP, false, &identity),
        LoginStatus::AUTHENTICATION_FAILURE,
    );
    for nsg in [OP, FFP] {
        let mut h = harness(one_way());
        fails_silently(
            h.send_kv(SEC, nsg, true, &identity),
            LoginStatus::AUTHENTICATION_FAILURE,
        );
    }
    // Without a policy the same logins are fine.
    let mut h = Harness::new();
    ready(h.send_kv(OP, FFP, true, &identity));
}

#[test]
fn transit_before_the_exchange_completes_fails() {
    // After AuthMethod, before CHAP_A.
    let mut h = harness(one_way());
    offer_chap(&mut h);
    fails_silently(
        h.send_kv(SEC, OP, true, &[]),
        LoginStatus::AUTHENTICATION_FAILURE,
    );
    // After the challenge, without a response.
    let mut h = harness(one_way());
    to_response(&mut h);
    fails_silently(
        h.send_kv(SEC, FFP, true, &[("X-com.example.k", "1")]),
        LoginStatus::AUTHENTICATION_FAILURE,
    );
    // A transit request that moves the exchange on is answered T=0 instead.
    let mut h = harness(one_way());
    offer_chap(&mut h);
    let (rsp, data) = respond(h.send_kv(SEC, OP, true, &[("CHAP_A", "5")]));
    assert!(!rsp.transit);
    assert_eq!(get(&data, "CHAP_A").as_deref(), Some("5"));
}

#[test]
fn a_request_without_transit_may_wait_during_the_exchange() {
    let mut h = harness(one_way());
    offer_chap(&mut h);
    let (rsp, _) = respond(h.send_kv(SEC, OP, false, &[]));
    assert!(!rsp.transit);
    let c = challenge(&mut h, "5");
    respond(h.send_kv(
        SEC,
        OP,
        false,
        &[("CHAP_N", USER), ("CHAP_R", &c.answer(USER_SECRET))],
    ));
    let (rsp, _) = respond(h.send_kv(SEC, OP, true, &[]));
    assert!(rsp.transit);
}

#[test]
fn chap_a_list_is_answered_with_the_first_allowed_value() {
    let mut h = harness(ChapPolicy {
        algorithms: vec![ChapAlgorithm::Sha256, ChapAlgorithm::Sha1],
        ..one_way()
    });
    offer_chap(&mut h);
    let c = challenge(&mut h, "99,bogus,5,0x6,7");
    assert_eq!(
        c.algorithm,
        ChapAlgorithm::Sha1,
        "initiator's order, hex too"
    );
}

#[test]
fn chap_a_without_an_allowed_value_is_rejected() {
    let mut h = harness(ChapPolicy {
        algorithms: vec![ChapAlgorithm::Sha256],
        ..one_way()
    });
    offer_chap(&mut h);
    let (rsp, data) = fail(h.send_kv(SEC, OP, false, &[("CHAP_A", "5,6,x,0x105")]));
    assert_eq!(rsp.status, LoginStatus::AUTHENTICATION_FAILURE);
    assert_eq!(pairs(&data), [("CHAP_A".into(), "Reject".into())]);
}

#[test]
fn reflected_challenge_is_refused() {
    let mut h = harness(mutual());
    let c = to_response(&mut h);
    let reflected = hex_constant(&c.bytes);
    fails_silently(
        send_mutual(&mut h, &c, &c.id.to_string(), &reflected),
        LoginStatus::AUTHENTICATION_FAILURE,
    );
}

/// Mutual CHAP asked for but not configured, and configured but not asked for, both fail.
#[test]
fn mutual_policy_and_request_must_agree() {
    let mut h = harness(one_way());
    let c = to_response(&mut h);
    let asked = send_mutual(&mut h, &c, "1", "0x0102030405060708090a0b0c0d0e0f10");
    fails_silently(asked, LoginStatus::AUTHENTICATION_FAILURE);
    let mut h = harness(mutual());
    let c = to_response(&mut h);
    let r = c.answer(USER_SECRET);
    let not_asked = send_response(&mut h, &[("CHAP_N", USER), ("CHAP_R", &r)]);
    fails_silently(not_asked, LoginStatus::AUTHENTICATION_FAILURE);
}

#[test]
fn half_of_the_mutual_pair_is_a_missing_parameter() {
    for kv in [("CHAP_I", "1"), ("CHAP_C", "0x0102030405060708")] {
        let mut h = harness(mutual());
        let c = to_response(&mut h);
        let r = c.answer(USER_SECRET);
        fails_silently(
            send_response(&mut h, &[("CHAP_N", USER), ("CHAP_R", &r), kv]),
            LoginStatus::MISSING_PARAMETER,
        );
    }
}

#[test]
fn responses_and_challenges_may_be_hex_or_base64() {
    use base64::Engine as _;
    let b64 = |b: &[u8]| format!("0b{}", base64::engine::general_purpose::STANDARD.encode(b));
    let mut h = harness(mutual());
    let c = to_response(&mut h);
    let r = c.algorithm.response(c.id, &USER_SECRET.into(), &c.bytes);
    let (_, data) = respond(send_response(
        &mut h,
        &[
            ("CHAP_N", USER),
            ("CHAP_R", &b64(&r)),
            ("CHAP_I", "0xff"),
            ("CHAP_C", &b64(&[9; 20])),
        ],
    ));
    let expected = ChapAlgorithm::Md5.response(255, &TARGET_SECRET.into(), &[9; 20]);
    assert_eq!(get(&data, "CHAP_R"), Some(hex_constant(&expected)));
    let mut h = harness(one_way());
    let c = to_response(&mut h);
    let upper = c.answer(USER_SECRET).replacen("0x", "0X", 1);
    respond(send_response(
        &mut h,
        &[("CHAP_N", USER), ("CHAP_R", &upper)],
    ));
}

#[test]
fn names_that_look_like_hex_are_compared_as_sent() {
    let hexish = "0x616c696365"; // "alice" if it were decoded
    let policy = ChapPolicy::new(ChapCredentials::new(hexish, USER_SECRET));
    let mut h = harness(policy.clone());
    let c = to_response(&mut h);
    let r = c.answer(USER_SECRET);
    respond(send_response(&mut h, &[("CHAP_N", hexish), ("CHAP_R", &r)]));
    let mut h = harness(policy);
    let c = to_response(&mut h);
    let r = c.answer(USER_SECRET);
    fails_silently(
        send_response(&mut h, &[("CHAP_N", "alice"), ("CHAP_R", &r)]),
        LoginStatus::AUTHENTICATION_FAILURE,
    );
}

#[test]
fn malformed_or_oversize_values_fail_authentication() {
    let oversize = format!("0x{}", "ab".repeat(1025));
    for r in [
        "zzz",
        "0x",
        "0xg0",
        "12345",
        "0bAQI",
        "0b",
        oversize.as_str(),
    ] {
        let mut h = harness(one_way());
        to_response(&mut h);
        fails_silently(
            send_response(&mut h, &[("CHAP_N", USER), ("CHAP_R", r)]),
            LoginStatus::AUTHENTICATION_FAILURE,
        );
    }
    for (i, c) in [
        ("256", "0x0102"),
        ("-1", "0x0102"),
        ("one", "0x0102"),
        ("1", "0x"),
        ("1", oversize.as_str()),
    ] {
        let mut h = harness(mutual());
        let ch = to_response(&mut h);
        fails_silently(
            send_mutual(&mut h, &ch, i, c),
            LoginStatus::AUTHENTICATION_FAILURE,
        );
    }
}

#[test]
fn responses_are_never_truncated_or_padded() {
    let mut h = harness(one_way());
    let c = to_response(&mut h);
    let right = c.answer(USER_SECRET);
    for wrong in [format!("{right}00"), right[..right.len() - 1].to_string()] {
        let mut h2 = harness(one_way());
        to_response(&mut h2);
        fails_silently(
            send_response(&mut h2, &[("CHAP_N", USER), ("CHAP_R", &wrong)]),
            LoginStatus::AUTHENTICATION_FAILURE,
        );
    }
    respond(send_response(
        &mut h,
        &[("CHAP_N", USER), ("CHAP_R", &right)],
    ));
}

/// A scripted part of a login, ending with the request under test.
type Step = dyn Fn(&mut Harness) -> LoginAction;

#[test]
fn chap_keys_out_of_turn_are_protocol_errors() {
    let chap_a_with_auth_method = |h: &mut Harness| {
        h.send_kv(
            SEC,
            OP,
            false,
            &[
                ("InitiatorName", GOOD),
                ("TargetName", DISK),
                ("AuthMethod", "CHAP"),
                ("CHAP_A", "5"),
            ],
        )
    };
    let response_with_algorithm = |h: &mut Harness| {
        offer_chap(h);
        h.send_kv(SEC, OP, false, &[("CHAP_A", "5"), ("CHAP_N", USER)])
    };
    let algorithm_twice = |h: &mut Harness| {
        to_response(h);
        h.send_kv(SEC, OP, false, &[("CHAP_A", "5")])
    };
    let duplicate_in_one_request = |h: &mut Harness| {
        offer_chap(h);
        h.send_kv(SEC, OP, false, &[("CHAP_A", "5"), ("CHAP_A", "5")])
    };
    let other_method_key = |h: &mut Harness| {
        offer_chap(h);
        h.send_kv(SEC, OP, false, &[("SRP_U", "alice")])
    };
    let after_completion = |h: &mut Harness| {
        let c = to_response(h);
        let r = c.answer(USER_SECRET);
        respond(h.send_kv(SEC, OP, false, &[("CHAP_N", USER), ("CHAP_R", &r)]));
        h.send_kv(SEC, OP, false, &[("CHAP_N", USER)])
    };
    let in_operational_stage = |h: &mut Harness| {
        let c = to_response(h);
        let r = c.answer(USER_SECRET);
        respond(send_response(h, &[("CHAP_N", USER), ("CHAP_R", &r)]));
        h.send_kv(OP, FFP, true, &[("CHAP_A", "5")])
    };
    let cases: [(&str, &Step); 7] = [
        ("CHAP_A with AuthMethod", &chap_a_with_auth_method),
        ("CHAP_N with CHAP_A", &response_with_algorithm),
        ("CHAP_A twice", &algorithm_twice),
        ("CHAP_A twice in one request", &duplicate_in_one_request),
        ("another method's key", &other_method_key),
        ("after completion", &after_completion),
        ("operational stage", &in_operational_stage),
    ];
    for (what, case) in cases {
        let mut h = harness(one_way());
        let (rsp, data) = fail(case(&mut h));
        assert_eq!(rsp.status, LoginStatus::INITIATOR_ERROR, "{what}");
        assert!(data.is_empty(), "{what}");
    }
}

fn discovery(h: &mut Harness, method: &str) -> LoginAction {
    h.send_kv(
        SEC,
        OP,
        true,
        &[
            ("InitiatorName", GOOD),
            ("SessionType", "Discovery"),
            ("AuthMethod", method),
        ],
    )
}

#[test]
fn discovery_policy_applies_to_discovery_sessions_only() {
    let with_discovery_chap = || {
        let mut h = Harness::new();
        h.discovery_chap = Some(one_way());
        h
    };
    let mut h = with_discovery_chap();
    let (rsp, _) = fail(discovery(&mut h, "None"));
    assert_eq!(rsp.status, LoginStatus::AUTHENTICATION_FAILURE);
    let mut h = with_discovery_chap();
    respond(discovery(&mut h, "CHAP,None"));
    let c = challenge(&mut h, "7");
    let r = c.answer(USER_SECRET);
    respond(send_response(&mut h, &[("CHAP_N", USER), ("CHAP_R", &r)]));
    let o = ready(h.send_kv(OP, FFP, true, &[]));
    assert_eq!(o.params.session_type, SessionType::Discovery);
    // Normal sessions to a target without its own policy need no CHAP.
    let mut h = with_discovery_chap();
    let (_, data) = respond(h.security(DISK));
    assert_eq!(get(&data, "AuthMethod").as_deref(), Some("None"));
    // And a target's policy does not apply to discovery.
    let mut h = harness(one_way());
    let (_, data) = respond(discovery(&mut h, "CHAP,None"));
    assert_eq!(get(&data, "AuthMethod").as_deref(), Some("None"));
}

#[test]
fn each_login_draws_a_fresh_challenge_from_the_os() {
    let mut seen = Vec::new();
    for _ in 0..2 {
        let mut h = harness(one_way());
        h.login = Login::new();
        offer_chap(&mut h);
        let (_, data) = respond(h.send_kv(SEC, OP, false, &[("CHAP_A", "5")]));
        seen.push(get(&data, "CHAP_C").unwrap());
    }
    assert_ne!(seen[0], seen[1]);
    assert_eq!(seen[0].len(), 2 + 2 * 16);
}

#[test]
fn no_randomness_is_a_target_error() {
    let mut h = harness(one_way());
    h.login = Login::with_challenge_source(|_: &mut [u8]| {
        Err(RandomUnavailable("entropy pool closed".into()))
    });
    offer_chap(&mut h);
    fails_silently(
        h.send_kv(SEC, OP, false, &[("CHAP_A", "5")]),
        LoginStatus::TARGET_ERROR,
    );
}

#[test]
fn chap_on_a_target_behind_an_acl_checks_the_acl_first() {
    let mut h = harness(one_way());
    h.targets[0].allowed_initiators = vec!["iqn.someone-else".into()];
    fails_silently(first_request(&mut h), LoginStatus::AUTHORIZATION_FAILURE);
}
