//! PERSISTENT RESERVE IN (SPC-4): READ KEYS, READ RESERVATION, REPORT CAPABILITIES and READ
//! FULL STATUS, answered from a snapshot of the state.

use super::{PrState, PrType, LU_SCOPE};
use crate::scsi::cdb::Cdb;
use crate::scsi::sense::Sense;

/// SPC-4 PERSISTENT RESERVE IN service action codes (CDB byte 1 bits 4..0).
pub mod service_action {
    pub const READ_KEYS: u8 = 0x00;
    pub const READ_RESERVATION: u8 = 0x01;
    pub const REPORT_CAPABILITIES: u8 = 0x02;
    pub const READ_FULL_STATUS: u8 = 0x03;
}
use service_action as sa;

/// REPORT CAPABILITIES byte 2: CRH (bit 4: RESERVE/RELEASE follow SPC-4's exceptions when
/// persistent reservations exist), SIP_C (bit 3: SPEC_I_PT), ATP_C (bit 2: ALL_TG_PT),
/// PTPL_C (bit 0: APTPL).
const CAPABILITIES: u8 = 0x10 | 0x08 | 0x04 | 0x01;
/// REPORT CAPABILITIES byte 3: TMV (bit 7: the type mask is valid), ALLOW COMMANDS 011b (bits
/// 6..4: TEST UNIT READY passes Write Exclusive and Exclusive Access reservations, MODE SENSE,
/// REPORT SUPPORTED OPERATION CODES and the like pass Write Exclusive ones), PTPL_A (bit 0).
const TMV: u8 = 0x80;
const ALLOW_COMMANDS: u8 = 0b011 << 4;
const PTPL_A: u8 = 0x01;
/// READ FULL STATUS descriptor byte 12: ALL_TG_PT (bit 1), R_HOLDER (bit 0).
const DESC_ALL_TG_PT: u8 = 0x02;
const DESC_R_HOLDER: u8 = 0x01;

/// PERSISTENT RESERVE IN: the Data-In, cut to the ALLOCATION LENGTH (bytes 7..=8) while its
/// ADDITIONAL LENGTH keeps describing the whole data (SPC-4).
pub fn reserve_in(state: &PrState, cdb: &[u8]) -> Result<Vec<u8>, Sense> {
    let cdb = Cdb::new(cdb);
    let mut data = match cdb.u8(1) & 0x1F {
        sa::READ_KEYS => read_keys(state),
        sa::READ_RESERVATION => read_reservation(state),
        sa::REPORT_CAPABILITIES => report_capabilities(state),
        sa::READ_FULL_STATUS => read_full_status(state),
        _ => return Err(Sense::invalid_field_in_cdb().at_cdb(1, Some(4))),
    };
    data.truncate(usize::from(cdb.be16(7)));
    Ok(data)
}

/// PRGENERATION and ADDITIONAL LENGTH, then `body`.
fn with_header(state: &PrState, body: Vec<u8>) -> Vec<u8> {
    let mut data = Vec::with_capacity(8 + body.len());
    data.extend_from_slice(&state.generation.to_be_bytes());
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    data.extend_from_slice(&len.to_be_bytes());
    data.extend_from_slice(&body);
    data
}

fn scope_type(kind: PrType) -> u8 {
    (LU_SCOPE << 4) | (kind.0 & 0x0F)
}

/// SPC-4 READ KEYS: one 8-byte key per registration.
fn read_keys(state: &PrState) -> Vec<u8> {
    let keys = state.registrations.iter().flat_map(|r| r.key.to_be_bytes());
    with_header(state, keys.collect())
}

/// SPC-4 READ RESERVATION: nothing after the header when nothing is reserved, else the key
/// (zero for all-registrants types), and SCOPE and TYPE in byte 13 of the 16-byte descriptor.
fn read_reservation(state: &PrState) -> Vec<u8> {
    let Some(reservation) = &state.reservation else {
        return with_header(state, Vec::new());
    };
    let mut body = vec![0u8; 16];
    body[..8].copy_from_slice(&state.reservation_key().to_be_bytes());
    body[13] = scope_type(reservation.kind);
    with_header(state, body)
}

/// SPC-4 REPORT CAPABILITIES: LENGTH 8, the capability bits and the type mask.
fn report_capabilities(state: &PrState) -> Vec<u8> {
    let mut mask = 0u16;
    for kind in PrType::ALL {
        mask |= type_mask_bit(kind);
    }
    let ptpl_a = if state.aptpl { PTPL_A } else { 0 };
    let [m0, m1] = mask.to_be_bytes();
    vec![
        0,
        8,
        CAPABILITIES,
        TMV | ALLOW_COMMANDS | ptpl_a,
        m0,
        m1,
        0,
        0,
    ]
}

/// SPC-4 PERSISTENT RESERVATION TYPE MASK bit of a type (bytes 4..=5 as one big-endian word).
fn type_mask_bit(kind: PrType) -> u16 {
    match kind {
        PrType::WRITE_EXCLUSIVE_ALL_REGISTRANTS => 0x8000,
        PrType::EXCLUSIVE_ACCESS_REGISTRANTS_ONLY => 0x4000,
        PrType::WRITE_EXCLUSIVE_REGISTRANTS_ONLY => 0x2000,
        PrType::EXCLUSIVE_ACCESS => 0x0800,
        PrType::WRITE_EXCLUSIVE => 0x0200,
        PrType::EXCLUSIVE_ACCESS_ALL_REGISTRANTS => 0x0001,
        _ => 0,
    }
}

/// SPC-4 READ FULL STATUS: one descriptor per registration with its key, ALL_TG_PT, whether it
/// holds the reservation (and then SCOPE and TYPE), the relative target port and the
/// TransportID. A registration of a name-only TransportID or of all target ports stands for
/// every I_T nexus it covers, so R_HOLDER is set when it covers the holder.
fn read_full_status(state: &PrState) -> Vec<u8> {
    let mut body = Vec::new();
    for r in &state.registrations {
        let holder = match &state.reservation {
            None => None,
            Some(res) => match &res.holder {
                None => Some(res.kind),
                Some(h) => r.nexuses.covers(h).then_some(res.kind),
            },
        };
        let mut flags = 0;
        if r.nexuses.relative_port.is_none() {
            flags |= DESC_ALL_TG_PT;
        }
        if holder.is_some() {
            flags |= DESC_R_HOLDER;
        }
        let id = r.nexuses.initiator.encode();
        body.extend_from_slice(&r.key.to_be_bytes());
        body.extend_from_slice(&[0; 4]);
        body.push(flags);
        body.push(holder.map_or(0, scope_type));
        body.extend_from_slice(&[0; 4]);
        body.extend_from_slice(&r.nexuses.relative_port.unwrap_or(0).to_be_bytes());
        let id_len = u32::try_from(id.len()).unwrap_or(u32::MAX);
        body.extend_from_slice(&id_len.to_be_bytes());
        body.extend_from_slice(&id);
    }
    with_header(state, body)
}
