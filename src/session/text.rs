//! Text requests in full feature phase (RFC 7143 §11.10, §11.11): SendTargets and the keys a
//! session may still declare.

use super::error::SessionError;
use super::full::Session;
use super::nop::alloc_ttt;
use super::output::Output;
use crate::login::{parse_pairs, text_request_answer, PendingText};
use crate::pdu::text::{TextRequest, TextResponse};
use crate::pdu::{Bhs, RESERVED_TAG};

/// A Text Response too long for one PDU, handed out as the initiator asks (RFC 7143 §11.10.2).
pub struct TextReply {
    itt: u32,
    ttt: u32,
    pending: PendingText,
}

impl Session {
    pub(super) fn handle_text(&mut self, bhs: &Bhs, data: &[u8], out: &mut Output) {
        let req = TextRequest::decode(bhs);
        if req.ttt != RESERVED_TAG {
            // Continuation of a long answer.
            match self.text.take() {
                Some(t) if t.ttt == req.ttt && t.itt == req.itt => self.send_text_chunk(t, out),
                _ => self.refuse(bhs, SessionError::UnknownTextContinuation, out),
            }
            return;
        }
        if req.cont {
            // Multi-PDU text requests are not needed for any key this target answers in full
            // feature phase; refuse rather than buffer an unbounded request.
            self.refuse(bhs, SessionError::MultiPduText, out);
            return;
        }
        let answer = match parse_pairs(data) {
            Ok(pairs) => {
                let ctx = self.ctx.clone();
                let portals = self.advertised_portals();
                text_request_answer(
                    &pairs,
                    &self.params,
                    self.peer,
                    &ctx.login_targets,
                    &portals,
                    ctx.portal_group_tag,
                )
            }
            Err(e) => {
                self.refuse(bhs, SessionError::MalformedText(e), out);
                return;
            }
        };
        let reply = TextReply {
            itt: req.itt,
            ttt: 0,
            pending: PendingText::new(answer),
        };
        self.send_text_chunk(reply, out);
    }

    fn send_text_chunk(&mut self, mut t: TextReply, out: &mut Output) {
        let (chunk, more) = t.pending.next_chunk(self.params.initiator_mrdsl as usize);
        let ttt = if more {
            alloc_ttt(&mut self.next_ttt)
        } else {
            RESERVED_TAG
        };
        let rsp = TextResponse {
            final_bit: !more,
            cont: more,
            lun: 0,
            itt: t.itt,
            ttt,
            stat_sn: self.next_stat_sn(),
            exp_cmd_sn: self.exp_cmd_sn(),
            max_cmd_sn: self.max_cmd_sn(),
        };
        out.pdu(&rsp.encode(), &chunk);
        if more {
            t.ttt = ttt;
            self.text = Some(t);
        }
    }
}
