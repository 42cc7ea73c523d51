//! Talking to a test daemon's admin socket: `ringtgt ctl` run as a program, or one request
//! sent directly; and a strict parser of the Prometheus text format for `/metrics`.

use std::collections::HashMap;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use ringtgt::control::admin::protocol::{Request, ResponseLine};

use super::daemon::{run, Daemon, BIN};

/// How long `ringtgt ctl` may take (a `target remove --force` waits for logouts).
const CTL_LIMIT: Duration = Duration::from_secs(60);

impl Daemon {
    /// `ringtgt ctl --socket <this daemon's> ARGS`: (exit code, stdout, stderr).
    pub fn ctl(&self, args: &[&str]) -> (Option<i32>, String, String) {
        self.wait_admin();
        let socket = self.admin_socket();
        let mut full = vec!["ctl", "--socket", socket.to_str().expect("utf-8")];
        full.extend_from_slice(args);
        run(BIN, &full, CTL_LIMIT)
    }

    /// `ringtgt ctl ARGS`, which must succeed; its standard output.
    pub fn ctl_ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.ctl(args);
        assert_eq!(code, Some(0), "ringtgt ctl {args:?} failed: {err}{out}");
        out
    }

    /// `ringtgt ctl --json ARGS`, which must succeed, parsed.
    pub fn ctl_json(&self, args: &[&str]) -> serde_json::Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let out = self.ctl_ok(&full);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// The address of `/metrics` (`--metrics 127.0.0.1:0`), from the log. Like the admin
    /// socket, the endpoint is set up (and logged) a moment after the portal accepts: on a busy
    /// machine the line may not be in the log yet when the test starts.
    pub fn metrics_addr(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            let addr = log
                .split("metrics at http://")
                .nth(1)
                // Only a whole line: the address up to its "/metrics".
                .and_then(|rest| rest.find("/metrics").map(|end| &rest[..end]));
            if let Some(addr) = addr {
                return addr.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no metrics address in the log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One request over the admin socket, without the `ctl` program.
    pub fn admin(&self, request: Request) -> ResponseLine {
        self.wait_admin();
        let mut stream = UnixStream::connect(self.admin_socket()).expect("connect admin socket");
        ringtgt::control::admin::request(&mut stream, request).expect("admin request")
    }

    /// The portal may accept a moment before the admin socket is bound.
    fn wait_admin(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(self.admin_socket()).is_err() {
            assert!(
                Instant::now() < deadline,
                "no admin socket at {:?}",
                self.admin_socket()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// One sample: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: HashMap<String, String>,
    pub value: f64,
}

/// Parses the Prometheus text format (0.0.4) strictly: every line is a `# HELP`, a `# TYPE`
/// naming a known type before the family's samples, or a sample `name{k="v",...} value` whose
/// name belongs to the last declared family (histograms: `_bucket`, `_sum`, `_count`); label
/// values use only the format's escapes. Panics with the offending line otherwise.
pub fn parse_prometheus(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut family: Option<(String, String)> = None;
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("HELP"), Some(name), _) => assert!(valid_name(name), "bad HELP: {line}"),
                (Some("TYPE"), Some(name), Some(kind)) => {
                    assert!(valid_name(name), "bad TYPE: {line}");
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                        "unknown type: {line}"
                    );
                    family = Some((name.to_string(), kind.to_string()));
                }
                _ => panic!("bad comment line: {line}"),
            }
            continue;
        }
        let sample = parse_sample(line);
        let (fam, kind) = family
            .as_ref()
            .unwrap_or_else(|| panic!("sample before TYPE: {line}"));
        let belongs = match kind.as_str() {
            "histogram" => ["_bucket", "_sum", "_count"]
                .iter()
                .any(|s| sample.name == format!("{fam}{s}")),
            _ => sample.name == *fam,
        };
        assert!(belongs, "sample {line:?} outside its family {fam}");
        if sample.name.ends_with("_bucket") {
            assert!(
                sample.labels.contains_key("le"),
                "bucket without le: {line}"
            );
        }
        samples.push(sample);
    }
    samples
}

fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn bad(line: &str) -> ! {
    panic!("bad sample line: {line}")
}

fn parse_sample(line: &str) -> Sample {
    let name_end = line.find(['{', ' ']).unwrap_or_else(|| bad(line));
    let name = &line[..name_end];
    if !valid_name(name) {
        bad(line);
    }
    let mut labels = HashMap::new();
    let mut rest = &line[name_end..];
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        let mut next = |line: &str| chars.next().unwrap_or_else(|| bad(line));
        let mut key = String::new();
        loop {
            let (i, c) = next(line);
            match c {
                '}' if key.is_empty() => {
                    rest = &body[i + 1..];
                    break;
                }
                '=' => {
                    if !valid_name(&key) || next(line).1 != '"' {
                        bad(line);
                    }
                    let mut value = String::new();
                    loop {
                        match next(line).1 {
                            '"' => break,
                            '\\' => match next(line).1 {
                                'n' => value.push('\n'),
                                '\\' => value.push('\\'),
                                '"' => value.push('"'),
                                _ => bad(line),
                            },
                            c => value.push(c),
                        }
                    }
                    labels.insert(std::mem::take(&mut key), value);
                    let (i, c) = next(line);
                    match c {
                        ',' => {}
                        '}' => {
                            rest = &body[i + 1..];
                            break;
                        }
                        _ => bad(line),
                    }
                }
                c => key.push(c),
            }
        }
    }
    let value = rest.strip_prefix(' ').unwrap_or_else(|| bad(line));
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().unwrap_or_else(|_| bad(line)),
    };
    Sample {
        name: name.to_string(),
        labels,
        value,
    }
}

/// The value of the one sample named `name` whose labels include `labels`.
pub fn sample(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
    found[0].value
}

/// `GET /metrics` from `addr` (plain HTTP/1.1): the body, after checking the status.
pub fn scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect metrics");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read metrics");
    let (head, body) = answer.split_once("\r\n\r\n").expect("HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    body.to_string()
}
