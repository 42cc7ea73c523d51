//! The dispatch side of the reservation commands: PERSISTENT RESERVE IN is answered from the
//! unit's snapshot, PERSISTENT RESERVE OUT asks for its parameter list, RESERVE and RELEASE
//! become a [`Plan::Shared`] for the unit's one writer.

use super::cdb::{op, Cdb};
use super::commands::Ctx;
use super::sense::{Sense, SenseFormat};
use super::{
    check_condition_as, good, pr, reservation_conflict, Completion, ItNexus, LuInfo, NexusState,
    OutEffects, Plan, PrState, ProutRequest, Refusal, ScsiStatus,
};

/// A parsed command that changes shared logical-unit state, for [`apply_shared`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedOp {
    /// The logical unit whose state it changes.
    pub lun: u16,
    pub request: SharedRequest,
    /// How the sending I_T nexus wants its sense data (D_SENSE when the command arrived).
    pub sense_format: SenseFormat,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SharedRequest {
    PersistentReserveOut(ProutRequest),
    /// SPC-2 RESERVE(6)/(10).
    Reserve,
    /// SPC-2 RELEASE(6)/(10).
    Release,
}

/// Applies a shared operation to the logical unit's state (by its one writer) for the I_T
/// nexus that sent it. `ports` are the relative target port identifiers of the unit. The
/// completion answers the command; the effects name the unit attentions to establish, the
/// tasks to abort and whether to persist the state.
pub fn apply_shared(
    state: &mut PrState,
    nexus: &ItNexus,
    op: &SharedOp,
    ports: &[u16],
) -> (Completion, OutEffects) {
    let result = match &op.request {
        SharedRequest::PersistentReserveOut(request) => pr::apply_out(state, nexus, request, ports),
        SharedRequest::Reserve => pr::reserve_spc2(state, nexus).map(|()| OutEffects::default()),
        SharedRequest::Release => pr::release_spc2(state, nexus).map(|()| OutEffects::default()),
    };
    match result {
        Ok(effects) => (good(), effects),
        Err(Refusal::Conflict) => (reservation_conflict(), OutEffects::default()),
        Err(Refusal::Sense(sense)) => (
            check_condition_as(op.sense_format, sense),
            OutEffects::default(),
        ),
    }
}

/// RESERVE/RELEASE (6) byte 1: 3RDPTY (bit 4) and EXTENT (bit 0), both obsolete since SPC-2.
const SIX_REFUSED: u8 = 0x11;
/// RESERVE/RELEASE (10) byte 1: 3RDPTY (bit 4), LONGID (bit 1), EXTENT (bit 0, obsolete).
const TEN_REFUSED: u8 = 0x13;

/// SPC-4 PERSISTENT RESERVE IN.
pub(super) fn persistent_reserve_in(ctx: &mut Ctx<'_>, cdb: Cdb) -> Result<Plan, Sense> {
    let data = pr::reserve_in(ctx.unit.pr, cdb.bytes())?;
    Ok(Plan::Complete(Completion {
        status: ScsiStatus::GOOD,
        data,
        sense: Vec::new(),
    }))
}

/// SPC-4 PERSISTENT RESERVE OUT: the CDB is checked now, the request once its parameter
/// list arrives (`execute_params`).
pub(super) fn persistent_reserve_out(cdb: Cdb) -> Result<Plan, Sense> {
    let len = pr::check_out_cdb(cdb.bytes())?;
    Ok(Plan::ReceiveParams { len })
}

/// PERSISTENT RESERVE OUT once its parameter list arrived: checked here, applied by the
/// unit's writer.
pub(super) fn persistent_reserve_out_params(
    lu: &LuInfo,
    nexus: &NexusState,
    cdb: Cdb,
    params: &[u8],
) -> Result<SharedOp, Sense> {
    let request = pr::parse_out(cdb.bytes(), params)?;
    Ok(SharedOp {
        lun: lu.lun,
        request: SharedRequest::PersistentReserveOut(request),
        sense_format: nexus.sense_format(),
    })
}

/// SPC-2 RESERVE(6)/(10).
pub(super) fn reserve(ctx: &mut Ctx<'_>, cdb: Cdb) -> Result<Plan, Sense> {
    shared(ctx, cdb, SharedRequest::Reserve)
}

/// SPC-2 RELEASE(6)/(10).
pub(super) fn release(ctx: &mut Ctx<'_>, cdb: Cdb) -> Result<Plan, Sense> {
    shared(ctx, cdb, SharedRequest::Release)
}

/// Third-party reservations (and extents) are not supported, so their fields must be zero.
fn shared(ctx: &mut Ctx<'_>, cdb: Cdb, request: SharedRequest) -> Result<Plan, Sense> {
    let ten = matches!(cdb.opcode(), op::RESERVE_10 | op::RELEASE_10);
    let refused = cdb.u8(1) & if ten { TEN_REFUSED } else { SIX_REFUSED };
    if refused != 0 {
        let bit = 7 - refused.leading_zeros() as u8;
        return Err(Sense::invalid_field_in_cdb().at_cdb(1, Some(bit)));
    }
    if ten && cdb.be16(7) != 0 {
        return Err(Sense::invalid_field_in_cdb().at_cdb(7, None));
    }
    Ok(Plan::Shared(SharedOp {
        lun: ctx.lu.lun,
        request,
        sense_format: ctx.nexus.sense_format(),
    }))
}
