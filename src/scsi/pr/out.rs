//! PERSISTENT RESERVE OUT (SPC-4): the CDB and parameter list checks, and each service
//! action's effect on the state, the unit attentions it establishes and the tasks it aborts.

use super::transport_id::TransportId;
use super::{
    InitiatorPort, ItNexus, NexusSet, PrState, PrType, Registration, Reservation, LU_SCOPE,
    MAX_REGISTRATIONS,
};
use crate::scsi::cdb::Cdb;
use crate::scsi::sense::Sense;
use crate::scsi::ua::UnitAttention;

/// SPC-4 PERSISTENT RESERVE OUT service action codes (CDB byte 1 bits 4..0).
pub mod service_action {
    pub const REGISTER: u8 = 0x00;
    pub const RESERVE: u8 = 0x01;
    pub const RELEASE: u8 = 0x02;
    pub const CLEAR: u8 = 0x03;
    pub const PREEMPT: u8 = 0x04;
    pub const PREEMPT_AND_ABORT: u8 = 0x05;
    pub const REGISTER_AND_IGNORE_EXISTING_KEY: u8 = 0x06;
    pub const REGISTER_AND_MOVE: u8 = 0x07;
}
use service_action as sa;

/// SPC-4 basic PERSISTENT RESERVE OUT parameter list length (without SPEC_I_PT TransportIDs).
pub const BASIC_LIST_LEN: u32 = 24;
/// Largest parameter list accepted: room for the TransportIDs of some 250 initiator ports.
/// Longer lists are refused before their Data-Out is taken in, with INSUFFICIENT REGISTRATION
/// RESOURCES (SPC-4: what a device server answers when it cannot make the registrations).
pub const MAX_LIST_LEN: u32 = 64 * 1024;
/// Basic parameter list byte 20: SPEC_I_PT (bit 3), ALL_TG_PT (bit 2), APTPL (bit 0); bits
/// 7..4 and 1 are reserved.
const SPEC_I_PT: u8 = 0x08;
const ALL_TG_PT: u8 = 0x04;
const APTPL: u8 = 0x01;
const FLAGS_RESERVED: u8 = 0xF2;
/// REGISTER AND MOVE parameter list byte 17: UNREG (bit 1), APTPL (bit 0).
const UNREG: u8 = 0x02;
const MOVE_FLAGS_RESERVED: u8 = 0xFC;

/// A parsed PERSISTENT RESERVE OUT: what [`apply_out`] applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProutRequest {
    /// REGISTER, or REGISTER AND IGNORE EXISTING KEY.
    Register(Register),
    Reserve {
        key: u64,
        kind: PrType,
    },
    Release {
        key: u64,
        kind: PrType,
    },
    Clear {
        key: u64,
    },
    /// PREEMPT, or PREEMPT AND ABORT.
    Preempt(Preempt),
    RegisterAndMove(Move),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Register {
    pub key: u64,
    pub sa_key: u64,
    /// REGISTER AND IGNORE EXISTING KEY.
    pub ignore_existing: bool,
    pub all_tg_pt: bool,
    pub aptpl: bool,
    /// SPEC_I_PT=1: the other initiator ports to register too.
    pub spec_i_pt: Option<Vec<TransportId>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preempt {
    pub key: u64,
    pub sa_key: u64,
    pub kind: PrType,
    /// PREEMPT AND ABORT.
    pub abort: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub key: u64,
    pub sa_key: u64,
    pub aptpl: bool,
    pub unreg: bool,
    pub relative_port: u16,
    pub destination: InitiatorPort,
}

/// Why a reservation command did not complete with GOOD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// RESERVATION CONFLICT status, no sense data.
    Conflict,
    /// CHECK CONDITION with this sense.
    Sense(Sense),
}

impl From<Sense> for Refusal {
    fn from(sense: Sense) -> Self {
        Refusal::Sense(sense)
    }
}

/// Some I_T nexuses that must be told a unit attention: those `nexuses` covers but `except`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UaTarget {
    pub nexuses: NexusSet,
    pub except: Option<ItNexus>,
}

impl UaTarget {
    pub fn includes(&self, nexus: &ItNexus) -> bool {
        self.nexuses.covers(nexus) && self.except.as_ref() != Some(nexus)
    }
}

/// What else must happen once a reservation command changed the state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutEffects {
    /// Establish each unit attention for every I_T nexus its target includes (SPC-4 names
    /// initiator ports of registered I_T nexuses; registrations may cover several nexuses).
    pub unit_attentions: Vec<(UaTarget, UnitAttention)>,
    /// PREEMPT AND ABORT: abort every task of these I_T nexuses (SAM-5; with TAS=0 they also
    /// get COMMANDS CLEARED BY ANOTHER INITIATOR).
    pub abort_tasks_of: Vec<NexusSet>,
    /// The state changed while APTPL was or became active: write it (or, if
    /// [`PrState::aptpl`] is now off, delete what was written) before the command completes.
    pub persist: bool,
}

/// CDB checks of PERSISTENT RESERVE OUT, before any Data-Out: the service action, SCOPE and
/// TYPE where the service action uses them, and the PARAMETER LIST LENGTH. Returns the latter.
pub fn check_out_cdb(cdb: &[u8]) -> Result<u32, Sense> {
    let cdb = Cdb::new(cdb);
    let action = cdb.u8(1) & 0x1F;
    if action > sa::REGISTER_AND_MOVE {
        return Err(Sense::invalid_field_in_cdb().at_cdb(1, Some(4)));
    }
    if matches!(
        action,
        sa::RESERVE | sa::RELEASE | sa::PREEMPT | sa::PREEMPT_AND_ABORT
    ) {
        if cdb.u8(2) >> 4 != LU_SCOPE {
            return Err(Sense::invalid_field_in_cdb().at_cdb(2, Some(7)));
        }
        if !PrType(cdb.u8(2) & 0x0F).is_supported() {
            return Err(Sense::invalid_field_in_cdb().at_cdb(2, Some(3)));
        }
    }
    let len = cdb.be32(5);
    // Only REGISTER (with SPEC_I_PT) and REGISTER AND MOVE carry more than the basic list.
    let longer_allowed = matches!(action, sa::REGISTER | sa::REGISTER_AND_MOVE);
    if len < BASIC_LIST_LEN || (len != BASIC_LIST_LEN && !longer_allowed) {
        return Err(Sense::parameter_list_length_error());
    }
    if len > MAX_LIST_LEN {
        return Err(Sense::insufficient_registration_resources());
    }
    Ok(len)
}

/// The whole PERSISTENT RESERVE OUT request: CDB and parameter list, checked.
pub fn parse_out(cdb: &[u8], params: &[u8]) -> Result<ProutRequest, Sense> {
    let declared = usize::try_from(check_out_cdb(cdb)?).unwrap_or(usize::MAX);
    let list = params
        .get(..declared)
        .ok_or_else(Sense::parameter_list_length_error)?;
    let action = Cdb::new(cdb).u8(1) & 0x1F;
    let kind = PrType(Cdb::new(cdb).u8(2) & 0x0F);
    if action == sa::REGISTER_AND_MOVE {
        return parse_move(list).map(ProutRequest::RegisterAndMove);
    }
    let p = Cdb::new(list);
    let (key, sa_key, flags) = (p.be64(0), p.be64(8), p.u8(20));
    if flags & FLAGS_RESERVED != 0 {
        let bit = 7 - (flags & FLAGS_RESERVED).leading_zeros() as u8;
        return Err(Sense::invalid_field_in_param_list().at_param(20, Some(bit)));
    }
    if p.u8(21) != 0 {
        return Err(Sense::invalid_field_in_param_list().at_param(21, None));
    }
    let spec_i_pt = flags & SPEC_I_PT != 0;
    if spec_i_pt && action != sa::REGISTER {
        return Err(Sense::invalid_field_in_param_list().at_param(20, Some(3)));
    }
    // Only SPEC_I_PT TransportIDs make the list longer than the basic 24 bytes.
    if !spec_i_pt && list.len() != BASIC_LIST_LEN as usize {
        return Err(Sense::parameter_list_length_error());
    }
    let (all_tg_pt, aptpl) = (flags & ALL_TG_PT != 0, flags & APTPL != 0);
    Ok(match action {
        sa::REGISTER | sa::REGISTER_AND_IGNORE_EXISTING_KEY => ProutRequest::Register(Register {
            key,
            sa_key,
            ignore_existing: action == sa::REGISTER_AND_IGNORE_EXISTING_KEY,
            all_tg_pt,
            aptpl,
            spec_i_pt: spec_i_pt.then(|| transport_ids(list)).transpose()?,
        }),
        sa::RESERVE => ProutRequest::Reserve { key, kind },
        sa::RELEASE => ProutRequest::Release { key, kind },
        sa::CLEAR => ProutRequest::Clear { key },
        _ => ProutRequest::Preempt(Preempt {
            key,
            sa_key,
            kind,
            abort: action == sa::PREEMPT_AND_ABORT,
        }),
    })
}

/// SPEC_I_PT: TRANSPORTID PARAMETER DATA LENGTH (bytes 24..=27) and the TransportIDs after it,
/// which must fill the parameter list exactly.
fn transport_ids(list: &[u8]) -> Result<Vec<TransportId>, Sense> {
    let declared = list.len() - BASIC_LIST_LEN as usize;
    if declared < 4 || Cdb::new(list).be32(24) as usize != declared - 4 {
        return Err(Sense::parameter_list_length_error());
    }
    TransportId::parse_list(&list[28..], 28)
}

/// SPC-4 REGISTER AND MOVE parameter list: keys, UNREG and APTPL (byte 17), RELATIVE TARGET
/// PORT IDENTIFIER (18..=19), TRANSPORTID PARAMETER DATA LENGTH (20..=23), one TransportID.
fn parse_move(list: &[u8]) -> Result<Move, Sense> {
    let p = Cdb::new(list);
    if p.u8(16) != 0 {
        return Err(Sense::invalid_field_in_param_list().at_param(16, None));
    }
    let flags = p.u8(17);
    if flags & MOVE_FLAGS_RESERVED != 0 {
        return Err(Sense::invalid_field_in_param_list().at_param(17, Some(7)));
    }
    let tid_len = list.len() - BASIC_LIST_LEN as usize;
    if p.be32(20) as usize != tid_len {
        return Err(Sense::parameter_list_length_error());
    }
    let (id, len) = TransportId::parse(&list[24..], 24)?;
    if len != tid_len {
        return Err(Sense::invalid_field_in_param_list().at_param(20, None));
    }
    // The destination is one I_T nexus: a name-only TransportID names no initiator port.
    let Some(isid) = id.isid else {
        return Err(Sense::invalid_field_in_param_list().at_param(24, Some(7)));
    };
    Ok(Move {
        key: p.be64(0),
        sa_key: p.be64(8),
        aptpl: flags & APTPL != 0,
        unreg: flags & UNREG != 0,
        relative_port: p.be16(18),
        destination: InitiatorPort {
            name: id.name,
            isid,
        },
    })
}

/// PERSISTENT RESERVE OUT from `nexus`: checks the request and applies it. `ports` are the
/// relative target port identifiers through which the logical unit is reachable.
pub fn reserve_out(
    state: &mut PrState,
    nexus: &ItNexus,
    cdb: &[u8],
    params: &[u8],
    ports: &[u16],
) -> Result<OutEffects, Refusal> {
    let request = parse_out(cdb, params)?;
    apply_out(state, nexus, &request, ports)
}

/// Applies a checked request. On any refusal the state is left as it was.
pub fn apply_out(
    state: &mut PrState,
    nexus: &ItNexus,
    request: &ProutRequest,
    ports: &[u16],
) -> Result<OutEffects, Refusal> {
    // SPC-2: while a RESERVE reservation exists, every PERSISTENT RESERVE OUT conflicts.
    if state.spc2_holder.is_some() {
        return Err(Refusal::Conflict);
    }
    let aptpl_before = state.aptpl;
    let mut fx = OutEffects::default();
    let changed = match request {
        ProutRequest::Register(r) => register(state, nexus, r, &mut fx)?,
        ProutRequest::Reserve { key, kind } => reserve(state, nexus, *key, *kind)?,
        ProutRequest::Release { key, kind } => release(state, nexus, *key, *kind, &mut fx)?,
        ProutRequest::Clear { key } => clear(state, nexus, *key, &mut fx)?,
        ProutRequest::Preempt(p) => preempt(state, nexus, p, &mut fx)?,
        ProutRequest::RegisterAndMove(m) => register_and_move(state, nexus, m, ports)?,
    };
    fx.persist = changed && (aptpl_before || state.aptpl);
    Ok(fx)
}

/// The index of `nexus`'s registration if `key` is its key: anything else is a RESERVATION
/// CONFLICT (SPC-4: an unregistered I_T nexus, or a RESERVATION KEY that does not match).
fn own(state: &PrState, nexus: &ItNexus, key: u64) -> Result<usize, Refusal> {
    match state.registration_index(nexus) {
        Some(i) if state.registrations[i].key == key => Ok(i),
        _ => Err(Refusal::Conflict),
    }
}

/// Unit attention `ua` for every registered I_T nexus but `except`.
fn tell_registrants(state: &PrState, except: &ItNexus, ua: UnitAttention, fx: &mut OutEffects) {
    for r in &state.registrations {
        let target = UaTarget {
            nexuses: r.nexuses.clone(),
            except: Some(except.clone()),
        };
        fx.unit_attentions.push((target, ua));
    }
}

fn room_for(state: &PrState, more: usize) -> Result<(), Refusal> {
    if state.registrations.len() + more > MAX_REGISTRATIONS {
        return Err(Sense::insufficient_registration_resources().into());
    }
    Ok(())
}

/// SPC-4 REGISTER and REGISTER AND IGNORE EXISTING KEY (the register behaviors tables).
fn register(
    state: &mut PrState,
    nexus: &ItNexus,
    r: &Register,
    fx: &mut OutEffects,
) -> Result<bool, Refusal> {
    let Some(i) = state.registration_index(nexus) else {
        return register_new(state, nexus, r);
    };
    if !r.ignore_existing && r.key != state.registrations[i].key {
        return Err(Refusal::Conflict);
    }
    // SPC-4: SPEC_I_PT from a registered I_T nexus is INVALID FIELD IN CDB.
    if r.spec_i_pt.is_some() {
        return Err(Sense::invalid_field_in_cdb().into());
    }
    if r.sa_key == 0 {
        unregister(state, i, nexus, fx);
    } else {
        state.registrations[i].key = r.sa_key;
        state.aptpl = r.aptpl;
    }
    state.bump_generation();
    Ok(true)
}

fn register_new(state: &mut PrState, nexus: &ItNexus, r: &Register) -> Result<bool, Refusal> {
    if !r.ignore_existing && r.key != 0 {
        return Err(Refusal::Conflict);
    }
    // Unregistering an unregistered I_T nexus: GOOD, nothing happens.
    if r.sa_key == 0 {
        return Ok(false);
    }
    let relative_port = (!r.all_tg_pt).then_some(nexus.relative_port);
    let own = NexusSet {
        initiator: TransportId::of(&nexus.initiator),
        relative_port,
    };
    // ALL_TG_PT over a registration the same initiator port holds through another target
    // port: two keys would cover one I_T nexus.
    if state.registrations.iter().any(|x| x.nexuses.overlaps(&own)) {
        return Err(Refusal::Conflict);
    }
    let mut sets = vec![own];
    for id in r.spec_i_pt.iter().flatten() {
        let set = NexusSet {
            initiator: id.clone(),
            relative_port,
        };
        // Naming the issuing port again adds nothing.
        if set == sets[0] {
            continue;
        }
        let taken = sets
            .iter()
            .chain(state.registrations.iter().map(|x| &x.nexuses))
            .any(|s| s.overlaps(&set));
        if taken {
            return Err(Sense::invalid_field_in_param_list().into());
        }
        sets.push(set);
    }
    room_for(state, sets.len())?;
    let key = r.sa_key;
    let added = sets
        .into_iter()
        .map(|nexuses| Registration { nexuses, key });
    state.registrations.extend(added);
    state.aptpl = r.aptpl;
    state.bump_generation();
    Ok(true)
}

/// Removes registration `i`; a reservation held through it goes too (SPC-4: with a
/// registrants-only type, the other registrants hear RESERVATIONS RELEASED), and an
/// all-registrants one goes with the last registration.
fn unregister(state: &mut PrState, i: usize, issuer: &ItNexus, fx: &mut OutEffects) {
    let removed = state.registrations.remove(i);
    let Some(reservation) = &state.reservation else {
        return;
    };
    let kind = reservation.kind;
    let released = match &reservation.holder {
        None => state.registrations.is_empty(),
        Some(holder) => removed.nexuses.covers(holder),
    };
    if released {
        state.reservation = None;
        if kind.registrants_only() {
            tell_registrants(state, issuer, UnitAttention::RESERVATIONS_RELEASED, fx);
        }
    }
}

/// SPC-4 RESERVE: only a registered I_T nexus with its key; a holder asking again for the
/// same type changes nothing, anything else in the way conflicts.
fn reserve(state: &mut PrState, nexus: &ItNexus, key: u64, kind: PrType) -> Result<bool, Refusal> {
    own(state, nexus, key)?;
    match &state.reservation {
        None => {
            let holder = (!kind.all_registrants()).then(|| nexus.clone());
            state.reservation = Some(Reservation { kind, holder });
            Ok(true)
        }
        Some(r) if r.kind == kind && state.is_holder(nexus) => Ok(false),
        Some(_) => Err(Refusal::Conflict),
    }
}

/// SPC-4 RELEASE: GOOD without effect when nothing is reserved or `nexus` does not hold it.
fn release(
    state: &mut PrState,
    nexus: &ItNexus,
    key: u64,
    kind: PrType,
    fx: &mut OutEffects,
) -> Result<bool, Refusal> {
    own(state, nexus, key)?;
    let Some(reservation) = &state.reservation else {
        return Ok(false);
    };
    if !state.is_holder(nexus) {
        return Ok(false);
    }
    let held = reservation.kind;
    if held != kind {
        return Err(Sense::invalid_release_of_persistent_reservation().into());
    }
    state.reservation = None;
    if held.shared_with_registrants() {
        tell_registrants(state, nexus, UnitAttention::RESERVATIONS_RELEASED, fx);
    }
    Ok(true)
}

/// SPC-4 CLEAR: every registration and the reservation go; every other registrant hears
/// RESERVATIONS PREEMPTED.
fn clear(
    state: &mut PrState,
    nexus: &ItNexus,
    key: u64,
    fx: &mut OutEffects,
) -> Result<bool, Refusal> {
    own(state, nexus, key)?;
    tell_registrants(state, nexus, UnitAttention::RESERVATIONS_PREEMPTED, fx);
    state.registrations.clear();
    state.reservation = None;
    state.bump_generation();
    Ok(true)
}

/// SPC-4 PREEMPT and PREEMPT AND ABORT (the device server interpretation of PREEMPT figure).
fn preempt(
    state: &mut PrState,
    nexus: &ItNexus,
    p: &Preempt,
    fx: &mut OutEffects,
) -> Result<bool, Refusal> {
    let mine = own(state, nexus, p.key)?;
    let zero_key = || Sense::invalid_field_in_param_list().at_param(8, None);
    let old_kind = state.reservation.as_ref().map(|r| r.kind);
    // Whether the reservation is taken over (released and made anew for `nexus`), and
    // whether every other registration goes (all-registrants type, key zero).
    let (take_over, everyone) = match old_kind {
        None if p.sa_key == 0 => return Err(zero_key().into()),
        None => (false, false),
        Some(kind) if kind.all_registrants() => (p.sa_key == 0, p.sa_key == 0),
        Some(_) if p.sa_key == state.reservation_key() => (true, false),
        Some(_) if p.sa_key == 0 => return Err(zero_key().into()),
        Some(_) => (false, false),
    };
    if !everyone && !state.registrations.iter().any(|r| r.key == p.sa_key) {
        return Err(Refusal::Conflict);
    }
    let registrations = std::mem::take(&mut state.registrations);
    for (i, r) in registrations.into_iter().enumerate() {
        if i == mine || !(everyone || r.key == p.sa_key) {
            state.registrations.push(r);
            continue;
        }
        let target = UaTarget {
            nexuses: r.nexuses.clone(),
            except: Some(nexus.clone()),
        };
        fx.unit_attentions
            .push((target, UnitAttention::REGISTRATIONS_PREEMPTED));
        if p.abort {
            fx.abort_tasks_of.push(r.nexuses);
        }
    }
    if take_over {
        let holder = (!p.kind.all_registrants()).then(|| nexus.clone());
        state.reservation = Some(Reservation {
            kind: p.kind,
            holder,
        });
        // The scope is always LU_SCOPE, so only the type can change.
        if old_kind != Some(p.kind) {
            tell_registrants(state, nexus, UnitAttention::RESERVATIONS_RELEASED, fx);
        }
    }
    state.bump_generation();
    Ok(true)
}

/// SPC-4 REGISTER AND MOVE: the holder hands the reservation to another I_T nexus, which is
/// registered with the SERVICE ACTION RESERVATION KEY unless it already is.
fn register_and_move(
    state: &mut PrState,
    nexus: &ItNexus,
    m: &Move,
    ports: &[u16],
) -> Result<bool, Refusal> {
    let mine = own(state, nexus, m.key)?;
    let holds = state
        .reservation
        .as_ref()
        .is_some_and(|r| !r.kind.all_registrants() && r.holder.as_ref() == Some(nexus));
    if !holds {
        return Err(Refusal::Conflict);
    }
    let bad = |byte: u16, bit: Option<u8>| {
        Refusal::Sense(Sense::invalid_field_in_param_list().at_param(byte, bit))
    };
    if m.sa_key == 0 {
        return Err(bad(8, None));
    }
    if !ports.contains(&m.relative_port) {
        return Err(bad(18, None));
    }
    let destination = ItNexus {
        initiator: m.destination.clone(),
        relative_port: m.relative_port,
    };
    if &destination == nexus {
        return Err(bad(24, None));
    }
    let registered = state.registration_index(&destination);
    // UNREG would take the destination's registration away with the issuer's.
    if m.unreg && registered == Some(mine) {
        return Err(bad(17, Some(1)));
    }
    if registered.is_none() {
        room_for(state, 1)?;
        state.registrations.push(Registration {
            nexuses: NexusSet::of(&destination),
            key: m.sa_key,
        });
    }
    if let Some(reservation) = &mut state.reservation {
        reservation.holder = Some(destination);
    }
    if m.unreg {
        state.registrations.remove(mine);
    }
    state.aptpl = m.aptpl;
    state.bump_generation();
    Ok(true)
}
