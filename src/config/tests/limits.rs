//! `[limits]`: resource ceilings and the rules between them.

use super::{assert_rules, assert_toml_errors, base, toml_err, Breaker, FULL};
use crate::config::*;

fn with_limits(limits: &str) -> String {
    let iscsi = FULL.find("[iscsi]").unwrap();
    format!("{}[limits]\n{limits}\n{}", &FULL[..iscsi], &FULL[iscsi..])
}

#[test]
fn limits_default_to_the_documented_values() {
    let l = Limits::default();
    assert_eq!(l.max_sessions, 1024);
    assert_eq!(l.max_sessions_per_initiator, 64);
    assert_eq!(l.max_connections, 4096);
    assert_eq!(l.max_login_connections, 256);
    assert_eq!(l.connection_buffer_bytes, 32 << 20);
    assert_eq!(base().limits, l);
}

#[test]
fn limits_parse_with_sizes_or_plain_integers() {
    let c = Config::from_toml_str(&with_limits(
        "max_sessions = 10\nmax_sessions_per_initiator = 10\nmax_connections = 1000000\n\
         max_login_connections = 1\nconnection_buffer_bytes = \"2MiB\"",
    ))
    .unwrap();
    assert_eq!(
        c.limits,
        Limits {
            max_sessions: 10,
            max_sessions_per_initiator: 10,
            max_connections: 1_000_000,
            max_login_connections: 1,
            connection_buffer_bytes: 2 << 20,
        }
    );
    let c = Config::from_toml_str(&with_limits("connection_buffer_bytes = 3145728")).unwrap();
    assert_eq!(c.limits.connection_buffer_bytes, 3 << 20);
    // FULL's max_burst_length is 2 MiB, so exactly that fits.
    let c = Config::from_toml_str(&with_limits("connection_buffer_bytes = 2097152")).unwrap();
    assert_eq!(c.limits.connection_buffer_bytes, 2 << 20);
}

#[test]
fn limits_round_trip_through_toml() {
    let mut c = base();
    c.limits = Limits {
        max_sessions: 3,
        max_sessions_per_initiator: 2,
        max_connections: 9,
        max_login_connections: 9,
        connection_buffer_bytes: (5 << 20) + 1,
    };
    let text = c.to_toml_string().unwrap();
    assert!(text.contains("[limits]"), "{text}");
    assert_eq!(Config::from_toml_str(&text).unwrap(), c, "{text}");
}

#[test]
fn limit_values_out_of_range_name_the_field() {
    let cases = [
        ("max_sessions = 0", "limits.max_sessions: must be between 1 and 65535, got 0"),
        ("max_sessions = 65536", "limits.max_sessions: must be between 1 and 65535, got 65536"),
        ("max_sessions_per_initiator = -1", "limits.max_sessions_per_initiator: must be between 1 and 65535, got -1"),
        ("max_connections = 1000001", "limits.max_connections: must be between 1 and 1000000, got 1000001"),
        ("max_login_connections = 0", "limits.max_login_connections: must be between 1 and 1000000, got 0"),
        ("connection_buffer_bytes = \"12Q\"", "limits.connection_buffer_bytes: unknown size unit \"Q\""),
        ("connection_buffer_bytes = 0", "limits.connection_buffer_bytes: size must be greater than 0, got 0"),
        ("connection_buffer_bytes = -5", "limits.connection_buffer_bytes: size must be greater than 0, got -5"),
        ("connection_buffer_bytes = true", "limits.connection_buffer_bytes: must be a size like \"32MiB\" or an integer (found boolean)"),
        ("connection_buffer_bytes = \"512KiB\"", "limits.connection_buffer_bytes: must be at least 1MiB, got 512KiB"),
        ("connection_buffer_bytes = \"1MiB\"", "limits.connection_buffer_bytes: must be at least iscsi.max_burst_length (2097152) so that one burst fits, got 1MiB"),
        ("max_sessions = 8\nmax_sessions_per_initiator = 9", "limits.max_sessions_per_initiator: must not exceed max_sessions (8), got 9"),
        ("max_connections = 100", "limits.max_login_connections: must not exceed max_connections (100), got 256"),
    ];
    assert_toml_errors(&cases, with_limits);
    let e = toml_err(&with_limits("max_session = 1"));
    assert!(e.contains("unknown field `max_session`"), "{e}");
}

#[test]
fn every_limits_rule_names_its_field() {
    let cases: Vec<(Breaker, &str)> = vec![
        (|c| c.limits.max_sessions = 0, "limits.max_sessions: must be between 1 and 65535, got 0"),
        (|c| c.limits.max_sessions_per_initiator = 65536, "limits.max_sessions_per_initiator: must be between 1 and 65535"),
        (|c| c.limits.max_connections = 0, "limits.max_connections: must be between 1 and 1000000, got 0"),
        (|c| c.limits.max_login_connections = 1_000_001, "limits.max_login_connections: must be between 1 and 1000000"),
        (|c| c.limits.max_sessions_per_initiator = 1025, "limits.max_sessions_per_initiator: must not exceed max_sessions (1024), got 1025"),
        (|c| c.limits.max_login_connections = 4097, "limits.max_login_connections: must not exceed max_connections (4096), got 4097"),
        (|c| c.limits.connection_buffer_bytes = (1 << 20) - 1, "limits.connection_buffer_bytes: must be at least 1MiB, got 1048575"),
        (
            |c| {
                c.iscsi.max_burst_length = 16_777_215;
                c.limits.connection_buffer_bytes = 8 << 20;
            },
            "limits.connection_buffer_bytes: must be at least iscsi.max_burst_length (16777215) so that one burst fits, got 8MiB",
        ),
    ];
    assert_rules(&base(), cases);
}
