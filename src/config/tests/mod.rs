//! Whole-document tests: parsing, defaults, every validation rule and the TOML round trip.

use std::path::PathBuf;

use super::*;

mod access;
mod limits;

const FULL: &str = r#"
portals = ["127.0.0.1:3260", "[::1]:3261", "10.1.2.3"]
cores = "0-1"
portal_group_tag = 7

[iscsi]
max_recv_data_segment_length = 65536
max_burst_length = 2097152
first_burst_length = 131072
max_outstanding_r2t = 4
initial_r2t = true
immediate_data = false
header_digest = "require"
data_digest = "never"
queue_depth = 256
nop_in_interval_secs = 0
nop_in_timeout_secs = 30
default_time2wait = 0
default_time2retain = 60
login_timeout_secs = 10
max_transfer_bytes = 1048576

[[target]]
name = "iqn.2026-11.io.ringtgt:disk1"
alias = "disk one"
allowed_initiators = ["iqn.1993-08.org.debian:01:abcdef", "eui.02004567A425678D"]

[[target.lun]]
id = 3
path = "/dev/nvme0n1"
block_size = 4096
read_only = true
serial = "NVME0001"
write_cache = false
removable = true
sanitize_rate = "200MiB"

[[target.lun]]
path = "ram:512MiB"

[[target]]
name = "naa.600140512345678901234567890abcde"

[[target.lun]]
path = "null:10G"

[[target.port_group]]
id = 2
portals = ["127.0.0.1:3260", "10.1.2.3"]

[[target.port_group]]
id = 3
portals = ["[::1]:3261"]
state = "standby"
"#;

/// A valid configuration to break one rule at a time.
fn base() -> Config {
    Config::from_toml_str(FULL).expect("FULL is valid")
}

fn err_of(c: &Config) -> String {
    match c.validate() {
        Ok(()) => panic!("expected a validation error for {c:#?}"),
        Err(e) => e.to_string(),
    }
}

fn toml_err(s: &str) -> String {
    match Config::from_toml_str(s) {
        Ok(c) => panic!("expected an error, got {c:#?}"),
        Err(e) => e.to_string(),
    }
}

fn assert_one_line(msg: &str) {
    assert!(!msg.contains('\n'), "error is not one line: {msg:?}");
}

/// Breaks one rule of a valid configuration.
type Breaker = fn(&mut Config);

/// Applies each breaker to a copy of `ok` and checks that validation then fails with a one-line
/// error starting with the wanted text. Returns the errors for further checks.
fn assert_rules(ok: &Config, cases: Vec<(Breaker, &str)>) -> Vec<String> {
    ok.validate().unwrap();
    let mut errors = Vec::new();
    for (i, (breaker, want)) in cases.into_iter().enumerate() {
        let mut c = ok.clone();
        breaker(&mut c);
        let e = err_of(&c);
        assert_one_line(&e);
        assert!(e.starts_with(want), "case {i}: want {want:?}, got {e:?}");
        errors.push(e);
    }
    errors
}

/// Checks that the document `doc` makes of each case fails to load with a one-line error
/// starting with the wanted text. Returns the errors for further checks.
fn assert_toml_errors(cases: &[(&str, &str)], doc: impl Fn(&str) -> String) -> Vec<String> {
    let mut errors = Vec::new();
    for (case, want) in cases {
        let e = toml_err(&doc(case));
        assert_one_line(&e);
        assert!(e.starts_with(want), "{case:?}: want {want:?}, got {e:?}");
        errors.push(e);
    }
    errors
}

#[test]
fn full_example_parses_into_the_model() {
    let c = base();
    assert_eq!(c.portals.len(), 3);
    assert_eq!(c.portals[1], "[::1]:3261".parse().unwrap());
    assert_eq!(c.portals[2], "10.1.2.3:3260".parse().unwrap());
    assert_eq!(c.cores, CoreSpec::List(vec![0, 1]));
    assert_eq!(c.portal_group_tag, 7);
    assert_eq!(c.iscsi.max_recv_data_segment_length, 65536);
    assert_eq!(c.iscsi.max_burst_length, 2_097_152);
    assert_eq!(c.iscsi.first_burst_length, 131_072);
    assert_eq!(c.iscsi.max_outstanding_r2t, 4);
    assert!(c.iscsi.initial_r2t);
    assert!(!c.iscsi.immediate_data);
    assert_eq!(c.iscsi.header_digest, DigestPolicy::Require);
    assert_eq!(c.iscsi.data_digest, DigestPolicy::Never);
    assert_eq!(c.iscsi.queue_depth, 256);
    assert_eq!(c.iscsi.nop_in_interval_secs, 0);
    assert_eq!(c.iscsi.nop_in_timeout_secs, 30);
    assert_eq!(c.iscsi.default_time2wait, 0);
    assert_eq!(c.iscsi.default_time2retain, 60);
    assert_eq!(c.iscsi.login_timeout_secs, 10);
    assert_eq!(c.iscsi.max_transfer_bytes, 1 << 20);
    let t = &c.targets[0];
    assert_eq!(t.name, "iqn.2026-11.io.ringtgt:disk1");
    assert_eq!(t.alias.as_deref(), Some("disk one"));
    assert_eq!(t.allowed_initiators.len(), 2);
    assert_eq!(
        t.luns[0],
        LunConfig {
            id: 3,
            backing: Backing::Path("/dev/nvme0n1".into()),
            block_size: Some(4096),
            read_only: true,
            serial: Some("NVME0001".into()),
            write_cache: Some(false),
            removable: true,
            sanitize_rate: Some(200 << 20),
        }
    );
    // id defaults to the position in the list; other keys to their defaults.
    assert_eq!(
        t.luns[1],
        LunConfig::new(1, Backing::Ram { size: 512 << 20 })
    );
    assert_eq!(c.targets[1].alias, None);
    assert_eq!(
        c.targets[1].luns[0].backing,
        Backing::Null { size: 10 << 30 }
    );
}

#[test]
fn full_example_round_trips_through_toml() {
    let c = base();
    let text = c.to_toml_string().unwrap();
    assert_eq!(Config::from_toml_str(&text).unwrap(), c, "{text}");
}

#[test]
fn demo_round_trips_and_has_the_documented_shape() {
    let c = Config::demo("/tmp/x.img".into());
    c.validate().unwrap();
    assert_eq!(c.portals, vec!["127.0.0.1:3260".parse().unwrap()]);
    assert_eq!(c.targets[0].name, "iqn.2026-11.io.ringtgt:demo");
    assert_eq!(c.targets[0].alias.as_deref(), Some("ringtgt demo"));
    assert_eq!(c.targets[0].luns[0].block_size, None);
    assert_eq!(
        c.targets[0].luns[0].backing,
        Backing::Path("/tmp/x.img".into())
    );
    let text = c.to_toml_string().unwrap();
    assert_eq!(Config::from_toml_str(&text).unwrap(), c);
}

#[test]
fn round_trip_keeps_awkward_paths_and_single_core_lists() {
    let mut c = base();
    c.cores = CoreSpec::List(vec![5]);
    c.targets[0].luns[0].backing = Backing::Path("null:odd".into());
    c.targets[0].luns[1].backing = Backing::Path("file:x".into());
    c.targets[1].luns[0].backing = Backing::Ram { size: 4096 * 3 };
    let text = c.to_toml_string().unwrap();
    assert_eq!(Config::from_toml_str(&text).unwrap(), c, "{text}");
}

/// The text of the module doc comment of `config/mod.rs`, one entry per line.
fn module_doc() -> Vec<&'static str> {
    include_str!("../mod.rs")
        .lines()
        .take_while(|l| l.starts_with("//!"))
        .map(|l| l.strip_prefix("//! ").unwrap_or("").trim_end_matches("//!"))
        .collect()
}

#[test]
fn reference_example_in_module_doc_is_valid() {
    let doc = module_doc();
    let start = doc.iter().position(|l| *l == "```toml").unwrap() + 1;
    let len = doc[start..].iter().position(|l| *l == "```").unwrap();
    let example = doc[start..start + len].join("\n");
    let c = Config::from_toml_str(&example).unwrap();
    assert_eq!(
        c.iscsi,
        IscsiTuning::default(),
        "doc example lists the defaults"
    );
    assert_eq!(
        c.limits,
        Limits::default(),
        "doc example lists the defaults"
    );
    let chap = c.targets[0].chap.as_ref().unwrap();
    assert_eq!(chap.algorithms, ChapConfig::DEFAULT_ALGORITHMS);
    assert_eq!(c.targets[0].luns[1].id, 1);
}

/// The README's "Configuration reference" is the module doc's reference with each heading one
/// level deeper, so that the two cannot drift apart.
#[test]
fn readme_reference_matches_module_doc() {
    let doc = module_doc();
    let start = doc
        .iter()
        .position(|l| *l == "# Configuration file reference")
        .unwrap();
    let reference: Vec<String> = doc[start + 2..]
        .iter()
        .map(|l| match l.strip_prefix("## ") {
            Some(h) => format!("### {h}"),
            None => l.to_string(),
        })
        .collect();
    let readme = include_str!("../../../README.md");
    assert!(
        readme.contains(&reference.join("\n")),
        "README.md's Configuration reference differs from the doc comment of src/config/mod.rs"
    );
}

#[test]
fn minimal_file_gets_defaults() {
    let c = Config::from_toml_str(
        "[[target]]\nname = \"iqn.2026-11.io.ringtgt:a\"\n[[target.lun]]\npath = \"/x\"\n",
    )
    .unwrap();
    assert_eq!(c.portals, vec![default_portal()]);
    assert_eq!(c.cores, CoreSpec::default());
    assert_eq!(c.portal_group_tag, 1);
    assert_eq!(c.iscsi, IscsiTuning::default());
    assert_eq!(
        c.targets[0].luns,
        vec![LunConfig::new(0, Backing::Path("/x".into()))]
    );
    assert!(c.targets[0].allowed_initiators.is_empty());
}

#[test]
fn defaults_match_the_documentation() {
    let t = IscsiTuning::default();
    assert_eq!(t.max_recv_data_segment_length, 262_144);
    assert_eq!(t.max_burst_length, 1_048_576);
    assert_eq!(t.first_burst_length, 262_144);
    assert_eq!(t.max_outstanding_r2t, 8);
    assert!(!t.initial_r2t);
    assert!(t.immediate_data);
    assert_eq!(t.header_digest, DigestPolicy::Allow);
    assert_eq!(t.data_digest, DigestPolicy::Allow);
    assert_eq!(t.queue_depth, 128);
    assert_eq!(t.nop_in_interval_secs, 5);
    assert_eq!(t.nop_in_timeout_secs, 15);
    assert_eq!(t.default_time2wait, 2);
    assert_eq!(t.default_time2retain, 20);
    assert_eq!(t.login_timeout_secs, 15);
    assert_eq!(t.max_transfer_bytes, 8 * 1024 * 1024);
    assert_eq!(CoreSpec::default(), CoreSpec::Auto);
}

#[test]
fn cores_accepts_integer_and_string() {
    let with = |v: &str| {
        Config::from_toml_str(&FULL.replace("cores = \"0-1\"", &format!("cores = {v}")))
            .map(|c| c.cores)
    };
    assert_eq!(with("4").unwrap(), CoreSpec::Count(4));
    assert_eq!(with("\"3\"").unwrap(), CoreSpec::Count(3));
    assert_eq!(with("\"auto\"").unwrap(), CoreSpec::Auto);
    assert_eq!(
        with("\"0-3,8\"").unwrap(),
        CoreSpec::List(vec![0, 1, 2, 3, 8])
    );
    for bad in ["0", "-2", "\"\"", "\"3-1\"", "1.5", "[1]"] {
        let e = with(bad).unwrap_err().to_string();
        assert!(e.starts_with("cores: "), "{bad}: {e}");
    }
}

#[test]
fn unknown_keys_are_rejected_with_name_and_position() {
    let cases = [
        ("portal = []\n", "portal", 1),
        ("[iscsi]\nqueue_dept = 4\n", "queue_dept", 2),
        (
            "[[target]]\nname = \"iqn.2026-11.io.x:a\"\naliass = \"x\"\n",
            "aliass",
            3,
        ),
        (
            "[[target]]\nname = \"iqn.2026-11.io.x:a\"\n[[target.lun]]\npath = \"/x\"\nblocksize = 4096\n",
            "blocksize",
            5,
        ),
    ];
    for (text, key, line) in cases {
        let e = toml_err(text);
        assert_one_line(&e);
        assert!(e.contains(&format!("`{key}`")), "{e}");
        assert!(e.starts_with(&format!("config:{line}:")), "{e}");
    }
}

#[test]
fn syntax_and_type_errors_are_one_line_with_position() {
    let e = toml_err("portals = [\"127.0.0.1:3260\"\n[iscsi]\n");
    assert_one_line(&e);
    assert!(e.starts_with("config:"), "{e}");
    let e = toml_err("[iscsi]\nqueue_depth = \"many\"\n");
    assert_one_line(&e);
    assert!(e.starts_with("config:2:15:"), "{e}");
    let e = toml_err("[[target]]\nalias = \"no name\"\n");
    assert!(e.contains("name"), "{e}");
}

#[test]
fn load_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let e = Config::load(&missing).unwrap_err().to_string();
    assert!(e.starts_with(&missing.display().to_string()), "{e}");
    assert_one_line(&e);

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "\n\nbogus = 1\n").unwrap();
    let e = Config::load(&bad).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}:3:1: ", bad.display())), "{e}");

    let good = dir.path().join("good.toml");
    std::fs::write(&good, FULL).unwrap();
    assert_eq!(Config::load(&good).unwrap(), (base(), Vec::new()));
}

#[test]
fn relative_lun_paths_are_relative_to_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ringtgt.toml");
    std::fs::write(
        &file,
        "[[target]]\nname = \"iqn.2026-11.io.ringtgt:a\"\n\
         [[target.lun]]\npath = \"disk.img\"\n[[target.lun]]\npath = \"../up/b.img\"\n\
         [[target.lun]]\npath = \"/abs/c.img\"\n[[target.lun]]\npath = \"ram:1MiB\"\n",
    )
    .unwrap();
    let (c, _) = Config::load(&file).unwrap();
    let backings: Vec<Backing> = c.targets[0]
        .luns
        .iter()
        .map(|l| l.backing.clone())
        .collect();
    assert_eq!(
        backings,
        [
            Backing::Path(dir.path().join("disk.img")),
            Backing::Path(dir.path().join("../up/b.img")),
            Backing::Path("/abs/c.img".into()),
            Backing::Ram { size: 1 << 20 },
        ]
    );
    // A string is not a file: nothing to be relative to.
    let c = Config::from_toml_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(
        c.targets[0].luns[0].backing,
        Backing::Path("disk.img".into())
    );
}

#[test]
fn out_of_type_integers_name_the_field() {
    let cases = [
        (
            "[iscsi]\nmax_outstanding_r2t = 70000\n",
            "iscsi.max_outstanding_r2t: must be between 1 and 65535, got 70000",
        ),
        (
            "[iscsi]\nqueue_depth = -1\n",
            "iscsi.queue_depth: must be between 1 and 4096, got -1",
        ),
        (
            "[iscsi]\nlogin_timeout_secs = 5000000000\n",
            "iscsi.login_timeout_secs: must be at least 1, got 5000000000",
        ),
        (
            "[iscsi]\ndefault_time2wait = 3601\n",
            "iscsi.default_time2wait: must be between 0 and 3600, got 3601",
        ),
        (
            "[iscsi]\nheader_digest = \"crc32c\"\n",
            "iscsi.header_digest: must be \"never\", \"allow\" or \"require\", got \"crc32c\"",
        ),
        (
            "[iscsi]\ndata_digest = \"Allow\"\n",
            "iscsi.data_digest: must be",
        ),
        (
            "portal_group_tag = 65536\n",
            "portal_group_tag: must be between 0 and 65535, got 65536",
        ),
        (
            "portals = [\"localhost:3260\"]\n",
            "portals[0]: expected an IP address",
        ),
    ];
    for (text, want) in cases {
        let e = toml_err(&format!(
            "{text}{}",
            &FULL[FULL.find("[[target]]").unwrap()..]
        ));
        assert!(e.starts_with(want), "want {want:?}, got {e:?}");
    }
    let lun = |kv: &str| {
        toml_err(&format!(
            "[[target]]\nname = \"iqn.2026-11.io.x:a\"\n[[target.lun]]\npath = \"/x\"\n[[target.lun]]\npath = \"/y\"\n{kv}\n"
        ))
    };
    assert_eq!(
        lun("id = 16384"),
        "target[0].lun[1].id: must be between 0 and 16383, got 16384"
    );
    assert_eq!(
        lun("block_size = 1000"),
        "target[0].lun[1].block_size: must be 512 or 4096, got 1000"
    );
    assert_eq!(
        lun("sanitize_rate = \"512KiB\""),
        "target[0].lun[1].sanitize_rate: must be at least 1MiB (a second), got 512KiB"
    );
    let e =
        toml_err("[[target]]\nname = \"iqn.2026-11.io.x:a\"\n[[target.lun]]\npath = \"foo:12\"\n");
    assert!(
        e.starts_with("target[0].lun[0].path: unknown store kind \"foo\""),
        "{e}"
    );
}

#[test]
fn every_rule_names_its_field() {
    let cases: Vec<(Breaker, &str)> = vec![
        (|c| c.portals.clear(), "portals: at least one"),
        (|c| c.portals[1] = c.portals[0], "portals[1]: 127.0.0.1:3260 is listed twice"),
        (|c| c.portals[0].set_port(0), "portals[0]: port must not be 0"),
        (|c| c.cores = CoreSpec::Count(0), "cores: core count must be between 1"),
        (|c| c.cores = CoreSpec::List(vec![]), "cores: core list must not be empty"),
        (|c| c.cores = CoreSpec::List(vec![1, 2, 1]), "cores: CPU 1 appears twice"),
        (|c| c.cores = CoreSpec::List(vec![5000]), "cores: CPU id 5000 is above 4095"),
        (|c| c.iscsi.max_recv_data_segment_length = 511, "iscsi.max_recv_data_segment_length: must be between 512 and 16777215, got 511"),
        (|c| c.iscsi.max_burst_length = 16_777_216, "iscsi.max_burst_length: must be between 512 and 16777215"),
        (|c| c.iscsi.first_burst_length = 100, "iscsi.first_burst_length: must be between 512"),
        (|c| c.iscsi.max_outstanding_r2t = 0, "iscsi.max_outstanding_r2t: must be between 1 and 65535, got 0"),
        (|c| c.iscsi.queue_depth = 4097, "iscsi.queue_depth: must be between 1 and 4096, got 4097"),
        (|c| c.iscsi.nop_in_timeout_secs = 0, "iscsi.nop_in_timeout_secs: must be at least 1, got 0"),
        (|c| c.iscsi.default_time2wait = 3601, "iscsi.default_time2wait: must be between 0 and 3600"),
        (|c| c.iscsi.default_time2retain = 9999, "iscsi.default_time2retain: must be between 0 and 3600"),
        (|c| c.iscsi.login_timeout_secs = 0, "iscsi.login_timeout_secs: must be at least 1"),
        (|c| c.iscsi.max_transfer_bytes = 32768, "iscsi.max_transfer_bytes: must be at least 65536, got 32768"),
        (|c| c.iscsi.max_transfer_bytes = 65536 + 512, "iscsi.max_transfer_bytes: must be a multiple of 4096"),
        (
            |c| {
                c.iscsi.max_burst_length = 65536;
                c.iscsi.first_burst_length = 65537;
            },
            "iscsi.first_burst_length: must not exceed max_burst_length (65536), got 65537",
        ),
        (|c| c.targets[1].name = "iqn.2026-11.IO.x".into(), "target[1].name: \"iqn.2026-11.IO.x\" contains upper-case"),
        (|c| c.targets[1].name = "iqn.2026-13.io.x".into(), "target[1].name: \"iqn.2026-13.io.x\" has month 13"),
        (|c| c.targets[1].name = "iqn.2026-11.io..x:a".into(), "target[1].name: \"iqn.2026-11.io..x:a\" has naming authority"),
        (|c| c.targets[1].name = "iqn.2026-11:x".into(), "target[1].name: \"iqn.2026-11:x\" is not an iqn name"),
        (|c| c.targets[1].name = "iqn.2026-11.io.x:a b".into(), "target[1].name: \"iqn.2026-11.io.x:a b\" contains ' '"),
        (|c| c.targets[1].name = "eui.1234".into(), "target[1].name: \"eui.1234\" is not a valid eui. name: expected eui. followed by 16 hex digits"),
        (|c| c.targets[1].name = "naa.12345678901234567".into(), "target[1].name: \"naa.12345678901234567\" is not a valid naa. name: expected naa. followed by 16 or 32 hex digits"),
        (|c| c.targets[1].name = "disk1".into(), "target[1].name: \"disk1\" is not an iSCSI name"),
        (|c| c.targets[1].name = String::new(), "target[1].name: iSCSI name must not be empty"),
        (|c| c.targets[1].name = format!("iqn.2026-11.io.x:{}", "a".repeat(210)), "target[1].name: iSCSI name is 227 bytes long, the limit is 223"),
        (|c| c.targets[1].name = "IQN.2026-11.IO.RINGTGT:DISK1".into(), "target[1].name: \"IQN.2026-11.IO.RINGTGT:DISK1\" is not an iSCSI name"),
        (|c| c.targets[1].name = c.targets[0].name.clone(), "target[1].name: duplicate target name \"iqn.2026-11.io.ringtgt:disk1\" (also target[0])"),
        (|c| c.targets[0].alias = Some(String::new()), "target[0].alias: must not be empty"),
        (|c| c.targets[0].alias = Some("a\nb".into()), "target[0].alias: must not contain control characters"),
        (|c| c.targets[0].alias = Some("x".repeat(256)), "target[0].alias: is 256 bytes long, the limit is 255"),
        (|c| c.targets[0].allowed_initiators[1] = "bogus".into(), "target[0].allowed_initiators[1]: \"bogus\" is not an iSCSI name"),
        (|c| c.targets[0].allowed_initiators[1] = c.targets[0].allowed_initiators[0].clone(), "target[0].allowed_initiators[1]: duplicate of allowed_initiators[0]"),
        (|c| c.targets[0].luns[1].id = 3, "target[0].lun[1].id: duplicate LUN id 3 (also target[0].lun[0])"),
        (|c| c.targets[0].luns[1].id = 16384, "target[0].lun[1].id: must be between 0 and 16383, got 16384"),
        (|c| c.targets[0].luns[1].block_size = Some(1000), "target[0].lun[1].block_size: must be 512 or 4096, got 1000"),
        (|c| c.targets[0].luns[1].serial = Some(String::new()), "target[0].lun[1].serial: must not be empty"),
        (|c| c.targets[0].luns[1].serial = Some("x".repeat(33)), "target[0].lun[1].serial: must be at most 32 characters, got 33"),
        (|c| c.targets[0].luns[1].serial = Some("caf\u{e9}".into()), "target[0].lun[1].serial: must be printable ASCII"),
        (|c| c.targets[0].luns[1].serial = Some("a\tb".into()), "target[0].lun[1].serial: must be printable ASCII"),
        (|c| c.targets[0].luns[1].backing = Backing::Path(PathBuf::new()), "target[0].lun[1].path: path must not be empty"),
        (|c| c.targets[0].luns[1].backing = Backing::Ram { size: 0 }, "target[0].lun[1].path: size must be greater than 0"),
        (|c| c.targets[1].luns[0].backing = Backing::Null { size: 1000 }, "target[1].lun[0].path: size 1000 is not a multiple of block_size 512"),
        (
            |c| {
                c.targets[0].luns[1].block_size = Some(4096);
                c.targets[0].luns[1].backing = Backing::Ram { size: 4096 + 512 };
            },
            "target[0].lun[1].path: size 4608 is not a multiple of block_size 4096",
        ),
        (|c| c.targets[1].luns[0].backing = Backing::Path("/dev/nvme0n1".into()), "target[1].lun[0].path: /dev/nvme0n1 is already used by target[0].lun[0]"),
    ];
    assert_rules(&base(), cases);
}

#[test]
fn shared_path_is_allowed_when_both_luns_are_read_only() {
    let mut c = base();
    c.targets[1].luns[0].backing = Backing::Path("/dev/nvme0n1".into());
    c.targets[1].luns[0].read_only = true;
    c.validate().unwrap();
}

#[test]
fn duplicate_rules_reported_from_toml() {
    let e = toml_err(&FULL.replace("\"10.1.2.3\"", "\"[::1]:3261\""));
    assert_eq!(e, "portals[2]: [::1]:3261 is listed twice");
    let e = toml_err(&FULL.replace(
        "naa.600140512345678901234567890abcde",
        "IQN.2026-11.IO.RINGTGT:DISK1",
    ));
    assert!(e.starts_with("target[1].name: "), "{e}");
    let e = toml_err(&FULL.replace(
        "naa.600140512345678901234567890abcde",
        "iqn.2026-11.io.ringtgt:disk1",
    ));
    assert!(
        e.starts_with("target[1].name: duplicate target name"),
        "{e}"
    );
    // Implicit id 1 of the second LUN clashes with an explicit id 1 of the first.
    let e = toml_err(&FULL.replace("id = 3", "id = 1"));
    assert_eq!(
        e,
        "target[0].lun[1].id: duplicate LUN id 1 (also target[0].lun[0])"
    );
    let e = toml_err(&FULL.replace(
        "first_burst_length = 131072",
        "first_burst_length = 4194304",
    ));
    assert_eq!(
        e,
        "iscsi.first_burst_length: must not exceed max_burst_length (2097152), got 4194304"
    );
}

#[test]
fn port_groups_parse_and_every_rule_names_its_field() {
    let c = base();
    let groups = &c.targets[1].port_groups;
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0].id, 2);
    assert_eq!(
        groups[0].state,
        AluaState::ActiveOptimized,
        "the default state"
    );
    assert_eq!(groups[0].portals[1], "10.1.2.3:3260".parse().unwrap());
    assert_eq!(groups[1].state, AluaState::Standby);
    assert!(c.targets[0].port_groups.is_empty());
    let cases = [
        ("id = 2\n", "target[1].port_group[1].id: duplicate of port_group[0].id (2)"),
        ("id = 0\n", "target[1].port_group[1].id: must be between 1 and 65535, got 0"),
        (
            "portals = [\"127.0.0.1:3261\"]\n",
            "target[1].port_group[1].portals[0]: 127.0.0.1:3261 is not one of the daemon's portals",
        ),
        (
            "portals = [\"10.1.2.3\"]\n",
            "target[1].port_group[1].portals[0]: 10.1.2.3:3260 is already in port_group[0]",
        ),
        ("portals = []\n", "target[1].port_group[1].portals: a port group needs at least one portal"),
        (
            "state = \"passive\"\n",
            "target[1].port_group[1].state: expected one of active-optimized, active-non-optimized, standby, unavailable, got \"passive\"",
        ),
    ];
    let last = FULL.rfind("[[target.port_group]]").unwrap();
    assert_toml_errors(&cases, |case| {
        let key = &case[..case.find(' ').unwrap()];
        let group: String = FULL[last..]
            .lines()
            .filter(|l| !l.starts_with(key))
            .map(|l| format!("{l}\n"))
            .collect();
        format!("{}{group}{case}", &FULL[..last])
    });
}

/// A gateway target (`failover = "rbd-lock"`): its own group and another gateway's.
const GATEWAY: &str = r#"
portals = ["127.0.0.1:3260"]
[[target]]
name = "iqn.2026-12.io.ringtgt:gw"
failover = "rbd-lock"
[[target.lun]]
path = "rbd:rbd/disk"
[[target.port_group]]
id = 1
portals = ["127.0.0.1:3260"]
state = "active-optimized"
[[target.port_group]]
id = 2
remote = true
"#;

#[test]
fn a_gateway_target_has_one_local_and_some_remote_groups_and_only_rbd_units() {
    let c = Config::from_toml_str(GATEWAY).expect("valid gateway");
    let t = &c.targets[0];
    assert_eq!(t.failover, Failover::RbdLock);
    assert_eq!(
        t.port_groups.iter().map(|g| g.remote).collect::<Vec<_>>(),
        vec![false, true]
    );
    assert!(
        t.port_groups[1].portals.is_empty(),
        "a remote group needs no portals"
    );
    // It writes back as it was read.
    let again = Config::from_toml_str(&c.to_toml_string().expect("serialise")).expect("reparse");
    assert_eq!(again.targets[0], *t);

    let cases = [
        (
            ("failover = \"rbd-lock\"", "failover = \"manual\""),
            "target[0].failover: expected \"none\" or \"rbd-lock\", got \"manual\"",
        ),
        (
            ("failover = \"rbd-lock\"\n", ""),
            "target[0].port_group[1].remote: remote port groups need failover = \"rbd-lock\"",
        ),
        (
            ("path = \"rbd:rbd/disk\"", "path = \"ram:4MiB\""),
            "target[0].failover: \"rbd-lock\" needs every LUN on RBD, lun[0] is not",
        ),
        (
            ("remote = true", "remote = false"),
            "target[0].port_group[1].portals: a port group needs at least one portal",
        ),
        (
            (
                "id = 2\nremote = true",
                "id = 2\nremote = true\n[[target.port_group]]\nid = 3\nportals = []",
            ),
            "target[0].port_group[2].portals: a port group needs at least one portal",
        ),
        (
            ("state = \"active-optimized\"", "state = \"standby\""),
            "target[0].port_group[0].state: a gateway's groups are active-optimized",
        ),
        (
            (
                "path = \"rbd:rbd/disk\"",
                "path = \"rbd:rbd/disk\"\nread_only = true",
            ),
            "target[0].lun[0].read_only: a gateway's units take the images' exclusive locks",
        ),
    ];
    for ((from, to), want) in cases {
        assert!(GATEWAY.contains(from), "{from:?}");
        let e = toml_err(&GATEWAY.replacen(from, to, 1));
        assert_one_line(&e);
        assert!(e.starts_with(want), "{from:?}: want {want:?}, got {e:?}");
    }
    // Only one group of this gateway.
    let two_local = GATEWAY.replacen(
        "id = 2\nremote = true",
        "id = 2\nportals = [\"127.0.0.1:3260\"]",
        1,
    );
    assert!(toml_err(&two_local).contains("already in port_group[0]"));
}

#[test]
fn poll_us_is_a_bounded_number_of_microseconds() {
    let c = Config::from_toml_str("poll_us = 50\n").expect("valid");
    assert_eq!(c.poll_us, 50);
    assert_eq!(base().poll_us, 0, "off by default");
    let again = Config::from_toml_str(&c.to_toml_string().unwrap()).unwrap();
    assert_eq!(again.poll_us, 50);
    let e = toml_err("poll_us = 1001\n");
    assert!(e.starts_with("poll_us: must be between 0 and 1000"), "{e}");
}

#[test]
fn coalesce_us_is_a_bounded_number_of_microseconds_off_by_default() {
    let c = Config::from_toml_str("coalesce_us = 20\n").expect("valid");
    assert_eq!(c.coalesce_us, 20);
    assert_eq!(base().coalesce_us, 0, "off by default");
    let again = Config::from_toml_str(&c.to_toml_string().unwrap()).unwrap();
    assert_eq!(again.coalesce_us, 20);
    let e = toml_err("coalesce_us = 1001\n");
    assert!(
        e.starts_with("coalesce_us: must be between 0 and 1000"),
        "{e}"
    );
    let e = toml_err("coalesce_us = -1\n");
    assert!(
        e.starts_with("coalesce_us: must be between 0 and 1000"),
        "{e}"
    );
}
