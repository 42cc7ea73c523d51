//! Human-readable answers of `ringtgt ctl`: aligned columns, sizes in binary units.

use crate::config::format_size;
use crate::control::admin::protocol::{LunInfo, Status, TargetInfo};
use crate::control::report::{ConnReport, IoReport, SessionReport};

/// Left-aligned columns separated by two spaces, with a header line.
pub fn columns(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = vec![line(headers.to_vec())];
    for row in rows {
        out.push(line(row.iter().map(String::as_str).collect()));
    }
    out.join("\n")
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// A byte count in the largest binary unit that keeps it readable (`1.5 MiB`).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// `1d 2h 3m 4s`, leaving out leading zero units.
pub fn duration(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m {s}s"),
        _ => format!("{d}d {h}h {m}m {s}s"),
    }
}

fn io_line(io: &IoReport) -> String {
    let errors = io.read.errors + io.write.errors + io.other.errors;
    format!(
        "reads {} ({}), writes {} ({}), other {}, errors {errors}",
        io.read.commands,
        bytes(io.read.bytes),
        io.write.commands,
        bytes(io.write.bytes),
        io.other.commands,
    )
}

pub fn status(s: &Status) -> String {
    let cores: Vec<String> = s
        .cores
        .iter()
        .map(|c| {
            format!(
                "{} ({:.1}% busy, {} conn)",
                c.core, c.busy_percent, c.connections
            )
        })
        .collect();
    let f = &s.login_failures;
    let refused = f.auth + f.acl + f.not_found + f.resources + f.other;
    let reasons: Vec<String> = f
        .by_reason()
        .iter()
        .map(|(r, n)| format!("{r} {n}"))
        .collect();
    [
        format!("ringtgt {}, up {}", s.version, duration(s.uptime_secs)),
        format!("portals:     {}", s.portals.join(", ")),
        format!("cores:       {}", cores.join(", ")),
        format!(
            "targets {}, LUNs {}, sessions {}, connections {}",
            s.targets, s.luns, s.sessions, s.connections
        ),
        format!(
            "logins {}, refused {refused} ({})",
            s.logins,
            reasons.join(", ")
        ),
        format!("I/O:         {}", io_line(&s.io)),
    ]
    .join("\n")
}

pub fn targets(list: &[TargetInfo]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|t| {
            vec![
                t.name.clone(),
                t.alias.clone().unwrap_or_else(|| "-".into()),
                t.luns.to_string(),
                t.sessions.to_string(),
                if t.allowed_initiators.is_empty() {
                    "any".into()
                } else {
                    t.allowed_initiators.join(",")
                },
            ]
        })
        .collect();
    columns(
        &["TARGET", "ALIAS", "LUNS", "SESSIONS", "INITIATORS"],
        &rows,
    )
}

pub fn luns(list: &[LunInfo]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|l| {
            vec![
                l.target.clone(),
                l.id.to_string(),
                format_size(l.size_bytes),
                l.block_size.to_string(),
                yes_no(l.read_only).into(),
                l.serial.clone(),
                l.medium.clone(),
                l.backing.clone(),
            ]
        })
        .collect();
    columns(
        &[
            "TARGET", "LUN", "SIZE", "BLOCK", "RO", "SERIAL", "MEDIUM", "BACKING",
        ],
        &rows,
    )
}

/// Negotiated keys in RFC 7143 spelling, abbreviated values.
fn keys(s: &SessionReport) -> String {
    format!(
        "InitialR2T={} ImmediateData={} MaxBurst={} FirstBurst={} MaxOutR2T={} MRDSL={}/{}",
        if s.initial_r2t { "Yes" } else { "No" },
        if s.immediate_data { "Yes" } else { "No" },
        format_size(u64::from(s.max_burst_length)),
        format_size(u64::from(s.first_burst_length)),
        s.max_outstanding_r2t,
        format_size(u64::from(s.initiator_mrdsl)),
        format_size(u64::from(s.target_mrdsl)),
    )
}

pub fn sessions(list: &[SessionReport]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|s| {
            let digest = |on| if on { "CRC32C" } else { "None" };
            vec![
                s.tsih.to_string(),
                s.initiator.clone(),
                s.isid.clone(),
                s.target.clone().unwrap_or_else(|| "(discovery)".into()),
                s.core.to_string(),
                s.peer.clone(),
                format!("{}/{}", digest(s.header_digest), digest(s.data_digest)),
                format!("{}..{}", s.exp_cmd_sn, s.max_cmd_sn),
                s.tasks.to_string(),
                keys(s),
            ]
        })
        .collect();
    columns(
        &[
            "TSIH",
            "INITIATOR",
            "ISID",
            "TARGET",
            "CORE",
            "ADDRESS",
            "DIGESTS(H/D)",
            "CMDSN",
            "TASKS",
            "KEYS",
        ],
        &rows,
    )
}

pub fn connections(list: &[ConnReport]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|c| {
            vec![
                c.core.to_string(),
                c.peer.clone(),
                c.local.clone(),
                c.phase.clone(),
                c.initiator.clone().unwrap_or_else(|| "-".into()),
                c.tsih.map_or("-".into(), |t| t.to_string()),
                duration(c.age_secs as f64),
                bytes(c.buffered_bytes as u64),
            ]
        })
        .collect();
    columns(
        &[
            "CORE",
            "ADDRESS",
            "PORTAL",
            "PHASE",
            "INITIATOR",
            "TSIH",
            "AGE",
            "BUFFERED",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_trim() {
        let t = columns(
            &["A", "LONG HEADER"],
            &[vec!["wide cell".into(), "x".into()]],
        );
        assert_eq!(t, "A          LONG HEADER\nwide cell  x");
    }

    #[test]
    fn sizes_and_durations_read_well() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 << 19), "1.5 MiB");
        assert_eq!(duration(59.9), "59s");
        assert_eq!(duration(3725.0), "1h 2m 5s");
        assert_eq!(duration(90_061.0), "1d 1h 1m 1s");
    }
}
