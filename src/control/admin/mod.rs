//! The admin socket (`ringtgt ctl`): a Unix socket, mode 0600, owned by the daemon's user.
//!
//! Shape: a small acceptor thread, and one thread per connected client, read request lines
//! and forward each into the control thread's channel with a one-shot reply channel; the
//! control thread answers in its own loop like any other message. The control thread stays the
//! single owner of everything shared (no lock appears for the admin path), it never blocks on a
//! client's socket, and a slow or stuck client holds only its own thread. Clients are few (an
//! operator, `ctl top`, a script), so a thread each is cheap; more than [`MAX_CLIENTS`] at once
//! are turned away.

pub mod protocol;

use std::io::{BufRead, BufReader, Write};

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Sender;

use super::ToControl;
use protocol::{RequestLine, ResponseLine, VERSION};

/// Clients connected at once.
const MAX_CLIENTS: usize = 16;
/// Longest request line accepted.
const MAX_LINE: usize = 64 * 1024;
/// How long a request may take before the client is told the daemon did not answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("admin socket {path}: cannot create its directory {dir}: {source}")]
    Directory {
        path: PathBuf,
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("admin socket {path}: {source}")]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("admin socket {path}: another ringtgt answers there")]
    InUse { path: PathBuf },
}

/// Binds the socket at `path` (creating its directory, mode 0755, if needed; replacing a stale
/// socket that nobody answers on) and serves it on its own threads.
pub fn serve(path: &Path, to_control: Sender<ToControl>) -> Result<(), AdminError> {
    let listener = bind(path)?;
    let path = path.to_path_buf();
    std::thread::Builder::new()
        .name("admin".into())
        .spawn(move || accept_loop(listener, to_control))
        .map_err(|source| AdminError::Bind {
            path: path.clone(),
            source,
        })?;
    tracing::info!(path = %path.display(), "admin socket ready");
    Ok(())
}

fn bind(path: &Path) -> Result<UnixListener, AdminError> {
    let bind_err = |source| AdminError::Bind {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| AdminError::Directory {
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
            source,
        })?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(AdminError::InUse {
                path: path.to_path_buf(),
            });
        }
        std::fs::remove_file(path).map_err(bind_err)?;
    }
    let listener = UnixListener::bind(path).map_err(bind_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(bind_err)?;
    Ok(listener)
}

fn accept_loop(listener: UnixListener, to_control: Sender<ToControl>) {
    let clients = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        if clients.fetch_add(1, Ordering::AcqRel) >= MAX_CLIENTS {
            clients.fetch_sub(1, Ordering::AcqRel);
            let busy =
                ResponseLine::error(format!("too many admin clients (at most {MAX_CLIENTS})"));
            let _ = write_line(&mut stream, &busy);
            continue;
        }
        let (to_control, clients) = (to_control.clone(), clients.clone());
        let spawned = std::thread::Builder::new()
            .name("admin-client".into())
            .spawn(move || {
                serve_client(stream, &to_control);
                clients.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_err() {
            tracing::warn!("cannot start a thread for an admin client");
        }
    }
}

/// Answers one client's requests, one line each, until it hangs up.
fn serve_client(stream: UnixStream, to_control: &Sender<ToControl>) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        match std::io::Read::take(&mut reader, MAX_LINE as u64).read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if !line.ends_with('\n') && line.len() >= MAX_LINE => {
                let _ = write_line(&mut writer, &ResponseLine::error("request line too long"));
                return;
            }
            Ok(_) => {}
        }
        if line.trim().is_empty() {
            continue;
        }
        let answer = answer(line.trim(), to_control);
        if write_line(&mut writer, &answer).is_err() {
            return;
        }
    }
}

fn answer(line: &str, to_control: &Sender<ToControl>) -> ResponseLine {
    let version = serde_json::from_str::<serde_json::Value>(line)
        .ok()
        .and_then(|v| v.get("version").and_then(|v| v.as_u64()));
    match version {
        None => return ResponseLine::error("not a JSON object with a \"version\""),
        Some(v) if v != u64::from(VERSION) => {
            return ResponseLine::error(format!(
                "protocol version {v} is not supported (this daemon speaks {VERSION})"
            ))
        }
        Some(_) => {}
    }
    let request = match serde_json::from_str::<RequestLine>(line) {
        Ok(r) => r.request,
        Err(e) => return ResponseLine::error(format!("bad request: {e}")),
    };
    tracing::debug!(?request, "admin request");
    let (tx, rx) = crossbeam_channel::bounded(1);
    if to_control
        .send(ToControl::Admin { request, reply: tx })
        .is_err()
    {
        return ResponseLine::error("the daemon is shutting down");
    }
    rx.recv_timeout(ANSWER_TIMEOUT)
        .unwrap_or_else(|_| ResponseLine::error("the daemon did not answer in time"))
}

fn write_line(w: &mut impl Write, r: &ResponseLine) -> std::io::Result<()> {
    let mut text = serde_json::to_string(r).map_err(std::io::Error::other)?;
    text.push('\n');
    w.write_all(text.as_bytes())
}

/// One request over a connected stream, for `ringtgt ctl` and the tests.
pub fn request(
    stream: &mut UnixStream,
    request: protocol::Request,
) -> std::io::Result<ResponseLine> {
    let line = RequestLine {
        version: VERSION,
        request,
    };
    let mut text = serde_json::to_string(&line).map_err(std::io::Error::other)?;
    text.push('\n');
    stream.write_all(text.as_bytes())?;
    let mut reader = BufReader::new(stream);
    let mut answer = String::new();
    if reader.read_line(&mut answer)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the daemon closed the admin connection",
        ));
    }
    serde_json::from_str(&answer).map_err(std::io::Error::other)
}
