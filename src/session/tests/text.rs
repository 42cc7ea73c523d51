//! Text requests in full feature phase: requests in several PDUs, declarations that change the
//! session, and answers (never silence) for what the target does not take.

use super::*;
use crate::pdu::text::{TextRequest, TextResponse};

fn text(p: &mut Pair, itt: u32, ttt: u32, cont: bool, data: &[u8]) -> Vec<(Bhs, Vec<u8>)> {
    let req = TextRequest {
        immediate: true,
        final_bit: !cont,
        cont,
        lun: 0,
        itt,
        ttt,
        cmd_sn: p.cmd_sn,
        exp_stat_sn: 0,
    };
    p.send(&req.encode(), data);
    p.recv()
}

#[test]
fn a_text_request_in_several_pdus_is_collected_and_answered_whole() {
    let mut p = Pair::logged_in(default_offer(), Tuning::default(), &[]);
    let whole = b"X-com.example.a=1\0SendTargets=\0";
    let (first, rest) = whole.split_at(9);
    let pdus = text(&mut p, 3, RESERVED_TAG, true, first);
    let ack = TextResponse::decode(&pdus[0].0);
    assert!(
        !ack.final_bit && pdus[0].1.is_empty(),
        "an empty answer asks for the rest"
    );
    assert_ne!(ack.ttt, RESERVED_TAG);
    let pdus = text(&mut p, 3, ack.ttt, false, rest);
    let answer = String::from_utf8_lossy(&pdus[0].1).to_string();
    assert!(TextResponse::decode(&pdus[0].0).final_bit);
    assert!(answer.contains("X-com.example.a=NotUnderstood"), "{answer}");
    assert!(answer.contains(&format!("TargetName={TARGET}")), "{answer}");
}

#[test]
fn bad_send_targets_values_get_reject_not_silence() {
    let mut p = Pair::logged_in(default_offer(), Tuning::default(), &[]);
    let pdus = text(&mut p, 4, RESERVED_TAG, false, b"SendTargets=All\0");
    assert_eq!(
        pdus[0].1, b"SendTargets=Reject\0",
        "All is for discovery sessions"
    );
}

#[test]
fn a_new_max_recv_data_segment_length_resizes_data_in() {
    let keys = [("MaxRecvDataSegmentLength", "8192")];
    let mut p = Pair::logged_in(default_offer(), Tuning::default(), &keys);
    let pdus = text(
        &mut p,
        5,
        RESERVED_TAG,
        false,
        b"MaxRecvDataSegmentLength=4096\0",
    );
    assert!(pdus[0].1.is_empty(), "a declaration needs no answer");
    p.command(6, &rw10(0x28, 0, 16), 8192, true, false, &[]);
    p.run_io();
    let sizes: Vec<usize> = p.recv().iter().map(|(_, d)| d.len()).collect();
    assert_eq!(sizes, vec![4096, 4096]);
}
