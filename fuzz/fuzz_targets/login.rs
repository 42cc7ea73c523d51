//! Login text parsing and the whole login negotiation of one connection.
//!
//! Input: one byte of options (bits 0-1 pick the target's offer, bit 2 refuses the login at
//! registration instead of accepting it, bit 3 requires CHAP for discovery (bit 4: mutual),
//! bits 5-6 pick the initiator's address: none, 127.0.0.1, 10.1.2.3 or fd00::1), two bytes of
//! TSIH for the accept (also seeding the CHAP challenges), then Login Requests
//! as on the wire without digests (BHS, AHS, data segment, padding): recorded logins are seeds
//! as they are. The opcode is not checked, every PDU is taken as a Login Request.
//!
//! Checks: no panic; every response's data fits in the 8192 bytes an initiator accepts during
//! login; failure is sticky; after `Ready` the final response is a success with T=1 and
//! NSG=full feature, and the machine then refuses any further request.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use ringtgt::login::{
    parse_pairs, DigestPolicy, Login, LoginAction, LoginEnv, TargetOffer, MAX_LOGIN_DATA,
};
use ringtgt::pdu::login::{LoginRequest, LoginResponse, LoginStatus, Stage};
use ringtgt_fuzz::{chap_policy, login_targets, Reader};

fn offer(choice: u8) -> TargetOffer {
    let default = TargetOffer::default();
    match choice & 3 {
        0 => default,
        // A cautious target: digests required, solicited data only, small PDUs and bursts.
        1 => TargetOffer {
            max_recv_data_segment_length: 512,
            max_burst_length: 512,
            first_burst_length: 512,
            max_outstanding_r2t: 1,
            initial_r2t: true,
            immediate_data: false,
            header_digest: DigestPolicy::Require,
            data_digest: DigestPolicy::Require,
            ..default
        },
        // Digests refused, unusual times.
        2 => TargetOffer {
            header_digest: DigestPolicy::Never,
            data_digest: DigestPolicy::Never,
            default_time2wait: 0,
            default_time2retain: 3600,
            ..default
        },
        // Every limit at the top of its RFC range.
        _ => TargetOffer {
            max_recv_data_segment_length: (1 << 24) - 1,
            max_burst_length: (1 << 24) - 1,
            first_burst_length: (1 << 24) - 1,
            max_outstanding_r2t: u16::MAX,
            default_time2wait: 3600,
            default_time2retain: 3600,
            ..default
        },
    }
}

fn check_response_data(data: &[u8]) {
    assert!(
        data.len() <= MAX_LOGIN_DATA,
        "login response carries {} bytes",
        data.len()
    );
}

fuzz_target!(|input: &[u8]| {
    let _ = parse_pairs(input);

    let mut r = Reader::new(input);
    let options = r.u8();
    let tsih = r.u16();
    let targets = login_targets();
    let offer = offer(options);
    let discovery_chap = chap_policy(options & 16 != 0);
    let peer = match (options >> 5) & 3 {
        0 => None,
        1 => Some(IpAddr::from([127, 0, 0, 1])),
        2 => Some(IpAddr::from([10, 1, 2, 3])),
        _ => Some(IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, 1])),
    };
    let env = LoginEnv {
        targets: &targets,
        portal_group_tag: 1,
        local: (options & 16 != 0).then(|| ([127, 0, 0, 1], 3260).into()),
        offer: &offer,
        discovery_chap: (options & 8 != 0).then_some(&discovery_chap),
        peer,
    };
    // Challenges from the input, so that a run is repeatable.
    let mut seed = u64::from(tsih) | 1;
    let mut login = Login::with_challenge_source(move |buf: &mut [u8]| {
        for b in buf.iter_mut() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            *b = seed as u8;
        }
        Ok(())
    });
    // Set once the machine must refuse every further request: after a failure, and after the
    // final response.
    let mut ended = false;
    while let Some(pdu) = r.pdu() {
        let _ = parse_pairs(pdu.data);
        let req = LoginRequest::decode(&pdu.bhs);
        match login.handle(&env, &req, pdu.data) {
            LoginAction::Respond(rsp, data) => {
                assert!(!ended, "a request answered after the login ended");
                assert!(rsp.status.is_success());
                check_response_data(&data);
            }
            LoginAction::Fail(rsp, data, _) => {
                assert!(!rsp.status.is_success());
                check_response_data(&data);
                ended = true;
            }
            LoginAction::Ready(outcome) => {
                assert!(!ended, "a login completed twice");
                let (rsp, data) = if options & 4 != 0 {
                    login.refuse(LoginStatus::TOO_MANY_CONNECTIONS)
                } else {
                    login.accept(tsih, outcome.cmd_sn.wrapping_add(127))
                };
                check_response_data(&data);
                check_final(&rsp, options & 4 == 0);
                ended = true;
            }
        }
    }
});

fn check_final(rsp: &LoginResponse, accepted: bool) {
    if accepted {
        assert!(rsp.status.is_success());
        assert!(rsp.transit && rsp.nsg == Stage::FULL_FEATURE);
    } else {
        assert!(!rsp.status.is_success());
        assert!(!rsp.transit);
    }
}
