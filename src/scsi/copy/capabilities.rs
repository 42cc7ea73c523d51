//! What the copy manager says about itself: RECEIVE COPY RESULTS, OPERATING PARAMETERS and the
//! Third-party Copy VPD page (SPC-4). Both report the same bounds, the ones the parameter list
//! checks enforce.

use super::super::cdb::{op, Cdb};
use super::super::{data_in, LuInfo, Plan};
use super::list::{CSCD_IDENTIFICATION, CSCD_ID_COPY_MANAGER, SEGMENT_BLOCK_TO_BLOCK};
use super::status::MAX_IDENTIFIED_COPIES;
use super::{
    MAX_CSCD_DESCRIPTORS, MAX_DESCRIPTOR_LIST_LENGTH, MAX_SEGMENT_BYTES, MAX_SEGMENT_DESCRIPTORS,
    SA_COPY_STATUS, SA_EXTENDED_COPY_LID1, SA_OPERATING_PARAMETERS,
};

/// Descriptor type codes implemented, ascending (OPERATING PARAMETERS lists them in order).
const IMPLEMENTED_DESCRIPTORS: [u8; 2] = [SEGMENT_BLOCK_TO_BLOCK, CSCD_IDENTIFICATION];
/// OPERATING PARAMETERS byte 4 bit 0: SNLID, LIST ID USAGE 11b (no list identifier) supported.
const SNLID: u8 = 0x01;
/// OPERATING PARAMETERS length without the implemented descriptor type codes.
const OPERATING_PARAMETERS_LEN: usize = 44;
/// TOTAL CONCURRENT COPIES. Copies without a list identifier are bounded by the session's
/// command window, which the copy manager does not see; what it bounds itself is the
/// identified copies of each I_T nexus, so that is the number reported here, as for MAXIMUM
/// CONCURRENT COPIES.
const TOTAL_CONCURRENT_COPIES: u16 = MAX_IDENTIFIED_COPIES as u16;

/// SPC-4 Third-party Copy VPD page descriptor types.
const TPC_SUPPORTED_COMMANDS: u16 = 0x0001;
const TPC_PARAMETER_DATA: u16 = 0x0004;
const TPC_SUPPORTED_DESCRIPTORS: u16 = 0x0008;
const TPC_SUPPORTED_CSCD_IDS: u16 = 0x000C;
const TPC_GENERAL_COPY_OPERATIONS: u16 = 0x8001;
/// DESCRIPTOR LENGTH of the fixed-size descriptors.
const PARAMETER_DATA_LEN: usize = 0x1C;
const GENERAL_COPY_OPERATIONS_LEN: usize = 0x20;

/// DATA SEGMENT GRANULARITY (a power of two): segments move whole logical blocks.
fn data_segment_granularity(lu: &LuInfo) -> u8 {
    lu.block_size.max(1).trailing_zeros() as u8
}

/// SPC-4 RECEIVE COPY RESULTS, OPERATING PARAMETERS (LID1). The LIST IDENTIFIER is ignored.
pub(super) fn operating_parameters(lu: &LuInfo, cdb: Cdb) -> Plan {
    let mut d = vec![0u8; OPERATING_PARAMETERS_LEN];
    let len = OPERATING_PARAMETERS_LEN - 4 + IMPLEMENTED_DESCRIPTORS.len();
    d[0..4].copy_from_slice(&(len as u32).to_be_bytes());
    d[4] = SNLID;
    d[8..10].copy_from_slice(&MAX_CSCD_DESCRIPTORS.to_be_bytes());
    d[10..12].copy_from_slice(&MAX_SEGMENT_DESCRIPTORS.to_be_bytes());
    d[12..16].copy_from_slice(&MAX_DESCRIPTOR_LIST_LENGTH.to_be_bytes());
    d[16..20].copy_from_slice(&max_segment_length().to_be_bytes());
    // MAXIMUM INLINE DATA LENGTH, HELD DATA LIMIT, MAXIMUM STREAM DEVICE TRANSFER SIZE (20..=31)
    // stay zero: no inline data, no held data, no stream devices.
    d[34..36].copy_from_slice(&TOTAL_CONCURRENT_COPIES.to_be_bytes());
    d[36] = MAX_IDENTIFIED_COPIES as u8;
    d[37] = data_segment_granularity(lu);
    d[43] = IMPLEMENTED_DESCRIPTORS.len() as u8;
    d.extend_from_slice(&IMPLEMENTED_DESCRIPTORS);
    data_in(d, cdb.be32(10))
}

fn max_segment_length() -> u32 {
    u32::try_from(MAX_SEGMENT_BYTES).unwrap_or(u32::MAX)
}

/// The SPC-4 Third-party Copy VPD page body: the descriptors SPC-4 requires of a copy manager
/// that supports EXTENDED COPY (LID1).
pub(in crate::scsi) fn third_party_copy_page(lu: &LuInfo) -> Vec<u8> {
    let mut d = Vec::new();
    // Supported Commands: each command's operation code and its service actions.
    let commands = [
        (op::EXTENDED_COPY, &[SA_EXTENDED_COPY_LID1][..]),
        (
            op::RECEIVE_COPY_RESULTS,
            &[SA_COPY_STATUS, SA_OPERATING_PARAMETERS][..],
        ),
    ];
    let mut list = Vec::new();
    for (opcode, actions) in commands {
        list.push(opcode);
        list.push(actions.len() as u8);
        list.extend_from_slice(actions);
    }
    let mut body = vec![list.len() as u8];
    body.extend_from_slice(&list);
    descriptor(&mut d, TPC_SUPPORTED_COMMANDS, &body);
    let mut body = vec![0u8; PARAMETER_DATA_LEN];
    body[4..6].copy_from_slice(&MAX_CSCD_DESCRIPTORS.to_be_bytes());
    body[6..8].copy_from_slice(&MAX_SEGMENT_DESCRIPTORS.to_be_bytes());
    body[8..12].copy_from_slice(&MAX_DESCRIPTOR_LIST_LENGTH.to_be_bytes());
    // MAXIMUM INLINE DATA LENGTH (12..=15) stays zero.
    descriptor(&mut d, TPC_PARAMETER_DATA, &body);
    let mut body = vec![IMPLEMENTED_DESCRIPTORS.len() as u8];
    body.extend_from_slice(&IMPLEMENTED_DESCRIPTORS);
    descriptor(&mut d, TPC_SUPPORTED_DESCRIPTORS, &body);
    let mut body = 2u16.to_be_bytes().to_vec();
    body.extend_from_slice(&CSCD_ID_COPY_MANAGER.to_be_bytes());
    descriptor(&mut d, TPC_SUPPORTED_CSCD_IDS, &body);
    let mut body = vec![0u8; GENERAL_COPY_OPERATIONS_LEN];
    body[0..4].copy_from_slice(&u32::from(TOTAL_CONCURRENT_COPIES).to_be_bytes());
    body[4..8].copy_from_slice(&(MAX_IDENTIFIED_COPIES as u32).to_be_bytes());
    body[8..12].copy_from_slice(&max_segment_length().to_be_bytes());
    body[12] = data_segment_granularity(lu);
    // INLINE DATA GRANULARITY (byte 13) stays zero.
    descriptor(&mut d, TPC_GENERAL_COPY_OPERATIONS, &body);
    d
}

/// SPC-4 third-party copy descriptor: TYPE, LENGTH, then the body padded to a multiple of four.
fn descriptor(d: &mut Vec<u8>, kind: u16, body: &[u8]) {
    let padded = body.len().next_multiple_of(4);
    d.extend_from_slice(&kind.to_be_bytes());
    d.extend_from_slice(&(padded as u16).to_be_bytes());
    d.extend_from_slice(body);
    d.resize(d.len() + padded - body.len(), 0);
}
