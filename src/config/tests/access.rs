//! Who may log in: source networks, CHAP (inline and secret files), LUN ACLs, discovery CHAP.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::{assert_one_line, assert_rules, assert_toml_errors, toml_err, Breaker};
use crate::config::*;

/// Inline secrets of [`ACCESS`]; no error or Debug output may contain them.
const SECRET: &str = "initiator-secret-1";
const MUTUAL_SECRET: &str = "target-secret-22";
const DISCOVERY_SECRET: &str = "discovery-secret-333";

const ACCESS: &str = r#"
[discovery.chap]
user = "scanner"
secret = "discovery-secret-333"

[[target]]
name = "iqn.2026-12.example:disk1"
allowed_initiators = ["iqn.1993-08.org.debian:01:abcdef", "iqn.1993-08.org.debian:01:beef"]
allowed_networks = ["10.0.0.0/24", "fd00::/64", "192.168.1.7/32"]

[target.chap]
user = "alice"
secret = "initiator-secret-1"
mutual_user = "disk1"
mutual_secret = "target-secret-22"
algorithms = ["sha-256", "md5"]

[[target.lun]]
path = "null:1G"

[[target.lun]]
id = 2
path = "ram:64MiB"

[[target.acl]]
initiator = "iqn.1993-08.org.debian:01:abcdef"
luns = [0, 2]

[[target.acl]]
initiator = "iqn.1993-08.org.debian:01:beef"
luns = []
"#;

fn access() -> Config {
    Config::from_toml_str(ACCESS).expect("ACCESS is valid")
}

fn assert_no_secret(text: &str) {
    for s in [SECRET, MUTUAL_SECRET, DISCOVERY_SECRET] {
        assert!(!text.contains(s), "a secret leaked into {text:?}");
    }
}

/// Writes `contents` to `dir/name` with `mode` and returns its path.
fn secret_file(dir: &Path, name: &str, contents: &[u8], mode: u32) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// A one-target document whose `[target.chap]` table is `chap`.
fn with_chap(chap: &str) -> String {
    format!(
        "[[target]]\nname = \"iqn.2026-12.example:disk1\"\n[target.chap]\n{chap}\n[[target.lun]]\npath = \"null:1G\"\n"
    )
}

#[test]
fn every_access_key_parses_into_the_model() {
    let c = access();
    let t = &c.targets[0];
    let nets: Vec<String> = t.allowed_networks.iter().map(|n| n.to_string()).collect();
    assert_eq!(nets, ["10.0.0.0/24", "fd00::/64", "192.168.1.7/32"]);
    let chap = t.chap.as_ref().unwrap();
    assert_eq!(chap.user, "alice");
    assert_eq!(chap.secret, ChapSecret::inline(SECRET));
    let mutual = chap.mutual.as_ref().unwrap();
    assert_eq!(mutual.user, "disk1");
    assert_eq!(mutual.secret.value.expose(), MUTUAL_SECRET.as_bytes());
    assert_eq!(mutual.secret.source, SecretSource::Inline);
    assert_eq!(chap.algorithms, [ChapAlgorithm::Sha256, ChapAlgorithm::Md5]);
    assert_eq!(
        t.acls,
        [
            LunAcl {
                initiator: "iqn.1993-08.org.debian:01:abcdef".into(),
                luns: vec![0, 2],
            },
            LunAcl {
                initiator: "iqn.1993-08.org.debian:01:beef".into(),
                luns: vec![],
            },
        ]
    );
    let d = c.discovery_chap.as_ref().unwrap();
    assert_eq!(d.user, "scanner");
    assert_eq!(d.secret.value.expose(), DISCOVERY_SECRET.as_bytes());
    assert_eq!(d.mutual, None);
    assert_eq!(d.algorithms, ChapConfig::DEFAULT_ALGORITHMS);
}

#[test]
fn access_keys_default_to_open_access() {
    let c = Config::from_toml_str(
        "[[target]]\nname = \"iqn.2026-12.example:a\"\n[[target.lun]]\npath = \"/x\"\n",
    )
    .unwrap();
    assert_eq!(c.discovery_chap, None);
    let t = &c.targets[0];
    assert!(t.allowed_networks.is_empty());
    assert_eq!(t.chap, None);
    assert!(t.acls.is_empty());
}

#[test]
fn chap_algorithms_default_to_all_four_strongest_first() {
    let names: Vec<&str> = ChapConfig::DEFAULT_ALGORITHMS
        .iter()
        .map(|a| a.name())
        .collect();
    assert_eq!(names, ["sha3-256", "sha-256", "sha1", "md5"]);
    for a in ChapAlgorithm::ALL {
        assert_eq!(a.name().parse::<ChapAlgorithm>(), Ok(a));
    }
    for bad in ["SHA-256", "sha256", "sha3_256", "md-5", ""] {
        assert!(bad.parse::<ChapAlgorithm>().is_err(), "{bad}");
    }
}

#[test]
fn every_access_key_round_trips_through_toml_with_secret_files_kept_as_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = secret_file(dir.path(), "alice.secret", b"file-secret-4444\n", 0o600);
    let mut c = access();
    c.targets[0].chap.as_mut().unwrap().secret = read_secret_file(&file).unwrap().0;
    let text = c.to_toml_string().unwrap();
    assert!(
        text.contains(&format!("secret_file = {:?}", file.display().to_string())),
        "{text}"
    );
    assert!(!text.contains("file-secret-4444"), "{text}");
    assert!(
        text.contains(&format!("mutual_secret = \"{MUTUAL_SECRET}\"")),
        "{text}"
    );
    assert_eq!(Config::from_toml_str(&text).unwrap(), c, "{text}");
}

#[test]
fn every_access_rule_names_its_field() {
    fn chap(c: &mut Config) -> &mut ChapConfig {
        c.targets[0].chap.as_mut().unwrap()
    }
    fn mutual(c: &mut Config) -> &mut MutualChap {
        chap(c).mutual.as_mut().unwrap()
    }
    let cases: Vec<(Breaker, &str)> = vec![
        (|c| c.targets[0].allowed_networks[1] = "fd00::1/64".parse().unwrap(), "target[0].allowed_networks[1]: fd00::1/64 has host bits set; write the network fd00::/64 (or fd00::1/128 for one host)"),
        (|c| c.targets[0].allowed_networks[2] = "10.0.0.0/24".parse().unwrap(), "target[0].allowed_networks[2]: duplicate of allowed_networks[0] (10.0.0.0/24)"),
        (|c| chap(c).user = String::new(), "target[0].chap.user: must not be empty"),
        (|c| chap(c).user = "al\u{7}ice".into(), "target[0].chap.user: must not contain control characters"),
        (|c| chap(c).user = "u".repeat(256), "target[0].chap.user: is 256 bytes long, the limit is 255"),
        (|c| chap(c).secret = ChapSecret::inline("short-11-ch"), "target[0].chap.secret: the secret is 11 bytes long; CHAP secrets must be 12..=255 bytes"),
        (|c| chap(c).secret = ChapSecret::inline("s".repeat(256)), "target[0].chap.secret: the secret is 256 bytes long"),
        (|c| mutual(c).user = String::new(), "target[0].chap.mutual_user: must not be empty"),
        (|c| mutual(c).secret = ChapSecret::inline(""), "target[0].chap.mutual_secret: the secret is 0 bytes long"),
        (|c| mutual(c).secret = ChapSecret::inline(SECRET), "target[0].chap.mutual_secret: must differ from the initiator's secret"),
        (|c| chap(c).algorithms.clear(), "target[0].chap.algorithms: must list at least one of"),
        (|c| chap(c).algorithms.push(ChapAlgorithm::Sha256), "target[0].chap.algorithms[2]: duplicate of algorithms[0] (\"sha-256\")"),
        (|c| c.targets[0].acls[1].initiator = "bogus".into(), "target[0].acl[1].initiator: \"bogus\" is not an iSCSI name"),
        (|c| c.targets[0].acls[1].initiator = "IQN.1993-08.ORG.DEBIAN:01:ABCDEF".into(), "target[0].acl[1].initiator: \"IQN.1993-08.ORG.DEBIAN:01:ABCDEF\" is not an iSCSI name"),
        (|c| c.targets[0].acls[1].initiator = c.targets[0].acls[0].initiator.clone(), "target[0].acl[1].initiator: duplicate of acl[0].initiator (\"iqn.1993-08.org.debian:01:abcdef\")"),
        (|c| c.targets[0].acls[0].luns[1] = 1, "target[0].acl[0].luns[1]: LUN 1 is not defined in target[0]"),
        (|c| c.targets[0].acls[0].luns.push(0), "target[0].acl[0].luns[2]: duplicate of luns[0] (0)"),
        (|c| c.discovery_chap.as_mut().unwrap().secret = ChapSecret::inline("tiny"), "discovery.chap.secret: the secret is 4 bytes long"),
        (|c| c.discovery_chap.as_mut().unwrap().user = String::new(), "discovery.chap.user: must not be empty"),
    ];
    for e in assert_rules(&access(), cases) {
        assert_no_secret(&e);
    }
}

#[test]
fn chap_secret_length_accepts_12_to_255_bytes() {
    for len in [12, 100, 255] {
        let mut c = access();
        c.targets[0].chap.as_mut().unwrap().secret = ChapSecret::inline("k".repeat(len));
        c.validate().unwrap();
    }
}

#[test]
fn chap_table_shape_errors_name_the_field() {
    let cases = [
        (
            "user = \"alice\"\nsecret = \"initiator-secret-1\"\nsecret_file = \"/etc/x\"",
            "target[0].chap.secret_file: cannot be combined with secret; give one of the two",
        ),
        (
            "user = \"alice\"",
            "target[0].chap.secret: required: give secret or secret_file",
        ),
        (
            "user = \"alice\"\nsecret = \"initiator-secret-1\"\nmutual_secret = \"target-secret-22\"",
            "target[0].chap.mutual_secret: is only used with mutual_user",
        ),
        (
            "user = \"alice\"\nsecret = \"initiator-secret-1\"\nmutual_secret_file = \"/etc/x\"",
            "target[0].chap.mutual_secret_file: is only used with mutual_user",
        ),
        (
            "user = \"alice\"\nsecret = \"initiator-secret-1\"\nmutual_user = \"disk1\"",
            "target[0].chap.mutual_secret: required: give mutual_secret or mutual_secret_file",
        ),
        (
            "user = \"alice\"\nsecret = \"initiator-secret-1\"\nmutual_user = \"disk1\"\nmutual_secret = \"target-secret-22\"\nmutual_secret_file = \"/etc/x\"",
            "target[0].chap.mutual_secret_file: cannot be combined with mutual_secret",
        ),
        (
            "user = \"alice\"\nsecret = 123456789012345",
            "target[0].chap.secret: must be a string (found integer)",
        ),
        (
            "user = \"alice\"\nsecret = \"initiator-secret-1\"\nalgorithms = [\"sha-256\", \"sha256\"]",
            "target[0].chap.algorithms[1]: unknown CHAP algorithm \"sha256\" (use \"sha3-256\", \"sha-256\", \"sha1\" or \"md5\")",
        ),
        (
            "user = \"alice\"\nsecret = \"initiator-secret-1\"\nalgorithms = []",
            "target[0].chap.algorithms: must list at least one",
        ),
    ];
    for e in assert_toml_errors(&cases, with_chap) {
        assert!(!e.contains("123456789012345"), "{e}");
    }
    let e = toml_err(&with_chap("secret = \"initiator-secret-1\""));
    assert!(e.contains("missing field `user`"), "{e}");
    assert_no_secret(&e);
    let e = toml_err(&with_chap(
        "user = \"alice\"\nsecret = \"initiator-secret-1\"\npassword = \"x\"",
    ));
    assert!(e.contains("unknown field `password`"), "{e}");
    assert_no_secret(&e);
}

#[test]
fn discovery_chap_follows_the_same_rules() {
    let doc = |chap: &str| format!("[discovery.chap]\n{chap}\n{}", with_chap_less_target());
    let c =
        Config::from_toml_str(&doc("user = \"scan\"\nsecret = \"discovery-secret-333\"")).unwrap();
    assert_eq!(c.discovery_chap.unwrap().user, "scan");
    let e = toml_err(&doc("user = \"scan\""));
    assert!(e.starts_with("discovery.chap.secret: required"), "{e}");
    let e = toml_err(&doc(
        "user = \"scan\"\nsecret = \"discovery-secret-333\"\nmutual_user = \"t\"\nmutual_secret = \"discovery-secret-333\"",
    ));
    assert!(
        e.starts_with("discovery.chap.mutual_secret: must differ"),
        "{e}"
    );
    assert_no_secret(&e);
    let e = toml_err(&format!(
        "[discovery]\nchapp = 1\n{}",
        with_chap_less_target()
    ));
    assert!(e.contains("unknown field `chapp`"), "{e}");
}

fn with_chap_less_target() -> &'static str {
    "[[target]]\nname = \"iqn.2026-12.example:a\"\n[[target.lun]]\npath = \"null:1G\"\n"
}

#[test]
fn network_and_acl_values_are_checked_while_parsing() {
    let target = |extra: &str| {
        format!("[[target]]\nname = \"iqn.2026-12.example:a\"\n{extra}\n[[target.lun]]\npath = \"null:1G\"\n")
    };
    let cases = [
        (
            "allowed_networks = [\"10.0.0.0/24\", \"10.0.0.0/33\"]",
            "target[0].allowed_networks[1]: expected a network like 10.0.0.0/24 or fd00::/64, got \"10.0.0.0/33\"",
        ),
        (
            "allowed_networks = [\"10.0.0.5\"]",
            "target[0].allowed_networks[0]: expected a network like",
        ),
        (
            "allowed_networks = [\"10.0.0.5/24\"]",
            "target[0].allowed_networks[0]: 10.0.0.5/24 has host bits set; write the network 10.0.0.0/24 (or 10.0.0.5/32 for one host)",
        ),
        (
            "allowed_networks = [\"fd00::/64\", \"fd00::/64\"]",
            "target[0].allowed_networks[1]: duplicate of allowed_networks[0] (fd00::/64)",
        ),
    ];
    assert_toml_errors(&cases, target);
    let acl = |body: &str| {
        toml_err(&format!(
            "{}[[target.acl]]\ninitiator = \"iqn.1993-08.org.debian:01:abcdef\"\n{body}\n",
            target("")
        ))
    };
    assert_eq!(
        acl("luns = [0, 16384]"),
        "target[0].acl[0].luns[1]: must be between 0 and 16383, got 16384"
    );
    assert_eq!(
        acl("luns = [3]"),
        "target[0].acl[0].luns[0]: LUN 3 is not defined in target[0]"
    );
    assert!(acl("").contains("missing field `luns`"));
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let c = access();
    let debug = format!("{c:?} {c:#?}");
    assert_no_secret(&debug);
    assert!(debug.contains("<redacted>"), "{debug}");
    assert_eq!(format!("{:?}", Secret::new(b"abc".to_vec())), "<redacted>");
}

#[test]
fn secret_file_drops_one_trailing_newline() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[u8], &[u8]); 5] = [
        (b"twelve-bytes", b"twelve-bytes"),
        (b"twelve-bytes\n", b"twelve-bytes"),
        (b"twelve-bytes\r\n", b"twelve-bytes"),
        (b"twelve-bytes\n\n", b"twelve-bytes\n"),
        (b"\xfftwelve-bytes\r", b"\xfftwelve-bytes\r"),
    ];
    for (i, (contents, want)) in cases.into_iter().enumerate() {
        let path = secret_file(dir.path(), &format!("s{i}"), contents, 0o600);
        let (secret, warning) = read_secret_file(&path).unwrap();
        assert_eq!(secret.value.expose(), want, "{contents:?}");
        assert_eq!(secret.source, SecretSource::File(path));
        assert_eq!(warning, None);
    }
}

#[test]
fn secret_file_is_read_at_load_and_checked_like_an_inline_secret() {
    let dir = tempfile::tempdir().unwrap();
    let good = secret_file(dir.path(), "good", b"file-secret-4444\n", 0o600);
    let short = secret_file(dir.path(), "short", b"tiny-secret\n", 0o600);
    let doc = |path: &Path| {
        with_chap(&format!(
            "user = \"alice\"\nsecret_file = {:?}",
            path.display().to_string()
        ))
    };
    let c = Config::from_toml_str(&doc(&good)).unwrap();
    let chap = c.targets[0].chap.as_ref().unwrap();
    assert_eq!(chap.secret.value.expose(), b"file-secret-4444");
    assert_eq!(chap.secret.source, SecretSource::File(good.clone()));

    let e = toml_err(&doc(&short));
    assert_eq!(
        e,
        format!(
            "target[0].chap.secret_file: the secret in {} is 11 bytes long; CHAP secrets must be 12..=255 bytes (RFC 7143 §12.1.3 asks for at least 96 bits)",
            short.display()
        )
    );
    assert!(!e.contains("tiny-secret"), "{e}");

    let missing = dir.path().join("missing");
    let e = toml_err(&doc(&missing));
    assert!(
        e.starts_with(&format!(
            "target[0].chap.secret_file: cannot read secret file {}: ",
            missing.display()
        )),
        "{e}"
    );
    assert_one_line(&e);

    let huge = secret_file(dir.path(), "huge", &[b'x'; 4096], 0o600);
    let e = toml_err(&doc(&huge));
    assert!(
        e.starts_with("target[0].chap.secret_file: secret file ")
            && e.contains("is longer than 257 bytes"),
        "{e}"
    );
    assert!(!e.contains("xxxx"), "{e}");

    let e = toml_err(&with_chap(&format!(
        "user = \"alice\"\nsecret_file = {:?}\nmutual_user = \"t\"\nmutual_secret_file = {:?}",
        good.display().to_string(),
        good.display().to_string()
    )));
    assert!(
        e.starts_with("target[0].chap.mutual_secret_file: must differ from the initiator's secret"),
        "{e}"
    );
}

#[test]
fn loose_secret_file_mode_is_a_warning_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let loose = secret_file(dir.path(), "loose", b"file-secret-4444\n", 0o644);
    let tight = secret_file(dir.path(), "tight", b"file-secret-5555\n", 0o600);
    let config = dir.path().join("ringtgt.toml");
    std::fs::write(
        &config,
        with_chap(&format!(
            "user = \"alice\"\nsecret_file = {:?}\nmutual_user = \"t\"\nmutual_secret_file = {:?}",
            loose.display().to_string(),
            tight.display().to_string()
        )),
    )
    .unwrap();
    let (c, warnings) = Config::load(&config).unwrap();
    assert!(c.targets[0].chap.is_some());
    assert_eq!(
        warnings,
        [ConfigWarning {
            field: "target[0].chap.secret_file".into(),
            problem: format!(
                "secret file {} can be accessed by group or others (mode 0644); chmod 600 it",
                loose.display()
            ),
        }]
    );
    let text = warnings[0].to_string();
    assert!(
        text.starts_with("target[0].chap.secret_file: secret file "),
        "{text}"
    );
    assert!(!text.contains("file-secret-4444"), "{text}");

    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o400)).unwrap();
    let (_, warnings) = Config::load(&config).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let text = std::fs::read_to_string(&config).unwrap();
    let (_, warnings) = Config::from_toml_str_with_warnings(&text).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn toml_syntax_errors_on_a_secret_line_do_not_echo_it() {
    for chap in [
        "user = \"alice\"\nsecret = \"initiator-secret-1",
        "user = \"alice\"\nsecret = \"initiator-secret-1\" junk",
        "user = \"alice\"\nsecret = \"initiator-secret-1\\q\"",
        "user = \"alice\"\nsecret = initiator-secret-1",
        "user = \"alice\"\nsecret = [\"initiator-secret-1\"]",
    ] {
        let e = toml_err(&with_chap(chap));
        assert_one_line(&e);
        assert_no_secret(&e);
    }
}
