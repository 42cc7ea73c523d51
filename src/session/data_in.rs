//! Sending a command's results: Data-In split by the initiator's MaxRecvDataSegmentLength and
//! MaxBurstLength, status collapsed into the last Data-In when possible, or a SCSI Response.

use super::full::Session;
use super::output::Output;
use super::stats::OpClass;
use crate::backstore::IoBuf;
use crate::pdu::scsi::{sense_segment, DataIn, Residual, ScsiResponse, ScsiResponseCode};
use crate::pdu::RESERVED_TAG;
use crate::scsi::{Completion, ScsiStatus};

/// Identifies the command being answered.
#[derive(Debug, Clone, Copy)]
pub(super) struct Reply {
    pub itt: u32,
    pub lun_raw: u64,
    /// Expected Data Transfer Length from the command PDU.
    pub edtl: u32,
    /// R2Ts sent for the command (they count toward ExpDataSN, RFC 7143 §11.4.8).
    pub r2t_count: u32,
    /// For the session's counters: what the command is and when it arrived.
    pub class: OpClass,
    pub started: std::time::Instant,
}

/// Where a command's Data-In comes from: bytes the SCSI layer built (copied into the staging
/// buffer), or a buffer the backing store filled (sent from where it is).
pub(super) enum Source<'a> {
    Bytes(&'a [u8]),
    Buf(IoBuf),
    /// This many zeros (a read of a store that keeps nothing).
    Zeros(usize),
}

/// A `Source` once placed: the buffer has moved into the output, which sends from it.
enum Placed<'a> {
    Bytes(&'a [u8]),
    Held(usize),
    Zeros,
}

impl Session {
    /// Sends `data` (the command's full Data-In) and its status. `data` may be longer than the EDTL:
    /// only EDTL bytes go on the wire and the rest is reported as residual overflow.
    pub(super) fn send_read_result(
        &mut self,
        r: Reply,
        data: Source<'_>,
        c_status: ScsiStatus,
        sense: &[u8],
        out: &mut Output,
    ) {
        let (len, placed) = match data {
            Source::Bytes(b) => (b.len(), Placed::Bytes(b)),
            Source::Buf(buf) => (buf.len(), Placed::Held(out.hold(buf))),
            Source::Zeros(len) => (len, Placed::Zeros),
        };
        let residual = Residual::of(r.edtl, len as u64);
        let send_len = len.min(r.edtl as usize);
        let collapse = c_status == ScsiStatus::GOOD && sense.is_empty() && send_len > 0;
        let data_sn = self.send_data_in(r, &placed, send_len, collapse.then_some(residual), out);
        if collapse {
            self.count_command(&r, c_status, residual);
        } else {
            self.send_response(r, c_status, sense, residual, data_sn, out);
        }
    }

    /// Sends Data-In PDUs; with `status_residual`, the last one carries GOOD status (S bit).
    /// Returns the number of Data-In PDUs sent.
    fn send_data_in(
        &mut self,
        r: Reply,
        data: &Placed<'_>,
        total: usize,
        status_residual: Option<Residual>,
        out: &mut Output,
    ) -> u32 {
        let mrdsl = (self.params.initiator_mrdsl as usize).max(512);
        let burst = (self.params.max_burst_length as usize).max(mrdsl);
        let mut data_sn = 0u32;
        let mut offset = 0usize;
        while offset < total {
            let burst_end = (offset - offset % burst + burst).min(total);
            let len = mrdsl.min(burst_end - offset);
            let last = offset + len == total;
            // RFC 7143 §11.7.1: F ends each sequence (MaxBurstLength) and the command's data.
            let final_bit = last || offset + len == burst_end;
            let status = if last { status_residual } else { None };
            let stat_sn = if status.is_some() {
                self.next_stat_sn()
            } else {
                0
            };
            let pdu = DataIn {
                final_bit,
                ack: false,
                status: status.map(|_| ScsiStatus::GOOD.0),
                residual: status.unwrap_or_default(),
                lun: r.lun_raw,
                itt: r.itt,
                ttt: RESERVED_TAG,
                stat_sn,
                exp_cmd_sn: self.exp_cmd_sn(),
                max_cmd_sn: self.max_cmd_sn(),
                data_sn,
                buffer_offset: offset as u32,
            };
            match data {
                Placed::Bytes(b) => out.pdu(&pdu.encode(), &b[offset..offset + len]),
                Placed::Held(buf) => out.pdu_from_buf(&pdu.encode(), *buf, offset..offset + len),
                Placed::Zeros => out.pdu_of_zeros(&pdu.encode(), len),
            }
            data_sn = data_sn.wrapping_add(1);
            offset += len;
        }
        data_sn
    }

    pub(super) fn send_response(
        &mut self,
        r: Reply,
        status: ScsiStatus,
        sense: &[u8],
        residual: Residual,
        data_in_count: u32,
        out: &mut Output,
    ) {
        self.count_command(&r, status, residual);
        let rsp = ScsiResponse {
            residual,
            response: ScsiResponseCode::COMMAND_COMPLETED,
            status: status.0,
            itt: r.itt,
            stat_sn: self.next_stat_sn(),
            exp_cmd_sn: self.exp_cmd_sn(),
            max_cmd_sn: self.max_cmd_sn(),
            exp_data_sn: data_in_count.wrapping_add(r.r2t_count),
        };
        if sense.is_empty() {
            out.pdu(&rsp.encode(), &[]);
        } else {
            out.pdu(&rsp.encode(), &sense_segment(sense));
        }
    }

    /// Counts a command whose status is going out: bytes moved are the EDTL less any underflow.
    fn count_command(&mut self, r: &Reply, status: ScsiStatus, residual: Residual) {
        let lun = crate::scsi::decode_lun(r.lun_raw).unwrap_or(u16::MAX);
        let bytes = if residual.underflow {
            r.edtl.saturating_sub(residual.count)
        } else {
            r.edtl
        };
        let ok = status == ScsiStatus::GOOD || status == ScsiStatus::CONDITION_MET;
        let latency = self.now.saturating_duration_since(r.started);
        self.stats
            .record(lun, r.class, u64::from(bytes), ok, latency);
    }

    /// Answers a command the SCSI layer completed without backing-store I/O.
    pub(super) fn send_completion(&mut self, r: Reply, c: &Completion, out: &mut Output) {
        if c.data.is_empty() {
            let residual = Residual::of(r.edtl, 0);
            self.send_response(r, c.status, &c.sense, residual, 0, out);
        } else {
            self.send_read_result(r, Source::Bytes(&c.data), c.status, &c.sense, out);
        }
    }
}
