//! Unit attentions as SAM-5 §5.14 has them reported: once, by the first command other than
//! INQUIRY, REPORT LUNS and REQUEST SENSE, or as the sense data of REQUEST SENSE.

use super::dispatch;
use super::lu;
use crate::scsi::{encode_lun, LunMap, NexusState, Plan, ScsiStatus, UnitAttention};

fn status_and_sense(plan: Plan) -> (ScsiStatus, Option<(u8, u8, u8)>, Vec<u8>) {
    match plan {
        Plan::Complete(c) => {
            let sense =
                (c.sense.len() >= 14).then(|| (c.sense[2] & 0x0f, c.sense[12], c.sense[13]));
            (c.status, sense, c.data)
        }
        other => (ScsiStatus::GOOD, None, format!("{other:?}").into_bytes()),
    }
}

fn powered_on() -> (LunMap, NexusState) {
    let luns = LunMap::new(vec![lu(0), lu(1)]);
    let mut nexus = NexusState::new();
    for l in luns.iter() {
        nexus
            .unit_attentions
            .establish(l.lun, UnitAttention::POWER_ON_RESET);
    }
    (luns, nexus)
}

const TUR: [u8; 6] = [0; 6];

#[test]
fn first_command_reports_power_on_once_per_logical_unit() {
    let (luns, mut nexus) = powered_on();
    let (status, sense, _) = status_and_sense(dispatch(&luns, &mut nexus, encode_lun(0), &TUR));
    assert_eq!(status, ScsiStatus::CHECK_CONDITION);
    assert_eq!(sense, Some((0x06, 0x29, 0x00)));
    let (status, _, _) = status_and_sense(dispatch(&luns, &mut nexus, encode_lun(0), &TUR));
    assert_eq!(status, ScsiStatus::GOOD, "reported once");
    let (status, sense, _) = status_and_sense(dispatch(&luns, &mut nexus, encode_lun(1), &TUR));
    assert_eq!(
        (status, sense),
        (ScsiStatus::CHECK_CONDITION, Some((0x06, 0x29, 0x00)))
    );
}

#[test]
fn inquiry_and_report_luns_run_under_a_unit_attention_and_leave_it() {
    let (luns, mut nexus) = powered_on();
    let inquiry = [0x12, 0, 0, 0, 96, 0];
    let (status, _, data) = status_and_sense(dispatch(&luns, &mut nexus, encode_lun(0), &inquiry));
    assert_eq!((status, data.len()), (ScsiStatus::GOOD, 96));
    let report_luns = [0xa0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0];
    let (status, _, _) = status_and_sense(dispatch(&luns, &mut nexus, encode_lun(0), &report_luns));
    assert_eq!(status, ScsiStatus::GOOD);
    assert_eq!(
        nexus.unit_attentions.peek(0),
        Some(UnitAttention::POWER_ON_RESET)
    );
}

#[test]
fn report_luns_clears_reported_luns_data_has_changed_only() {
    let (luns, mut nexus) = powered_on();
    nexus.unit_attentions.take(0);
    let changed = UnitAttention::REPORTED_LUNS_DATA_HAS_CHANGED;
    nexus.unit_attentions.establish(0, changed);
    nexus
        .unit_attentions
        .establish(0, UnitAttention::CAPACITY_DATA_HAS_CHANGED);
    let report_luns = [0xa0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0];
    dispatch(&luns, &mut nexus, encode_lun(0), &report_luns);
    assert_eq!(
        nexus.unit_attentions.peek(0),
        Some(UnitAttention::CAPACITY_DATA_HAS_CHANGED)
    );
}

#[test]
fn request_sense_reports_the_unit_attention_as_data_and_clears_it() {
    let (luns, mut nexus) = powered_on();
    let request_sense = [0x03, 0, 0, 0, 18, 0];
    let (status, _, data) =
        status_and_sense(dispatch(&luns, &mut nexus, encode_lun(1), &request_sense));
    assert_eq!(status, ScsiStatus::GOOD);
    assert_eq!((data[2] & 0x0f, data[12], data[13]), (0x06, 0x29, 0x00));
    let (status, _, _) = status_and_sense(dispatch(&luns, &mut nexus, encode_lun(1), &TUR));
    assert_eq!(status, ScsiStatus::GOOD);
}
