//! The blocking test initiator: one connection, its sequence numbers (RFC 7143 §4.2.2), and the
//! non-SCSI exchanges (NOP, Text/SendTargets, Logout). Login lives in `login.rs`, SCSI commands in
//! `scsi.rs`; both are further `impl Initiator` blocks.

use std::io;
use std::time::Duration;

use ringtgt::pdu::logout::{LogoutReason, LogoutRequest, LogoutResponse};
use ringtgt::pdu::nop::{NopIn, NopOut};
use ringtgt::pdu::text::{TextRequest, TextResponse};
use ringtgt::pdu::{Bhs, Opcode, RESERVED_TAG};

use super::conn::Conn;
use super::keys::{self, Pairs};
use super::login::Negotiated;

pub const INITIATOR_NAME: &str = "iqn.2026-11.io.ringtgt:test-initiator";

/// RFC 1982 serial-number "a > b" on 32-bit sequence numbers.
pub fn sn_gt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

pub struct Initiator {
    pub conn: Conn,
    pub initiator_name: String,
    /// RFC 7143 §11.12.5: type 0b10 ("random") in the top bits, then any qualifier.
    pub isid: [u8; 6],
    /// 0 to create a session; set by a successful login; set by hand to test a bad TSIH.
    pub tsih: u16,
    pub cid: u16,
    pub version_max: u8,
    pub version_min: u8,
    /// Start the login in the operational stage (CSG=1), skipping security negotiation.
    pub skip_security: bool,
    /// Answer the target's NOP-In pings while waiting for other PDUs (a keepalive test turns
    /// this off to play a dead initiator).
    pub answer_nop_in: bool,
    /// Cap on immediate data per command, below what was negotiated, so a test can force
    /// unsolicited Data-Out PDUs to follow.
    pub immediate_limit: usize,
    /// The CmdSN the next non-immediate command will carry.
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    next_itt: u32,
    pub params: Negotiated,
    /// Target-initiated PDUs set aside while waiting for answers (pings, async messages).
    pub unsolicited: Vec<Bhs>,
}

impl Initiator {
    pub fn connect(port: u16) -> Initiator {
        let conn = Conn::connect(port).unwrap_or_else(|e| panic!("connect to port {port}: {e}"));
        Initiator {
            conn,
            initiator_name: INITIATOR_NAME.to_string(),
            isid: [0x80, 0x12, 0x34, 0x56, 0x00, 0x01],
            tsih: 0,
            cid: 1,
            version_max: 0,
            version_min: 0,
            skip_security: false,
            answer_nop_in: true,
            immediate_limit: usize::MAX,
            cmd_sn: 1,
            exp_stat_sn: 0,
            exp_cmd_sn: 1,
            max_cmd_sn: 1,
            next_itt: 0x100,
            params: Negotiated::default(),
            unsolicited: Vec::new(),
        }
    }

    pub fn new_itt(&mut self) -> u32 {
        self.next_itt = self.next_itt.wrapping_add(1);
        if self.next_itt == RESERVED_TAG {
            self.next_itt = 1;
        }
        self.next_itt
    }

    /// The CmdSN for a non-immediate command, advancing the counter.
    pub fn take_cmd_sn(&mut self) -> u32 {
        let sn = self.cmd_sn;
        self.cmd_sn = self.cmd_sn.wrapping_add(1);
        sn
    }

    /// The connection's own port, which the daemon's log names as the peer's: what ties a
    /// failure here to the daemon's lines about it.
    fn conn_port(&self) -> String {
        self.conn
            .try_local_port()
            .map_or_else(|| "?".into(), |p| p.to_string())
    }

    pub fn send_pdu(&mut self, bhs: &Bhs, ahs: &[u8], data: &[u8]) {
        self.conn
            .send_pdu(bhs, ahs, data)
            .unwrap_or_else(|e| panic!("send {bhs:?} from port {}: {e}", self.conn_port()));
    }

    /// Receives the next PDU, whatever it is, updating the sequence numbers it carries.
    pub fn try_recv_pdu(&mut self) -> io::Result<(Bhs, Vec<u8>)> {
        let (bhs, data) = self.conn.recv_pdu()?;
        self.observe(&bhs);
        Ok((bhs, data))
    }

    pub fn recv_pdu(&mut self) -> (Bhs, Vec<u8>) {
        self.try_recv_pdu()
            .unwrap_or_else(|e| panic!("receive PDU on port {}: {e}", self.conn_port()))
    }

    /// Like `try_recv_pdu`, but answers target pings and sets aside async messages: what the
    /// exchange helpers use while waiting for their reply.
    pub fn try_recv(&mut self) -> io::Result<(Bhs, Vec<u8>)> {
        loop {
            let (bhs, data) = self.try_recv_pdu()?;
            if !self.set_aside(&bhs, &data) {
                return Ok((bhs, data));
            }
        }
    }

    /// Handles a target-initiated PDU (ping or async message); false for anything else.
    fn set_aside(&mut self, bhs: &Bhs, data: &[u8]) -> bool {
        let op = bhs.opcode();
        let ping = op == Opcode::NOP_IN && bhs.itt() == RESERVED_TAG;
        if !ping && op != Opcode::ASYNC_MESSAGE {
            return false;
        }
        self.unsolicited.push(*bhs);
        if ping && self.answer_nop_in && NopIn::decode(bhs).ttt != RESERVED_TAG {
            self.answer_ping(bhs, data);
        }
        true
    }

    pub fn recv(&mut self) -> (Bhs, Vec<u8>) {
        self.try_recv()
            .unwrap_or_else(|e| panic!("receive PDU on port {}: {e}", self.conn_port()))
    }

    /// Waits up to `wait` for a PDU (pings handled as in `recv`); `None` if none came.
    pub fn recv_within(&mut self, wait: Duration) -> Option<(Bhs, Vec<u8>)> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.conn.poll(left) {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => panic!("connection failed while waiting for a PDU: {e}"),
            }
            let (bhs, data) = self.try_recv_pdu().expect("receive PDU");
            if !self.set_aside(&bhs, &data) {
                return Some((bhs, data));
            }
        }
    }

    /// Waits up to `limit` for an Async Message from the target (pings answered meanwhile).
    pub fn async_message(&mut self, limit: Duration) -> ringtgt::pdu::reject::AsyncMessage {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(m) = self
                .unsolicited
                .iter()
                .find(|b| b.opcode() == Opcode::ASYNC_MESSAGE)
            {
                return ringtgt::pdu::reject::AsyncMessage::decode(m);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no Async Message within {limit:?}"
            );
            self.recv_within(Duration::from_millis(100));
        }
    }

    /// RFC 7143 §4.2.2.1, §11.2.1: every target PDU carries ExpCmdSN/MaxCmdSN at bytes 28/32;
    /// responses that carry status advance StatSN. Pings and R2Ts only report it.
    fn observe(&mut self, bhs: &Bhs) {
        let op = bhs.opcode();
        // A login response sets the baseline; later PDUs only move the numbers forward.
        let login = op == Opcode::LOGIN_RESPONSE;
        let (exp, max) = (bhs.u32_at(28), bhs.u32_at(32));
        // RFC 7143 §4.2.2.1: ignore a window with MaxCmdSN < ExpCmdSN - 1.
        if !sn_gt(exp.wrapping_sub(1), max) {
            if login || sn_gt(exp, self.exp_cmd_sn) {
                self.exp_cmd_sn = exp;
            }
            if login || sn_gt(max, self.max_cmd_sn) {
                self.max_cmd_sn = max;
            }
        }
        let has_status = match op {
            Opcode::SCSI_RESPONSE
            | Opcode::TEXT_RESPONSE
            | Opcode::LOGIN_RESPONSE
            | Opcode::LOGOUT_RESPONSE
            | Opcode::TASK_MGMT_RESPONSE => true,
            Opcode::DATA_IN => bhs.flags() & 0x01 != 0,
            Opcode::NOP_IN => bhs.itt() != RESERVED_TAG,
            _ => false,
        };
        let next = bhs.u32_at(24).wrapping_add(1);
        if has_status && (login || sn_gt(next, self.exp_stat_sn)) {
            self.exp_stat_sn = next;
        }
    }

    fn answer_ping(&mut self, bhs: &Bhs, data: &[u8]) {
        let ping = NopIn::decode(bhs);
        // RFC 7143 §11.18: the answer carries the target's TTT and LUN, ITT 0xffffffff, I=1.
        let out = NopOut {
            immediate: true,
            lun: ping.lun,
            itt: RESERVED_TAG,
            ttt: ping.ttt,
            cmd_sn: self.cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
        };
        self.send_pdu(&out.encode(), &[], data);
    }

    /// NOP-Out ping (non-immediate, so it takes a CmdSN); returns the data echoed by the NOP-In.
    pub fn nop_out(&mut self, data: &[u8]) -> Vec<u8> {
        let itt = self.new_itt();
        let out = NopOut {
            immediate: false,
            lun: 0,
            itt,
            ttt: RESERVED_TAG,
            cmd_sn: self.take_cmd_sn(),
            exp_stat_sn: self.exp_stat_sn,
        };
        self.send_pdu(&out.encode(), &[], data);
        let (bhs, echo) = self.recv();
        assert_eq!(bhs.opcode(), Opcode::NOP_IN, "NOP-Out answered by {bhs:?}");
        let nop_in = NopIn::decode(&bhs);
        assert_eq!(nop_in.itt, itt, "NOP-In ITT");
        assert_eq!(
            nop_in.ttt, RESERVED_TAG,
            "NOP-In answering a ping has no TTT"
        );
        echo
    }

    /// Text request with continuation (RFC 7143 §11.10.2): keeps sending empty requests with the
    /// target's TTT while it answers with C=1, then decodes the reassembled keys.
    pub fn text(&mut self, pairs: &[(&str, &str)]) -> Pairs {
        let itt = self.new_itt();
        let mut ttt = RESERVED_TAG;
        let mut payload = keys::encode(pairs);
        let mut answer = Vec::new();
        loop {
            let req = TextRequest {
                immediate: false,
                final_bit: true,
                cont: false,
                lun: 0,
                itt,
                ttt,
                cmd_sn: self.take_cmd_sn(),
                exp_stat_sn: self.exp_stat_sn,
            };
            self.send_pdu(&req.encode(), &[], &payload);
            payload.clear();
            let (bhs, data) = self.recv();
            assert_eq!(
                bhs.opcode(),
                Opcode::TEXT_RESPONSE,
                "Text answered by {bhs:?}"
            );
            let resp = TextResponse::decode(&bhs);
            assert_eq!(resp.itt, itt, "Text Response ITT");
            answer.extend_from_slice(&data);
            if !resp.cont && resp.final_bit {
                return keys::decode(&answer);
            }
            ttt = resp.ttt;
        }
    }

    pub fn send_targets(&mut self) -> Pairs {
        self.text(&[("SendTargets", "All")])
    }

    /// Logout (close the session) and its response.
    pub fn logout(&mut self) -> LogoutResponse {
        self.logout_with(LogoutReason::CLOSE_SESSION)
    }

    pub fn logout_with(&mut self, reason: LogoutReason) -> LogoutResponse {
        let itt = self.new_itt();
        let req = LogoutRequest {
            immediate: true,
            reason,
            itt,
            cid: self.cid,
            cmd_sn: self.cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
        };
        self.send_pdu(&req.encode(), &[], &[]);
        let (bhs, _) = self.recv();
        assert_eq!(
            bhs.opcode(),
            Opcode::LOGOUT_RESPONSE,
            "Logout answered by {bhs:?}"
        );
        let resp = LogoutResponse::decode(&bhs);
        assert_eq!(resp.itt, itt, "Logout Response ITT");
        resp
    }
}

impl Initiator {
    /// A task management request (RFC 7143 §11.5) sent as an immediate command; returns the
    /// response code, skipping other PDUs only if `skip_others` (e.g. Data-In of aborted tasks).
    pub fn task_management(
        &mut self,
        function: ringtgt::pdu::tmf::TmfFunction,
        lun: u16,
        referenced_itt: u32,
        ref_cmd_sn: u32,
    ) -> ringtgt::pdu::tmf::TmfResponseCode {
        use ringtgt::pdu::tmf::{TmfRequest, TmfResponse};
        let itt = self.new_itt();
        let req = TmfRequest {
            immediate: true,
            function,
            lun: super::scsi::lun_field(lun),
            itt,
            referenced_task_tag: referenced_itt,
            cmd_sn: self.cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
            ref_cmd_sn,
            exp_data_sn: 0,
        };
        self.send_pdu(&req.encode(), &[], &[]);
        loop {
            let (bhs, _) = self.recv();
            if bhs.opcode() == ringtgt::pdu::Opcode::TASK_MGMT_RESPONSE && bhs.itt() == itt {
                return TmfResponse::decode(&bhs).response;
            }
        }
    }
}
