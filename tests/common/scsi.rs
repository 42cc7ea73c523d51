//! SCSI commands over the session (RFC 7143 §11.3–§11.8): Data-In gathering (status may ride in
//! the last Data-In), and every write path — immediate data, unsolicited Data-Out, and answers to
//! R2Ts — chosen from the negotiated InitialR2T / ImmediateData / FirstBurstLength.

use std::time::Duration;

use ringtgt::pdu::scsi::{DataIn, DataOut, R2t, Residual, ScsiCommand, ScsiResponse};
use ringtgt::pdu::{Bhs, Opcode, RESERVED_TAG};

use super::cdb::{self, Sense, CHECK_CONDITION, GOOD, UNIT_ATTENTION};
use super::initiator::Initiator;

/// Task attribute SIMPLE (RFC 7143 §11.3.1).
const ATTR_SIMPLE: u8 = 1;

/// After an R2T, how long to wait for more R2Ts before answering, so that the test sees how
/// many the target keeps outstanding (only when MaxOutstandingR2T > 1).
const R2T_GATHER: Duration = Duration::from_millis(100);

/// SAM-5 §4.7: LUNs below 256 use peripheral device addressing, the rest the flat space.
pub fn lun_field(lun: u16) -> u64 {
    if lun < 256 {
        u64::from(lun) << 48
    } else {
        (0x4000 | u64::from(lun & 0x3fff)) << 48
    }
}

/// Everything one SCSI command produced.
#[derive(Debug, Clone, Default)]
pub struct ScsiResult {
    pub itt: u32,
    pub status: u8,
    /// iSCSI service response (0 = command completed at target).
    pub response: u8,
    pub residual: Residual,
    pub data: Vec<u8>,
    /// Sense data without the 2-byte SenseLength prefix.
    pub sense: Vec<u8>,
    /// Each Data-In header with its segment length, in arrival order.
    pub data_in: Vec<(DataIn, usize)>,
    pub status_in_data_in: bool,
    pub r2ts: Vec<R2t>,
    /// Most R2Ts seen outstanding at once.
    pub max_r2t_batch: usize,
}

impl ScsiResult {
    pub fn sense(&self) -> Option<Sense> {
        Sense::parse(&self.sense)
    }

    pub fn assert_good(&self) -> &Self {
        assert_eq!(
            (self.response, self.status),
            (0, GOOD),
            "command failed: sense {:?}",
            self.sense()
        );
        self
    }

    /// Asserts CHECK CONDITION with this sense key and ASC (any ASCQ).
    pub fn assert_sense(&self, key: u8, asc: u8) -> &Self {
        assert_eq!(self.status, CHECK_CONDITION, "status of {self:?}");
        let s = self
            .sense()
            .unwrap_or_else(|| panic!("no sense data in {self:?}"));
        assert_eq!((s.key, s.asc), (key, asc), "sense {s:?}");
        self
    }
}

impl Initiator {
    /// A SCSI Command PDU for the next CmdSN (advancing it), not yet sent.
    pub fn command_pdu(
        &mut self,
        lun: u16,
        cdb: &[u8],
        read: bool,
        write: bool,
        edtl: u32,
    ) -> ScsiCommand {
        assert!(cdb.len() <= 16, "CDBs longer than 16 bytes need an AHS");
        let mut c = [0u8; 16];
        c[..cdb.len()].copy_from_slice(cdb);
        ScsiCommand {
            immediate: false,
            final_bit: true,
            read,
            write,
            attr: ATTR_SIMPLE,
            lun: lun_field(lun),
            itt: self.new_itt(),
            expected_data_len: edtl,
            cmd_sn: self.take_cmd_sn(),
            exp_stat_sn: self.exp_stat_sn,
            cdb: c,
        }
    }

    /// A command without data (e.g. TEST UNIT READY).
    pub fn non_data(&mut self, lun: u16, cdb: &[u8]) -> ScsiResult {
        let cmd = self.command_pdu(lun, cdb, false, false, 0);
        self.send_pdu(&cmd.encode(), &[], &[]);
        self.collect(cmd.itt)
    }

    /// A read with the given Expected Data Transfer Length, which may differ from what the CDB
    /// asks for (residual tests).
    pub fn read(&mut self, lun: u16, cdb: &[u8], edtl: u32) -> ScsiResult {
        let cmd = self.command_pdu(lun, cdb, true, false, edtl);
        self.send_pdu(&cmd.encode(), &[], &[]);
        self.collect(cmd.itt)
    }

    /// A write of `data` (EDTL = its length) using whatever the login negotiated: immediate data,
    /// then unsolicited Data-Out up to FirstBurstLength, then Data-Out for each R2T.
    pub fn write(&mut self, lun: u16, cdb: &[u8], data: &[u8]) -> ScsiResult {
        let p = &self.params;
        let first_burst = data.len().min(p.first_burst as usize);
        let immediate = if p.immediate_data {
            first_burst
                .min(p.target_mrdsl as usize)
                .min(self.immediate_limit)
        } else {
            0
        };
        let unsolicited = if p.initial_r2t {
            immediate
        } else {
            first_burst
        };
        let mut cmd = self.command_pdu(lun, cdb, false, true, data.len() as u32);
        // RFC 7143 §11.3.1: F=0 announces unsolicited Data-Out to follow.
        cmd.final_bit = unsolicited == immediate;
        self.send_pdu(&cmd.encode(), &[], &data[..immediate]);
        if unsolicited > immediate {
            self.send_data_out(
                cmd.lun,
                cmd.itt,
                RESERVED_TAG,
                immediate,
                &data[immediate..unsolicited],
            );
        }
        let mut result = ScsiResult {
            itt: cmd.itt,
            ..Default::default()
        };
        loop {
            let (bhs, seg) = self.recv();
            if bhs.opcode() != Opcode::R2T {
                self.absorb_response(&mut result, &bhs, &seg);
                return result;
            }
            let mut batch = vec![R2t::decode(&bhs)];
            let mut other = None;
            while batch.len() < self.params.max_outstanding_r2t as usize {
                match self.recv_within(R2T_GATHER) {
                    Some((b, _)) if b.opcode() == Opcode::R2T => batch.push(R2t::decode(&b)),
                    Some(pdu) => {
                        other = Some(pdu);
                        break;
                    }
                    None => break,
                }
            }
            result.max_r2t_batch = result.max_r2t_batch.max(batch.len());
            for r2t in batch {
                self.answer_r2t(&mut result, &r2t, data);
            }
            if let Some((b, s)) = other {
                self.absorb_response(&mut result, &b, &s);
                return result;
            }
        }
    }

    fn answer_r2t(&mut self, result: &mut ScsiResult, r2t: &R2t, data: &[u8]) {
        assert_eq!(r2t.itt, result.itt, "R2T for another task: {r2t:?}");
        assert_eq!(
            r2t.r2t_sn,
            result.r2ts.len() as u32,
            "R2TSN out of order: {r2t:?}"
        );
        let (off, len) = (r2t.buffer_offset as usize, r2t.desired_len as usize);
        assert!(
            len > 0 && off + len <= data.len(),
            "R2T outside the buffer: {r2t:?}"
        );
        assert!(
            len <= self.params.max_burst as usize,
            "R2T asks for {len} bytes, more than MaxBurstLength {}",
            self.params.max_burst
        );
        self.send_data_out(r2t.lun, r2t.itt, r2t.ttt, off, &data[off..off + len]);
        result.r2ts.push(*r2t);
    }

    /// One Data-Out sequence: PDUs of at most the target's MaxRecvDataSegmentLength, DataSN from
    /// 0, F on the last (RFC 7143 §11.7).
    pub fn send_data_out(&mut self, lun: u64, itt: u32, ttt: u32, offset: usize, chunk: &[u8]) {
        let max = self.params.target_mrdsl as usize;
        let pieces = chunk.len().div_ceil(max).max(1);
        for (n, piece) in chunk.chunks(max).enumerate() {
            let out = DataOut {
                final_bit: n + 1 == pieces,
                lun,
                itt,
                ttt,
                exp_stat_sn: self.exp_stat_sn,
                data_sn: n as u32,
                buffer_offset: (offset + n * max) as u32,
            };
            self.send_pdu(&out.encode(), &[], piece);
        }
    }

    /// Gathers Data-In (checking order, DataSN and offsets) until the status arrives.
    pub fn collect(&mut self, itt: u32) -> ScsiResult {
        let mut result = ScsiResult {
            itt,
            ..Default::default()
        };
        loop {
            let (bhs, seg) = self.recv();
            if bhs.opcode() != Opcode::DATA_IN {
                self.absorb_response(&mut result, &bhs, &seg);
                return result;
            }
            let di = DataIn::decode(&bhs);
            assert_eq!(di.itt, itt, "Data-In for another task: {di:?}");
            assert_eq!(
                di.data_sn,
                result.data_in.len() as u32,
                "DataSN out of order: {di:?}"
            );
            assert_eq!(
                di.buffer_offset as usize,
                result.data.len(),
                "Data-In offset: {di:?}"
            );
            assert!(
                seg.len() <= self.params.initiator_mrdsl as usize,
                "Data-In of {} bytes exceeds our MaxRecvDataSegmentLength {}",
                seg.len(),
                self.params.initiator_mrdsl
            );
            result.data.extend_from_slice(&seg);
            result.data_in.push((di, seg.len()));
            if let Some(status) = di.status {
                assert!(di.final_bit, "status in a non-final Data-In: {di:?}");
                result.status = status;
                result.residual = di.residual;
                result.status_in_data_in = true;
                return result;
            }
        }
    }

    /// Takes the SCSI Response that ends a command; anything else is a test failure.
    fn absorb_response(&mut self, result: &mut ScsiResult, bhs: &Bhs, seg: &[u8]) {
        assert_eq!(
            bhs.opcode(),
            Opcode::SCSI_RESPONSE,
            "expected the SCSI Response of ITT 0x{:08x}, got {bhs:?} (data {:02x?})",
            result.itt,
            &seg[..seg.len().min(64)]
        );
        let resp = ScsiResponse::decode(bhs);
        assert_eq!(resp.itt, result.itt, "SCSI Response for another task");
        result.status = resp.status;
        result.response = resp.response.0;
        result.residual = resp.residual;
        // RFC 7143 §11.4.7: SenseLength, then sense data.
        if seg.len() >= 2 {
            let n = usize::from(u16::from_be_bytes([seg[0], seg[1]]));
            result.sense = seg[2..].get(..n).unwrap_or(&seg[2..]).to_vec();
        }
    }

    // ----- conveniences built on the above -----

    pub fn test_unit_ready(&mut self, lun: u16) -> ScsiResult {
        self.non_data(lun, &cdb::test_unit_ready())
    }

    /// TEST UNIT READY until GOOD, consuming unit attentions a new nexus may report first.
    pub fn wait_ready(&mut self, lun: u16) {
        for _ in 0..5 {
            let r = self.test_unit_ready(lun);
            if r.status == GOOD {
                return;
            }
            assert_eq!(
                r.sense().map(|s| s.key),
                Some(UNIT_ATTENTION),
                "TEST UNIT READY failed: {r:?}"
            );
        }
        panic!("LUN {lun} still reports unit attentions after 5 tries");
    }

    /// The LUNs REPORT LUNS lists (REPORT LUNS runs even with a unit attention pending).
    pub fn report_luns(&mut self) -> Vec<u16> {
        let r = self.read(0, &[0xa0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0], 4096);
        r.assert_good();
        let len = u32::from_be_bytes(r.data[0..4].try_into().unwrap()) as usize;
        r.data[8..8 + len.min(r.data.len() - 8)]
            .chunks(8)
            .map(|e| u16::from_be_bytes([e[0] & 0x3f, e[1]]))
            .collect()
    }

    /// Consumes the unit attentions every logical unit reports first after login (power on).
    pub fn clear_unit_attentions(&mut self) {
        for lun in self.report_luns() {
            self.wait_ready(lun);
        }
    }

    /// Standard INQUIRY data (asserting GOOD).
    pub fn inquiry(&mut self, lun: u16) -> Vec<u8> {
        let r = self.read(lun, &cdb::inquiry(false, 0, 255), 255);
        r.assert_good();
        r.data
    }

    /// (number of blocks, block length) from READ CAPACITY(16).
    pub fn capacity(&mut self, lun: u16) -> (u64, u32) {
        let r = self.read(lun, &cdb::read_capacity16(32), 32);
        r.assert_good();
        let (last, bs) = cdb::parse_capacity16(&r.data);
        (last + 1, bs)
    }

    /// READ(16) of whole blocks.
    pub fn read_blocks(&mut self, lun: u16, lba: u64, blocks: u32, block_len: u32) -> ScsiResult {
        self.read(lun, &cdb::read16(lba, blocks), blocks * block_len)
    }

    /// WRITE(16) of whole blocks.
    pub fn write_blocks(&mut self, lun: u16, lba: u64, data: &[u8], block_len: u32) -> ScsiResult {
        assert_eq!(data.len() % block_len as usize, 0, "partial block");
        let blocks = (data.len() / block_len as usize) as u32;
        self.write(lun, &cdb::write16(lba, blocks), data)
    }

    /// Starts a WRITE of `len` bytes that waits for its data: sends the command (the login
    /// must have negotiated InitialR2T=Yes and ImmediateData=No) and returns it with the R2T
    /// the target answered.
    pub fn write_awaiting_data(&mut self, lun: u16, cdb: &[u8], len: u32) -> (ScsiCommand, R2t) {
        let cmd = self.command_pdu(lun, cdb, false, true, len);
        self.send_pdu(&cmd.encode(), &[], &[]);
        let (bhs, _) = self.recv();
        assert_eq!(bhs.opcode(), Opcode::R2T, "the write asks for its data");
        (cmd, R2t::decode(&bhs))
    }

    /// Asserts that the write `cmd` no longer exists: its data is dropped and nothing answers.
    pub fn assert_write_ended(&mut self, cmd: &ScsiCommand, r2t: &R2t) {
        let data = vec![7; r2t.desired_len as usize];
        let offset = r2t.buffer_offset as usize;
        self.send_data_out(cmd.lun, cmd.itt, r2t.ttt, offset, &data);
        assert!(self.recv_within(Duration::from_millis(300)).is_none());
    }
}
