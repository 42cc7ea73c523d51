//! Hostile input: random bytes and random headers must never panic, and a failed login stays
//! failed.

use super::*;

/// xorshift64*: a deterministic generator, no dependency needed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
}

/// Bytes biased towards text syntax so that the parser's deeper paths are reached.
fn text_bytes(rng: &mut Rng, max: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"=\0=\0AaZz09.-_#x,~ \xff\xc3\x28";
    let len = rng.below(max as u64 + 1) as usize;
    (0..len)
        .map(|_| match rng.below(4) {
            0 => rng.next() as u8,
            _ => ALPHABET[rng.below(ALPHABET.len() as u64) as usize],
        })
        .collect()
}

/// Real key names with random or hostile values.
fn keyish_text(rng: &mut Rng) -> Vec<u8> {
    const KEYS: &[&str] = &[
        "InitiatorName",
        "TargetName",
        "SessionType",
        "AuthMethod",
        "HeaderDigest",
        "DataDigest",
        "MaxBurstLength",
        "FirstBurstLength",
        "MaxRecvDataSegmentLength",
        "InitialR2T",
        "ImmediateData",
        "MaxConnections",
        "ErrorRecoveryLevel",
        "DefaultTime2Wait",
        "TargetAlias",
        "CHAP_A",
        "X-foo",
        "IFMarkInt",
        "TaskReporting",
        "iSCSIProtocolLevel",
    ];
    const VALUES: &[&str] = &[
        "",
        "0",
        "512",
        "0x200",
        "0bAAAA",
        "99999999999999999999999",
        "Yes",
        "No",
        "None",
        "CRC32C,None",
        "Discovery",
        "Normal",
        "CHAP",
        "iqn.x",
        "Reject",
        "NotUnderstood",
        "-1",
        "0x",
        "RFC3720",
    ];
    let mut out = Vec::new();
    for _ in 0..rng.below(12) {
        let k = KEYS[rng.below(KEYS.len() as u64) as usize];
        let v = VALUES[rng.below(VALUES.len() as u64) as usize];
        out.extend_from_slice(k.as_bytes());
        out.push(b'=');
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    if rng.chance(8) {
        out.pop();
    }
    out
}

#[test]
fn random_bytes_never_panic_the_parser() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        let data = text_bytes(&mut rng, 300);
        if let Ok(pairs) = parse_pairs(&data) {
            for (k, v) in &pairs {
                assert!(!k.is_empty() && k.len() <= text::MAX_KEY_LEN);
                assert!(!k.contains('=') && !k.contains('\0') && !v.contains('\0'));
            }
        }
    }
}

fn random_request(rng: &mut Rng, h: &Harness) -> LoginRequest {
    let mut req = h.req(
        Stage(rng.below(4) as u8),
        Stage(rng.below(4) as u8),
        rng.chance(2),
        rng.chance(5),
    );
    if rng.chance(20) {
        req.version_min = rng.next() as u8;
    }
    if rng.chance(30) {
        req.isid[0] ^= 1;
    }
    if rng.chance(30) {
        req.cid = rng.next() as u16;
    }
    req
}

#[test]
fn random_requests_never_panic_the_machine() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for round in 0..3000 {
        let offer = if round % 3 == 0 {
            TargetOffer {
                header_digest: DigestPolicy::Require,
                immediate_data: false,
                max_burst_length: 4096,
                ..TargetOffer::default()
            }
        } else {
            TargetOffer::default()
        };
        let mut h = Harness::with_offer(offer);
        let mut failed = false;
        for _ in 0..rng.below(10) + 1 {
            let req = random_request(&mut rng, &h);
            let data = match rng.below(3) {
                0 => text_bytes(&mut rng, 200),
                _ => keyish_text(&mut rng),
            };
            let action = h.send(req, &data);
            match action {
                LoginAction::Fail(..) => failed = true,
                _ if failed => panic!("a failed login came back to life"),
                LoginAction::Ready(_) => {
                    h.login.accept(rng.next() as u16, rng.next() as u32);
                }
                LoginAction::Respond(..) => {}
            }
        }
    }
}

#[test]
fn plausible_logins_with_random_values_never_panic() {
    let mut rng = Rng(42);
    for _ in 0..3000 {
        let mut h = Harness::new();
        let mut first = encode_pairs(&[("InitiatorName", GOOD), ("TargetName", DISK)]);
        first.extend(keyish_text(&mut rng));
        let req = h.req(SEC, OP, true, false);
        h.send(req, &first);
        for _ in 0..3 {
            let req = h.req(OP, FFP, rng.chance(2), rng.chance(4));
            let data = keyish_text(&mut rng);
            if let LoginAction::Ready(_) = h.send(req, &data) {
                break;
            }
        }
    }
}

#[test]
fn malformed_text_fails_with_initiator_error() {
    let cases: [&[u8]; 6] = [
        b"InitiatorName=iqn.x",        // no NUL
        b"InitiatorName\0",            // no '='
        b"=iqn.x\0",                   // empty key
        b"InitiatorName=\xff\xfe\0",   // not UTF-8
        b"Initiator Name=iqn.x\0",     // bad key character
        b"InitiatorName=iqn.x\0\0K\0", // a later pair without '='
    ];
    for data in cases {
        let mut h = Harness::new();
        let req = h.req(SEC, OP, true, false);
        let st = match h.send(req, data) {
            LoginAction::Fail(r, ..) => r.status,
            other => panic!("{data:?}: {other:?}"),
        };
        assert_eq!(st, LoginStatus::INITIATOR_ERROR, "{data:?}");
    }
}

#[test]
fn huge_numbers_and_base64_forms_are_rejected_not_fatal() {
    let mut h = Harness::new();
    to_operational(&mut h);
    let (_, data) = respond(h.send_kv(
        OP,
        FFP,
        false,
        &[
            ("MaxBurstLength", "0bAAAAAA=="),
            (
                "FirstBurstLength",
                "340282366920938463463374607431768211456",
            ),
            ("MaxOutstandingR2T", "0xffffffffffffffffff"),
        ],
    ));
    for (_, v) in pairs(&data)
        .into_iter()
        .filter(|(k, _)| k != "MaxRecvDataSegmentLength")
    {
        assert_eq!(v, "Reject");
    }
}
