//! CHECK CONDITION answers with the right sense (SPC-4, SBC-3).

mod common;

use common::cdb::{self, ASC_LBA_OUT_OF_RANGE, ASC_WRITE_PROTECTED, DATA_PROTECT, ILLEGAL_REQUEST};

#[test]
fn read_only_lun_refuses_write_with_data_protect() {
    let d = common::daemon(&["--read-only"]);
    let mut ini = common::session(&d, &[]);
    ini.wait_ready(0);
    let (_, bs) = ini.capacity(0);
    let data = cdb::pattern(5, 8 * bs as usize);
    ini.write_blocks(0, 0, &data, bs)
        .assert_sense(DATA_PROTECT, ASC_WRITE_PROTECTED);
    ini.read_blocks(0, 0, 8, bs).assert_good();
}

#[test]
fn access_beyond_last_lba_is_illegal_request() {
    let d = common::daemon(&[]);
    let mut ini = common::session(&d, &[]);
    ini.wait_ready(0);
    let (blocks, bs) = ini.capacity(0);
    ini.read_blocks(0, blocks, 1, bs)
        .assert_sense(ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE);
    ini.read_blocks(0, blocks - 1, 2, bs)
        .assert_sense(ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE);
    let data = cdb::pattern(6, bs as usize);
    ini.write_blocks(0, blocks, &data, bs)
        .assert_sense(ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE);
    ini.read_blocks(0, blocks - 1, 1, bs).assert_good();
}
