//! The login state machine of one connection (RFC 7143 §6.3, §11.12, §11.13).
//!
//! `Start` → `Negotiating { Security | Operational }` → `Ready` (the transport registers the
//! session) → `FullFeature`. Any error moves to `Failed`, which is sticky. Inputs are decoded
//! Login Requests with their data segment; outputs are [`LoginAction`]s. No I/O, no clock.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::chap::{ChallengeSource, ChapPolicy, OsRandom};
use super::error::LoginError;
use super::identity::{identify, Identity, TargetEntry};
use super::negotiate::{Negotiation, Pairs};
use super::params::{SessionParams, SessionType, TargetOffer, DEFAULT_MRDSL};
use super::text::{encode_pairs, parse_pairs, PendingText, MAX_TEXT_LEN};
use super::value::MAX_ISCSI_NAME_LEN;
use crate::pdu::login::{LoginRequest, LoginResponse, LoginStatus, Stage, ISCSI_VERSION};

/// RFC 7143 §13.12: during login the initiator's MaxRecvDataSegmentLength is the default 8192;
/// no Login Response carries more data than that.
pub const MAX_LOGIN_DATA: usize = DEFAULT_MRDSL as usize;

/// The targets a login can reach, what the target offers, and who is asking.
#[derive(Debug, Clone, Copy)]
pub struct LoginEnv<'a> {
    pub targets: &'a [TargetEntry],
    /// The tag of discovery sessions and of targets without portal groups of their own.
    pub portal_group_tag: u16,
    /// The address the connection arrived at (which portal, hence which portal group);
    /// None = unknown.
    pub local: Option<SocketAddr>,
    pub offer: &'a TargetOffer,
    /// CHAP required of discovery sessions; None = no authentication.
    pub discovery_chap: Option<&'a ChapPolicy>,
    /// The initiator's address, for the targets' `allowed_networks`; None = unknown.
    pub peer: Option<IpAddr>,
}

/// What the transport does after a Login Request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginAction {
    /// Send this response (with its text data) and stay in login.
    Respond(LoginResponse, Vec<u8>),
    /// Send this failure response, then close the connection. `reason` is a one-line log text.
    Fail(LoginResponse, Vec<u8>, String),
    /// Negotiation finished and the initiator may enter full feature phase. The transport must now
    /// register the session (allocate a TSIH, or check the TSIH/ISID, reinstating an old session),
    /// then call [`Login::accept`] or [`Login::refuse`] for the final response.
    Ready(Box<LoginOutcome>),
}

/// The result of a successful negotiation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginOutcome {
    pub params: SessionParams,
    pub isid: [u8; 6],
    /// As sent by the initiator; 0 = new session.
    pub tsih: u16,
    pub cid: u16,
    /// The initiator's CmdSN: the session's first ExpCmdSN.
    pub cmd_sn: u32,
    /// The address the login was authorized from.
    pub peer: Option<IpAddr>,
    /// The target portal group tag the login reported: the session's target port.
    pub portal_group_tag: u16,
}

#[derive(Debug)]
enum State {
    /// No complete request yet; `stage` is set while the first text is still arriving (C=1).
    Start {
        stage: Option<Stage>,
    },
    Negotiating {
        stage: Stage,
        nego: Box<Negotiation>,
    },
    /// Waiting for [`Login::accept`] / [`Login::refuse`]; `text` goes in the final response.
    Ready {
        stage: Stage,
        text: Vec<u8>,
    },
    FullFeature,
    Failed,
}

/// ISID, TSIH and CID: fixed by the first request (RFC 7143 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ConnId {
    isid: [u8; 6],
    tsih: u16,
    cid: u16,
}

impl ConnId {
    fn of(req: &LoginRequest) -> Self {
        ConnId {
            isid: req.isid,
            tsih: req.tsih,
            cid: req.cid,
        }
    }
}

/// An answer being handed out, and the transit decided for its last piece.
#[derive(Debug)]
struct Outgoing {
    text: PendingText,
    transit: Option<Stage>,
}

/// The login state machine of one connection.
#[derive(Debug)]
pub struct Login {
    state: State,
    id: Option<ConnId>,
    /// StatSN of the next response.
    stat_sn: u32,
    cmd_sn: u32,
    itt: u32,
    /// Text of a request sequence still arriving with C=1.
    rx: Vec<u8>,
    /// Our answer still being collected by the initiator.
    tx: Option<Outgoing>,
    /// The peer address of the first request, once authorized.
    peer: Option<IpAddr>,
    /// The target portal group tag sent in the first response.
    portal_group_tag: u16,
    /// InitiatorName of the first complete request, as sent (for the log of a refused login).
    initiator: Option<String>,
    /// Randomness for authentication challenges.
    challenges: Box<dyn ChallengeSource>,
}

impl Default for Login {
    fn default() -> Self {
        Self::new()
    }
}

impl Login {
    /// A login whose challenges come from the OS CSPRNG.
    pub fn new() -> Self {
        Self::with_challenge_source(OsRandom)
    }

    /// A login whose challenges come from `challenges` (deterministic in tests and fuzzers).
    pub fn with_challenge_source(challenges: impl ChallengeSource + 'static) -> Self {
        Login {
            state: State::Start { stage: None },
            id: None,
            stat_sn: 0,
            cmd_sn: 0,
            itt: 0,
            rx: Vec::new(),
            tx: None,
            peer: None,
            portal_group_tag: 0,
            initiator: None,
            challenges: Box::new(challenges),
        }
    }

    /// Handles one Login Request and its data segment.
    pub fn handle(&mut self, env: &LoginEnv, req: &LoginRequest, data: &[u8]) -> LoginAction {
        match self.step(env, req, data) {
            Ok(action) => action,
            Err(err) => self.fail(err),
        }
    }

    /// Final response (T=1, NSG=full feature) carrying the session's TSIH, once the transport
    /// registered the session. `max_cmd_sn` opens the command window.
    pub fn accept(&mut self, tsih: u16, max_cmd_sn: u32) -> (LoginResponse, Vec<u8>) {
        let State::Ready { stage, .. } = self.state else {
            let err = LoginError::Internal("accept() outside the Ready state".into());
            return self.failure_pair(err);
        };
        let text = match std::mem::replace(&mut self.state, State::FullFeature) {
            State::Ready { text, .. } => text,
            _ => Vec::new(),
        };
        let mut rsp = self.response(
            stage,
            Some(Stage::FULL_FEATURE),
            false,
            LoginStatus::SUCCESS,
        );
        rsp.tsih = tsih;
        rsp.max_cmd_sn = max_cmd_sn;
        tracing::debug!(tsih, "login complete");
        (rsp, text)
    }

    /// Failure response for a login the transport cannot register (e.g. TOO_MANY_CONNECTIONS,
    /// SESSION_DOES_NOT_EXIST, OUT_OF_RESOURCES). The connection must then be closed.
    pub fn refuse(&mut self, status: LoginStatus) -> (LoginResponse, Vec<u8>) {
        self.state = State::Failed;
        self.tx = None;
        (self.reject(status), Vec::new())
    }

    /// The InitiatorName the login started with, as sent, if it got that far.
    pub fn initiator_name(&self) -> Option<&str> {
        self.initiator.as_deref()
    }

    /// StatSN the connection uses next once in full feature phase.
    pub fn next_stat_sn(&self) -> u32 {
        self.stat_sn
    }

    fn step(
        &mut self,
        env: &LoginEnv,
        req: &LoginRequest,
        data: &[u8],
    ) -> Result<LoginAction, LoginError> {
        self.check_state()?;
        self.check_header(req)?;
        if self.tx.is_some() {
            return self.collect(req, data);
        }
        if self.rx.len() + data.len() > MAX_TEXT_LEN {
            return Err(LoginError::TextTooLong {
                limit: MAX_TEXT_LEN,
            });
        }
        if req.cont {
            return Ok(self.acknowledge(req, data));
        }
        let text = if self.rx.is_empty() {
            parse_pairs(data)?
        } else {
            self.rx.extend_from_slice(data);
            parse_pairs(&std::mem::take(&mut self.rx))?
        };
        self.negotiate(env, req, &text)
    }

    fn check_state(&self) -> Result<(), LoginError> {
        match self.state {
            State::Start { .. } | State::Negotiating { .. } => Ok(()),
            State::Ready { .. } => Err(LoginError::protocol(
                "Login Request while the session is being registered",
            )),
            State::FullFeature => Err(LoginError::protocol("Login Request in full feature phase")),
            State::Failed => Err(LoginError::protocol("Login Request after a failed login")),
        }
    }

    /// Header rules of RFC 7143 §11.12 that hold for every request.
    fn check_header(&mut self, req: &LoginRequest) -> Result<(), LoginError> {
        self.note_request(req);
        if req.version_min > ISCSI_VERSION {
            return Err(LoginError::UnsupportedVersion {
                min: req.version_min,
                max: req.version_max,
            });
        }
        if self.id.is_some_and(|id| id != ConnId::of(req)) {
            return Err(LoginError::protocol(
                "ISID, TSIH or CID changed during login",
            ));
        }
        self.id = Some(ConnId::of(req));
        if !req.immediate {
            // RFC 7143 §11.12: Login Requests are always immediate.
            return Err(LoginError::protocol("Login Request without the I bit"));
        }
        check_flags(req)?;
        match self.expected_stage() {
            Some(stage) if stage != req.csg => Err(LoginError::protocol(format!(
                "CSG {} while in stage {}",
                req.csg.0, stage.0
            ))),
            _ => Ok(()),
        }
    }

    /// The first request sets StatSN from the initiator's ExpStatSN (as tgt does); every request
    /// updates CmdSN and ITT, which the response echoes.
    fn note_request(&mut self, req: &LoginRequest) {
        if self.id.is_none() {
            self.stat_sn = req.exp_stat_sn;
        }
        self.cmd_sn = req.cmd_sn;
        self.itt = req.itt;
    }

    fn expected_stage(&self) -> Option<Stage> {
        match self.state {
            State::Start { stage } => stage,
            State::Negotiating { stage, .. } => Some(stage),
            _ => None,
        }
    }

    /// A request with C=1: keep its text, answer with an empty response in the same stage.
    fn acknowledge(&mut self, req: &LoginRequest, data: &[u8]) -> LoginAction {
        self.rx.extend_from_slice(data);
        if let State::Start { stage } = &mut self.state {
            *stage = Some(req.csg);
        }
        let rsp = self.response(req.csg, None, false, LoginStatus::SUCCESS);
        LoginAction::Respond(rsp, Vec::new())
    }

    /// An empty request collecting the rest of a long answer (RFC 7143 §11.13: C bit).
    fn collect(&mut self, req: &LoginRequest, data: &[u8]) -> Result<LoginAction, LoginError> {
        if req.cont || !data.is_empty() {
            return Err(LoginError::protocol(
                "new text while the target's answer is incomplete",
            ));
        }
        Ok(self.send_next(req))
    }

    fn negotiate(
        &mut self,
        env: &LoginEnv,
        req: &LoginRequest,
        pairs: &[(String, String)],
    ) -> Result<LoginAction, LoginError> {
        let mut out = Pairs::new();
        let first = matches!(self.state, State::Start { .. });
        if first {
            self.begin(env, req.csg, pairs, &mut out)?;
        }
        let State::Negotiating { stage, nego } = &mut self.state else {
            return Err(LoginError::Internal("negotiating outside a stage".into()));
        };
        if *stage == Stage::OPERATIONAL && !nego.auth_complete() {
            return Err(LoginError::authentication(
                "operational stage without the required authentication",
            ));
        }
        nego.process(*stage, pairs, first, &mut *self.challenges, &mut out)?;
        if *stage == Stage::OPERATIONAL {
            nego.declare_mrdsl(&mut out);
        }
        let transit = match req.transit {
            true => decide_transit(*stage, req.nsg, nego, &mut out)?,
            false => None,
        };
        let text = encode_pairs(&out);
        if text.len() > MAX_TEXT_LEN {
            return Err(LoginError::TextTooLong {
                limit: MAX_TEXT_LEN,
            });
        }
        self.tx = Some(Outgoing {
            text: PendingText::new(text),
            transit,
        });
        Ok(self.send_next(req))
    }

    /// The first complete request: identity, target, and the declarations of the first
    /// response (RFC 7143 §13.9 TargetPortalGroupTag, §13.6 TargetAlias).
    fn begin(
        &mut self,
        env: &LoginEnv,
        stage: Stage,
        pairs: &[(String, String)],
        out: &mut Pairs,
    ) -> Result<(), LoginError> {
        self.initiator = pairs
            .iter()
            .find(|(k, _)| k == "InitiatorName")
            .map(|(_, v)| v.chars().take(MAX_ISCSI_NAME_LEN).collect());
        let Identity {
            params,
            keys,
            target,
        } = identify(pairs, env.targets, env.peer)?;
        let target_name = params.target_name.as_deref().unwrap_or("(discovery)");
        tracing::debug!(initiator = %params.initiator_name, target = %target_name, "login started");
        self.peer = env.peer;
        let chap = match params.session_type {
            SessionType::Discovery => env.discovery_chap.map(|p| Arc::new(p.clone())),
            SessionType::Normal => target.as_ref().and_then(|t| t.chap.clone()),
        };
        let tag = match &target {
            Some(t) => t
                .portal_group_tag(env.local, env.portal_group_tag)
                .ok_or_else(|| LoginError::NotOnThisPortal {
                    target: t.name.clone(),
                    portal: env.local.map_or_else(String::new, |l| l.to_string()),
                })?,
            None => env.portal_group_tag,
        };
        self.portal_group_tag = tag;
        out.push(("TargetPortalGroupTag".into(), tag.to_string()));
        if let Some(alias) = target.and_then(|t| t.alias) {
            out.push(("TargetAlias".into(), alias));
        }
        let nego = Box::new(Negotiation::new(params, env.offer, keys, chap));
        self.state = State::Negotiating { stage, nego };
        Ok(())
    }

    /// Hands out the next piece of the pending answer; the last piece carries the transit.
    fn send_next(&mut self, req: &LoginRequest) -> LoginAction {
        let Some(out) = self.tx.as_mut() else {
            return self.fail(LoginError::Internal("no answer to send".into()));
        };
        let (chunk, more) = out.text.next_chunk(MAX_LOGIN_DATA);
        if more {
            let rsp = self.response(req.csg, None, true, LoginStatus::SUCCESS);
            return LoginAction::Respond(rsp, chunk);
        }
        // A target answers T=1 only to a request with T=1 (RFC 7143 §11.13.1).
        let transit = self
            .tx
            .take()
            .and_then(|o| o.transit)
            .filter(|_| req.transit);
        match transit {
            Some(Stage::FULL_FEATURE) => self.ready(chunk),
            Some(next) => {
                self.enter(next);
                let rsp = self.response(req.csg, Some(next), false, LoginStatus::SUCCESS);
                LoginAction::Respond(rsp, chunk)
            }
            None => {
                let rsp = self.response(req.csg, None, false, LoginStatus::SUCCESS);
                LoginAction::Respond(rsp, chunk)
            }
        }
    }

    fn enter(&mut self, next: Stage) {
        if let State::Negotiating { stage, .. } = &mut self.state {
            tracing::debug!(from = stage.0, to = next.0, "login stage");
            *stage = next;
        }
    }

    fn ready(&mut self, text: Vec<u8>) -> LoginAction {
        let (State::Negotiating { stage, nego }, Some(id)) =
            (std::mem::replace(&mut self.state, State::Failed), self.id)
        else {
            return self.fail(LoginError::Internal("ready outside negotiation".into()));
        };
        self.state = State::Ready { stage, text };
        LoginAction::Ready(Box::new(LoginOutcome {
            params: nego.params,
            isid: id.isid,
            tsih: id.tsih,
            cid: id.cid,
            cmd_sn: self.cmd_sn,
            peer: self.peer,
            portal_group_tag: self.portal_group_tag,
        }))
    }

    /// A response with the connection's fields; consumes one StatSN. During login the command
    /// window is closed: MaxCmdSN = ExpCmdSN = the request's CmdSN (login requests are immediate).
    fn response(
        &mut self,
        csg: Stage,
        transit: Option<Stage>,
        cont: bool,
        status: LoginStatus,
    ) -> LoginResponse {
        let id = self.id.unwrap_or(ConnId {
            isid: [0; 6],
            tsih: 0,
            cid: 0,
        });
        let stat_sn = self.stat_sn;
        self.stat_sn = self.stat_sn.wrapping_add(1);
        LoginResponse {
            transit: transit.is_some(),
            cont,
            csg: Stage(csg.0 & 3),
            nsg: transit.unwrap_or(Stage(0)),
            version_max: ISCSI_VERSION,
            version_active: ISCSI_VERSION,
            isid: id.isid,
            tsih: id.tsih,
            itt: self.itt,
            stat_sn,
            exp_cmd_sn: self.cmd_sn,
            max_cmd_sn: self.cmd_sn,
            status,
        }
    }

    /// RFC 7143 §6.3.1: in a login reject the T bit, CSG and NSG are reserved (zero).
    fn reject(&mut self, status: LoginStatus) -> LoginResponse {
        self.response(Stage(0), None, false, status)
    }

    fn failure_pair(&mut self, err: LoginError) -> (LoginResponse, Vec<u8>) {
        // The connection logs the one warning of a refused login, with who and from where.
        match err {
            LoginError::Internal(_) => tracing::error!(%err, "login failed"),
            _ => tracing::debug!(%err, "login failed"),
        }
        self.state = State::Failed;
        self.tx = None;
        self.rx = Vec::new();
        (self.reject(err.status()), err.answer())
    }

    fn fail(&mut self, err: LoginError) -> LoginAction {
        let reason = err.to_string();
        let (rsp, data) = self.failure_pair(err);
        LoginAction::Fail(rsp, data, reason)
    }
}

/// Flag rules (RFC 7143 §11.12.2, §11.12.3): C=1 forbids T=1; CSG is 0 or 1; on transit NSG is
/// a later stage and never the reserved 2.
fn check_flags(req: &LoginRequest) -> Result<(), LoginError> {
    if req.cont && req.transit {
        return Err(LoginError::protocol("C and T both set"));
    }
    if req.csg != Stage::SECURITY && req.csg != Stage::OPERATIONAL {
        return Err(LoginError::protocol(format!("CSG {}", req.csg.0)));
    }
    let nsg_ok =
        req.nsg > req.csg && (req.nsg == Stage::OPERATIONAL || req.nsg == Stage::FULL_FEATURE);
    if req.transit && !nsg_ok {
        return Err(LoginError::protocol(format!(
            "transit from stage {} to {}",
            req.csg.0, req.nsg.0
        )));
    }
    Ok(())
}

/// The stage the target moves to when the initiator asks to transit to `nsg`, or None to stay.
fn decide_transit(
    stage: Stage,
    nsg: Stage,
    nego: &mut Negotiation,
    out: &mut Pairs,
) -> Result<Option<Stage>, LoginError> {
    if stage == Stage::SECURITY {
        if !nego.auth_complete() {
            // RFC 7143 §6.3: the target may answer T=0 while the exchange is under way; a transit
            // request that does not move it on would otherwise loop until the login timeout.
            if nego.auth_advanced() {
                return Ok(None);
            }
            return Err(LoginError::authentication(
                "transit requested before authentication completed",
            ));
        }
        // A direct security → full feature transit visits the operational stage when the target
        // has keys to offer (as tgt does): the response may carry a lower NSG than requested.
        if nsg == Stage::OPERATIONAL || nego.needs_operational_stage() {
            return Ok(Some(Stage::OPERATIONAL));
        }
    } else {
        if nego.awaiting_replies() {
            return Err(LoginError::protocol(
                "transit requested without replying to the target's offer",
            ));
        }
        if nego.offer_required(out) {
            return Ok(None);
        }
    }
    nego.check_complete()?;
    Ok(Some(Stage::FULL_FEATURE))
}
