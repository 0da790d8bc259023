//! The control socket: a Unix stream socket speaking [`crate::proto`].
//!
//! * The socket file is created with mode `daemon.socket_mode` (0600 by
//!   default) and, when configured, group `daemon.socket_group`.
//! * Each peer's credentials (SO_PEERCRED) are checked: root, rvsd's own
//!   uid, and the uids and gids listed in `daemon.allowed_uids` /
//!   `allowed_gids` are served; anyone else gets one `forbidden` reply and
//!   is disconnected.
//! * Each connection has its own thread (at most [`MAX_CLIENTS`]), reads
//!   with a timeout and a line-length cap, so a slow, silent or hostile
//!   client never blocks another: a line longer than [`MAX_LINE`] gets a
//!   `too_large` reply (the rest of the line is discarded), a request not
//!   finished within [`REQUEST_TIMEOUT`] gets `timeout` and is disconnected,
//!   a line that is not JSON gets `bad_json`.
use crate::commands;
use crate::manager::Manager;
use crate::proto::{ErrorCode, Request, Response, MAX_LINE, VERSION};
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most simultaneous control connections.
pub const MAX_CLIENTS: usize = 64;
/// Time a client has to finish a request line once it started one.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Time an idle connection is kept.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Who may talk to the socket.
#[derive(Clone, Debug, Default)]
pub struct Access {
    /// Allowed uids (root and rvsd's own uid always are).
    pub uids: Vec<u32>,
    /// Allowed gids.
    pub gids: Vec<u32>,
}

impl Access {
    fn allows(&self, uid: u32, gid: u32) -> bool {
        uid == 0 || uid == nix::unistd::geteuid().as_raw() || self.uids.contains(&uid) || self.gids.contains(&gid)
    }
}

/// A running control server.
#[derive(Debug)]
pub struct ControlServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ControlServer {
    /// Binds the socket (replacing a stale one) and starts serving.
    pub fn start(path: &Path, mode: u32, group: Option<&str>, access: Access, mgr: Arc<Mutex<Manager>>) -> anyhow::Result<ControlServer> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                anyhow::bail!("{} is in use by another rvsd", path.display());
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path).map_err(|e| anyhow::anyhow!("cannot bind {}: {e}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        if let Some(g) = group {
            let gid = match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => nix::unistd::Group::from_name(g)?
                    .ok_or_else(|| anyhow::anyhow!("daemon.socket_group: no group named {g:?}"))?
                    .gid
                    .as_raw(),
            };
            std::os::unix::fs::chown(path, None, Some(gid))?;
        }
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let clients = Arc::new(AtomicUsize::new(0));
        let thread = std::thread::Builder::new().name("rvs-control".into()).spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if clients.load(Ordering::Relaxed) >= MAX_CLIENTS {
                            let _ = reply(&stream, &Response::err(None, ErrorCode::Internal, "too many control connections", None));
                            continue;
                        }
                        clients.fetch_add(1, Ordering::Relaxed);
                        let (mgr, access, clients, st) = (mgr.clone(), access.clone(), clients.clone(), st.clone());
                        let spawned = std::thread::Builder::new().name("rvs-client".into()).spawn(move || {
                            serve(stream, &mgr, &access, &st);
                            clients.fetch_sub(1, Ordering::Relaxed);
                        });
                        if spawned.is_err() {
                            // Thread creation failed: the client closure (and its stream) is dropped.
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(20)),
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        })?;
        Ok(ControlServer { path: path.to_path_buf(), stop, thread: Some(thread) })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn reply(mut s: &UnixStream, r: &Response) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(r).unwrap_or_else(|_| b"{\"v\":1,\"ok\":false}".to_vec());
    line.push(b'\n');
    s.write_all(&line)
}

/// Reads one line of at most MAX_LINE bytes. Ok(None) at EOF; Err(true)
/// for an over-long line (consumed up to its newline), Err(false) for a
/// timeout or I/O error.
fn read_line(r: &mut BufReader<&UnixStream>, stop: &AtomicBool) -> Result<Option<Vec<u8>>, bool> {
    let mut line = Vec::new();
    let mut too_long = false;
    let mut started: Option<Instant> = None;
    let idle_since = Instant::now();
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err(false);
        }
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {
                let limit_hit = match started {
                    Some(t) => t.elapsed() > REQUEST_TIMEOUT,
                    None => idle_since.elapsed() > IDLE_TIMEOUT,
                };
                if limit_hit {
                    return Err(false);
                }
                continue;
            }
            Err(_) => return Err(false),
        };
        if buf.is_empty() {
            return if line.is_empty() && !too_long {
                Ok(None)
            } else if too_long {
                Err(true)
            } else {
                Ok(Some(line))
            };
        }
        started.get_or_insert_with(Instant::now);
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        if !too_long {
            if line.len() + chunk.len() > MAX_LINE {
                too_long = true;
                line.clear();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        let used = done.unwrap_or(buf.len());
        r.consume(used);
        if done.is_some() {
            return if too_long { Err(true) } else { Ok(Some(line)) };
        }
        if started.is_some_and(|t| t.elapsed() > REQUEST_TIMEOUT) {
            return Err(false);
        }
    }
}

fn serve(stream: UnixStream, mgr: &Mutex<Manager>, access: &Access, stop: &AtomicBool) {
    let cred = getsockopt(&stream, PeerCredentials);
    let allowed = cred.as_ref().is_ok_and(|c| access.allows(c.uid(), c.gid()));
    if !allowed {
        let who = cred.map(|c| format!("uid {} gid {}", c.uid(), c.gid())).unwrap_or_else(|_| "unknown peer".into());
        let _ = reply(&stream, &Response::err(None, ErrorCode::Forbidden, format!("{who} may not use this socket"), None));
        return;
    }
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::with_capacity(8192, &stream);
    loop {
        let line = match read_line(&mut reader, stop) {
            Ok(Some(l)) => l,
            Ok(None) => return,
            Err(true) => {
                let msg = format!("request line longer than {MAX_LINE} bytes");
                if reply(&stream, &Response::err(None, ErrorCode::TooLarge, msg, None)).is_err() {
                    return;
                }
                continue;
            }
            Err(false) => {
                let _ = reply(&stream, &Response::err(None, ErrorCode::Timeout, "request not completed in time; closing", None));
                return;
            }
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let resp = handle_line(&line, mgr);
        if reply(&stream, &resp).is_err() {
            return;
        }
    }
}

/// Parses and executes one request line.
pub fn handle_line(line: &[u8], mgr: &Mutex<Manager>) -> Response {
    let value: serde_json::Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(e) => return Response::err(None, ErrorCode::BadJson, format!("not JSON: {e}"), None),
    };
    let id = value.get("id").cloned();
    let req: Request = match serde_json::from_value(value) {
        Ok(r) => r,
        Err(e) => return Response::err(id, ErrorCode::BadRequest, format!("not a request: {e}"), None),
    };
    if req.v != VERSION {
        return Response::err(
            req.id,
            ErrorCode::UnsupportedVersion,
            format!("protocol version {} is not supported (this rvsd speaks {VERSION})", req.v),
            Some("v".into()),
        );
    }
    if req.cmd == "sessions" {
        // Waits for the workers: must not hold the management lock.
        let shared = match mgr.lock() {
            Ok(m) => m.shared().clone(),
            Err(_) => return Response::err(req.id, ErrorCode::Internal, "management state poisoned", None),
        };
        return match commands::sessions(&shared, &req.args) {
            Ok(v) => Response::ok(req.id, v),
            Err(e) => Response::err(req.id, e.code, e.message, e.field),
        };
    }
    let Ok(mut m) = mgr.lock() else {
        return Response::err(req.id, ErrorCode::Internal, "management state poisoned", None);
    };
    match commands::execute(&mut m, &req.cmd, &req.args) {
        Ok(v) => Response::ok(req.id, v),
        Err(e) => Response::err(req.id, e.code, e.message, e.field),
    }
}

/// A blocking client for the control socket (used by rvsadm and tests).
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
    next_id: u64,
}

impl Client {
    /// Connects to the socket at `path`.
    pub fn connect(path: &Path) -> std::io::Result<Client> {
        let stream = UnixStream::connect(path)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let reader = BufReader::new(stream.try_clone()?);
        Ok(Client { stream, reader, next_id: 1 })
    }

    /// Sends a command and waits for its response.
    pub fn call(&mut self, cmd: &str, args: serde_json::Value) -> std::io::Result<Response> {
        let req = Request { v: VERSION, id: Some(serde_json::Value::from(self.next_id)), cmd: cmd.to_string(), args };
        self.next_id += 1;
        let mut line = serde_json::to_vec(&req)?;
        line.push(b'\n');
        self.stream.write_all(&line)?;
        self.read_response()
    }

    /// Sends raw bytes (tests of malformed input).
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads one response line.
    pub fn read_response(&mut self) -> std::io::Result<Response> {
        let mut line = String::new();
        let n = (&mut self.reader).take(16 << 20).read_line(&mut line)?;
        if n == 0 {
            return Err(std::io::Error::new(ErrorKind::UnexpectedEof, "rvsd closed the connection"));
        }
        serde_json::from_str(&line).map_err(|e| std::io::Error::new(ErrorKind::InvalidData, e))
    }
}
