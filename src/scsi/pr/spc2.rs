//! SPC-2 RESERVE(6)/(10) and RELEASE(6)/(10): a logical unit reservation held by one I_T
//! nexus, with SPC-4's rules for RESERVE and RELEASE meeting persistent reservations
//! (compatible reservation handling, CRH=1).

use super::{ItNexus, PrState, Refusal};

/// What RESERVE or RELEASE does given the current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// GOOD, and nothing changes: SPC-4 exceptions to SPC-2 RESERVE and RELEASE behavior,
    /// for the persistent reservation holder, and for a registered I_T nexus while a
    /// registrants-only or all-registrants reservation exists.
    Exempt,
    /// RESERVATION CONFLICT.
    Conflict,
    /// SPC-2 semantics apply.
    Proceed,
}

pub(super) fn verdict(state: &PrState, nexus: &ItNexus, reserve: bool) -> Verdict {
    if let Some(reservation) = &state.reservation {
        let registered = state.registration_of(nexus).is_some();
        if state.is_holder(nexus) || (registered && reservation.kind.shared_with_registrants()) {
            return Verdict::Exempt;
        }
    }
    // SPC-2: while any I_T nexus is registered, every RESERVE and RELEASE conflicts.
    if !state.registrations.is_empty() {
        return Verdict::Conflict;
    }
    match &state.spc2_holder {
        Some(holder) if reserve && holder != nexus => Verdict::Conflict,
        _ => Verdict::Proceed,
    }
}

/// RESERVE(6)/(10): `nexus` reserves the logical unit (again, if it holds it already).
pub fn reserve_spc2(state: &mut PrState, nexus: &ItNexus) -> Result<(), Refusal> {
    match verdict(state, nexus, true) {
        Verdict::Exempt => Ok(()),
        Verdict::Conflict => Err(Refusal::Conflict),
        Verdict::Proceed => {
            state.spc2_holder = Some(nexus.clone());
            Ok(())
        }
    }
}

/// RELEASE(6)/(10): releases the reservation `nexus` holds; from any other I_T nexus it is
/// GOOD and changes nothing (SPC-2 RELEASE).
pub fn release_spc2(state: &mut PrState, nexus: &ItNexus) -> Result<(), Refusal> {
    match verdict(state, nexus, false) {
        Verdict::Exempt => Ok(()),
        Verdict::Conflict => Err(Refusal::Conflict),
        Verdict::Proceed => {
            if state.spc2_holder.as_ref() == Some(nexus) {
                state.spc2_holder = None;
            }
            Ok(())
        }
    }
}
