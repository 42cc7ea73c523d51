//! Text requests in full feature phase (RFC 7143 §11.10, §11.11): SendTargets and the keys a
//! session may still declare.

use super::error::SessionError;
use super::full::Session;
use super::nop::alloc_ttt;
use super::output::Output;
use crate::login::text::MAX_TEXT_LEN;
use crate::login::{parse_pairs, text_request_answer, PendingText};
use crate::pdu::text::{TextRequest, TextResponse};
use crate::pdu::{Bhs, RESERVED_TAG};

/// A Text Response too long for one PDU, handed out as the initiator asks (RFC 7143 §11.10.2).
pub struct TextReply {
    itt: u32,
    ttt: u32,
    pending: PendingText,
}

/// A Text Request arriving in several PDUs (C=1), collected until its last one.
pub struct TextRequestInProgress {
    itt: u32,
    ttt: u32,
    text: Vec<u8>,
}

impl Session {
    pub(super) fn handle_text(&mut self, bhs: &Bhs, data: &[u8], out: &mut Output) {
        let req = TextRequest::decode(bhs);
        if req.ttt != RESERVED_TAG {
            // The continuation of a long answer, or of a long request.
            if let Some(t) = self.text.take() {
                if t.ttt == req.ttt && t.itt == req.itt {
                    return self.send_text_chunk(t, out);
                }
                self.text = Some(t);
            }
            match self.text_rx.take() {
                Some(rx) if rx.ttt == req.ttt && rx.itt == req.itt => {
                    self.collect_text(rx, req, data, bhs, out)
                }
                _ => self.refuse(bhs, SessionError::UnknownTextContinuation, out),
            }
            return;
        }
        // A new request replaces whatever exchange was in progress (RFC 7143 §11.10.2).
        self.text = None;
        let rx = TextRequestInProgress {
            itt: req.itt,
            ttt: RESERVED_TAG,
            text: Vec::new(),
        };
        self.collect_text(rx, req, data, bhs, out);
    }

    /// Adds one PDU's text to a request: answers an empty Text Response (F=0) with a Target
    /// Transfer Tag while more follows (C=1, RFC 7143 §11.10.2), the whole answer at the end.
    fn collect_text(
        &mut self,
        mut rx: TextRequestInProgress,
        req: TextRequest,
        data: &[u8],
        bhs: &Bhs,
        out: &mut Output,
    ) {
        if rx.text.len() + data.len() > MAX_TEXT_LEN {
            return self.refuse(bhs, SessionError::TextTooLong, out);
        }
        if req.cont {
            rx.text.extend_from_slice(data);
            rx.ttt = alloc_ttt(&mut self.next_ttt);
            let rsp = TextResponse {
                final_bit: false,
                cont: false,
                lun: 0,
                itt: rx.itt,
                ttt: rx.ttt,
                stat_sn: self.next_stat_sn(),
                exp_cmd_sn: self.exp_cmd_sn(),
                max_cmd_sn: self.max_cmd_sn(),
            };
            out.pdu(&rsp.encode(), &[]);
            self.text_rx = Some(rx);
            return;
        }
        let whole;
        let text = if rx.text.is_empty() {
            data
        } else {
            rx.text.extend_from_slice(data);
            whole = rx.text;
            &whole[..]
        };
        let answer = match parse_pairs(text) {
            Ok(pairs) => {
                let ctx = self.ctx.clone();
                let portals = self.advertised_portals();
                text_request_answer(
                    &pairs,
                    &mut self.params,
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
