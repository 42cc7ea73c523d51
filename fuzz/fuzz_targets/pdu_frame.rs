//! PDU framing and every BHS decoder.
//!
//! Input: one byte of options (bit 0 header digest, bit 1 data digest, bit 2 repair the digests
//! of the first PDU so that its payload is reached), three bytes of data-segment limit (big
//! endian), then the receive buffer: one or more PDUs as on the wire.
//!
//! Checks: `frame::parse` never panics, accounts for exactly the bytes of the PDU it returns,
//! and re-encoding a parsed frame parses back to the same frame; every decoder's output encodes
//! and decodes back to itself; an Extended-CDB AHS never panics the CDB assembly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringtgt::pdu::digest::crc32c;
use ringtgt::pdu::frame::{self, Layout, DIGEST_LEN};
use ringtgt::pdu::login::{LoginRequest, LoginResponse};
use ringtgt::pdu::logout::{LogoutRequest, LogoutResponse};
use ringtgt::pdu::nop::{NopIn, NopOut};
use ringtgt::pdu::reject::{AsyncMessage, Reject, Snack};
use ringtgt::pdu::scsi::{self, DataIn, DataOut, R2t, ScsiCommand, ScsiResponse};
use ringtgt::pdu::text::{TextRequest, TextResponse};
use ringtgt::pdu::tmf::{TmfRequest, TmfResponse};
use ringtgt::pdu::{Bhs, Digests, Frame, BHS_LEN};
use ringtgt_fuzz::Reader;

fuzz_target!(|input: &[u8]| {
    let mut r = Reader::new(input);
    let options = r.u8();
    let digests = Digests {
        header: options & 1 != 0,
        data: options & 2 != 0,
    };
    let limit = r.take(3);
    let max_data = limit
        .iter()
        .fold(0usize, |acc, &b| acc << 8 | usize::from(b));
    let mut buf = r.rest().to_vec();
    if options & 4 != 0 {
        repair_digests(&mut buf, digests);
    }

    let mut first = [0u8; BHS_LEN];
    let n = buf.len().min(BHS_LEN);
    first[..n].copy_from_slice(&buf[..n]);
    decoders_round_trip(&Bhs(first));

    // The buffer as a stream, the way a connection consumes it.
    let mut rest = &buf[..];
    while let Ok(Some((f, used))) = frame::parse(rest, digests, max_data) {
        check_frame(&f, used, rest, digests, max_data);
        decoders_round_trip(&f.bhs);
        let mut cdb = Vec::new();
        if scsi::full_cdb(&ScsiCommand::decode(&f.bhs), f.ahs, &mut cdb).is_some() {
            assert!(cdb.len() >= 16 && cdb.len() <= 16 + f.ahs.len());
        }
        rest = &rest[used..];
    }
});

/// Writes correct digests into the first PDU of `buf`, where it is long enough to hold them.
fn repair_digests(buf: &mut [u8], digests: Digests) {
    let Some(bhs) = Bhs::from_slice(buf) else {
        return;
    };
    let layout = Layout::of(&bhs, digests);
    let covered = BHS_LEN + layout.ahs_len;
    if digests.header && buf.len() >= covered + DIGEST_LEN {
        let crc = crc32c(&buf[..covered]);
        buf[covered..covered + DIGEST_LEN].copy_from_slice(&crc.to_le_bytes());
    }
    let start = layout.header_len();
    let end = start + layout.padded_data_len();
    if digests.data && layout.data_len > 0 && buf.len() >= end + DIGEST_LEN {
        let crc = crc32c(&buf[start..end]);
        buf[end..end + DIGEST_LEN].copy_from_slice(&crc.to_le_bytes());
    }
}

fn check_frame(f: &Frame<'_>, used: usize, buf: &[u8], digests: Digests, max_data: usize) {
    let layout = Layout::of(&f.bhs, digests);
    assert_eq!(used, layout.total_len());
    assert!(used <= buf.len());
    assert_eq!(f.bhs.0[..], buf[..BHS_LEN]);
    assert_eq!(f.ahs.len(), f.bhs.total_ahs_len());
    assert_eq!(f.data.len(), f.bhs.data_segment_len());
    assert!(f.data.len() <= max_data);

    // Re-encoding gives a PDU that parses back to the same frame.
    let mut wire = Vec::new();
    frame::encode(&mut wire, &f.bhs, f.ahs, f.data, digests);
    let (again, n) = frame::parse(&wire, digests, max_data)
        .expect("a re-encoded frame has valid digests")
        .expect("a re-encoded frame is complete");
    assert_eq!(n, wire.len());
    assert_eq!(n, used);
    assert_eq!(again.bhs, f.bhs);
    assert_eq!(again.ahs, f.ahs);
    assert_eq!(again.data, f.data);
    // With zero padding, the wire bytes are the input bytes (digests included).
    let pad = layout.header_len() + f.data.len()..layout.header_len() + layout.padded_data_len();
    if buf[pad].iter().all(|&b| b == 0) {
        assert_eq!(wire[..], buf[..used]);
    }
}

/// Every decoder's value survives encode → decode unchanged, and encodes its own opcode.
fn decoders_round_trip(b: &Bhs) {
    macro_rules! round_trip {
        ($($t:ty => $op:ident),* $(,)?) => {$(
            let value = <$t>::decode(b);
            let encoded = value.encode();
            assert_eq!(encoded.opcode(), ringtgt::pdu::Opcode::$op, stringify!($t));
            assert_eq!(<$t>::decode(&encoded), value, stringify!($t));
        )*};
    }
    round_trip!(
        LoginRequest => LOGIN_REQUEST,
        LoginResponse => LOGIN_RESPONSE,
        LogoutRequest => LOGOUT_REQUEST,
        LogoutResponse => LOGOUT_RESPONSE,
        NopOut => NOP_OUT,
        NopIn => NOP_IN,
        Reject => REJECT,
        AsyncMessage => ASYNC_MESSAGE,
        Snack => SNACK_REQUEST,
        ScsiCommand => SCSI_COMMAND,
        ScsiResponse => SCSI_RESPONSE,
        DataOut => DATA_OUT,
        DataIn => DATA_IN,
        R2t => R2T,
        TextRequest => TEXT_REQUEST,
        TextResponse => TEXT_RESPONSE,
        TmfRequest => TASK_MGMT_REQUEST,
        TmfResponse => TASK_MGMT_RESPONSE,
    );
    let _ = b.opcode().name();
    let mut copy = *b;
    copy.set_data_segment_len(b.data_segment_len());
    assert_eq!(copy, *b, "the 24-bit data segment length round-trips");
}
