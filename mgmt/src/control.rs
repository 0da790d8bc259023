//! The control socket: a Unix stream socket speaking [`crate::proto`].
//!
//! * The socket file is created with mode `daemon.socket_mode` (0600 by
//!   default) and, when configured, group `daemon.socket_group`.
//! * Each peer's credentials (SO_PEERCRED) are checked at accept: root,
//!   rvsd's own uid, and the uids and gids listed in `daemon.allowed_uids` /
//!   `allowed_gids` are served; anyone else gets one `forbidden` reply and
//!   is disconnected.
//!
//! # Serving model
//!
//! One I/O thread multiplexes every connection with `poll(2)` over
//! non-blocking sockets; complete request lines go to executor threads
//! (one reserved for root and rvsd's own uid, two for everyone else) and
//! their replies come back to the I/O thread. No client holds a thread by
//! being slow or silent, so nothing another client does can lock root out:
//!
//! * **limits per uid**: root and rvsd's uid may hold [`Limits::privileged`]
//!   connections; every other uid at most [`Limits::per_uid`], and all of
//!   them together at most [`Limits::total`]. A connection over a limit gets
//!   one `busy` reply and is closed, without touching anyone else's;
//! * **deadlines**: a request line must be complete within
//!   [`Limits::request`] of its first byte (`timeout`, then closed); an
//!   idle connection is closed after [`Limits::idle`]; a client that does
//!   not read its replies is closed after [`Limits::request`] too;
//! * **sizes**: a line longer than [`MAX_LINE`] gets `too_large` (the rest
//!   of the line is discarded); a client's unread input is bounded; a
//!   transaction holds at most [`TXN_MAX_OPS`] changes.
//!
//! Requests of one connection are executed in order, one at a time.
//!
//! # Transactions
//!
//! A change too large for one line (restoring 10,000 services) is staged
//! in a transaction bound to the connection: `txn.begin` (with `"replace":
//! true` to clear every service first, ipvsadm-restore semantics),
//! `txn.add {"ops": [...]}` any number of times, then `txn.commit`, which
//! validates and publishes everything as one change, or refuses all of it
//! with the running configuration untouched. `txn.abort`, or closing the
//! connection, discards the staged changes.
use crate::commands;
use crate::fault::{self, Task};
use crate::manager::Manager;
use crate::ops::Op;
use crate::proto::{ErrorCode, Request, Response, MAX_LINE, VERSION};
use crossbeam_channel::{unbounded, Receiver, Sender};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most changes one transaction may stage.
pub const TXN_MAX_OPS: usize = 1_000_000;

/// Unread input kept per connection beyond one line.
const READ_AHEAD: usize = 64 * 1024;

/// Connection limits and deadlines of the control socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections of root and rvsd's own uid together.
    pub privileged: usize,
    /// Connections of any other single uid.
    pub per_uid: usize,
    /// Connections of all other uids together.
    pub total: usize,
    /// Time to finish a request line once started, and to read a reply.
    pub request: Duration,
    /// Time an idle connection is kept.
    pub idle: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { privileged: 64, per_uid: 16, total: 256, request: Duration::from_secs(5), idle: Duration::from_secs(30) }
    }
}

impl Limits {
    /// The limits a configuration sets.
    pub fn from_config(d: &config::Daemon) -> Limits {
        Limits {
            per_uid: d.control_max_per_uid as usize,
            total: d.control_max_connections as usize,
            idle: Duration::from_secs(u64::from(d.control_idle_timeout)),
            ..Limits::default()
        }
    }
}

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
        privileged(uid) || self.uids.contains(&uid) || self.gids.contains(&gid)
    }
}

/// Root and rvsd's own uid.
fn privileged(uid: u32) -> bool {
    uid == 0 || uid == nix::unistd::geteuid().as_raw()
}

/// What a connection carries between its requests.
#[derive(Debug, Default)]
pub struct ConnState {
    /// The peer's uid.
    pub uid: u32,
    /// A transaction in progress.
    txn: Option<Txn>,
}

impl ConnState {
    /// State for a peer with this uid.
    pub fn new(uid: u32) -> ConnState {
        ConnState { uid, txn: None }
    }
}

#[derive(Debug)]
struct Txn {
    replace: bool,
    ops: Vec<Op>,
}

/// A running control server.
#[derive(Debug)]
pub struct ControlServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// A request line handed to an executor.
struct Job {
    conn: u64,
    line: Vec<u8>,
    state: ConnState,
}

/// Its answer, back to the I/O thread.
struct Done {
    conn: u64,
    reply: Vec<u8>,
    state: ConnState,
}

/// A client connection that can no longer be written or read.
#[derive(Debug)]
struct Dead;

/// Why the control socket could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Another process answers on the path.
    #[error("{0} is in use by another rvsd")]
    InUse(PathBuf),
    /// Creating, binding or setting up the socket.
    #[error("cannot bind {path}: {source}")]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// `daemon.socket_group` names no group.
    #[error("daemon.socket_group: no group named {0:?}")]
    NoGroup(String),
    /// Looking the group up failed.
    #[error("daemon.socket_group: {0}")]
    Group(#[from] nix::Error),
    /// Starting the server's threads or wake-up pipe.
    #[error("cannot start the control server: {0}")]
    Start(#[from] std::io::Error),
}

impl ControlServer {
    /// Binds the socket (replacing a stale one) and starts serving.
    pub fn start(
        path: &Path,
        mode: u32,
        group: Option<&str>,
        access: Access,
        limits: Limits,
        mgr: Arc<Mutex<Manager>>,
    ) -> Result<ControlServer, ControlError> {
        let bind = |source| ControlError::Bind { path: path.to_path_buf(), source };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(bind)?;
        }
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(ControlError::InUse(path.to_path_buf()));
            }
            std::fs::remove_file(path).map_err(bind)?;
        }
        let listener = UnixListener::bind(path).map_err(bind)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(bind)?;
        if let Some(g) = group {
            let gid = match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => nix::unistd::Group::from_name(g)?.ok_or_else(|| ControlError::NoGroup(g.to_string()))?.gid.as_raw(),
            };
            std::os::unix::fs::chown(path, None, Some(gid)).map_err(bind)?;
        }
        listener.set_nonblocking(true)?;
        raise_fd_limit();
        let stop = Arc::new(AtomicBool::new(false));
        let (wake_rx, wake_tx) = UnixStream::pair()?;
        wake_rx.set_nonblocking(true)?;
        wake_tx.set_nonblocking(true)?;
        let (root_jobs, root_rx) = unbounded::<Job>();
        let (user_jobs, user_rx) = unbounded::<Job>();
        let (done_tx, done_rx) = unbounded::<Done>();
        let mut threads = Vec::new();
        for (i, rx) in [root_rx, user_rx.clone(), user_rx].into_iter().enumerate() {
            let (mgr, done, wake) = (mgr.clone(), done_tx.clone(), wake_tx.try_clone()?);
            threads.push(std::thread::Builder::new().name(format!("rvs-control{i}")).spawn(move || execute_jobs(&rx, &mgr, &done, &wake))?);
        }
        drop(done_tx);
        let st = stop.clone();
        let io = Io { listener, wake: wake_rx, access, limits, root_jobs, user_jobs, done: done_rx, conns: HashMap::new(), next: 1 };
        threads.push(std::thread::Builder::new().name("rvs-control".into()).spawn(move || io.run(&st))?);
        Ok(ControlServer { path: path.to_path_buf(), stop, threads })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // The I/O thread exits on the flag; dropping its job senders ends
        // the executors.
        for t in self.threads.drain(..).rev() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Raises the soft limit on open files to the hard one: the control socket
/// may hold a few hundred connections besides DPDK's own descriptors.
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

fn execute_jobs(jobs: &Receiver<Job>, mgr: &Mutex<Manager>, done: &Sender<Done>, mut wake: &UnixStream) {
    while let Ok(mut job) = jobs.recv() {
        let resp = match fault::contain(Task::Control, || handle_line(&job.line, mgr, &mut job.state)) {
            Ok(r) => r,
            Err(msg) => Response::err(None, ErrorCode::Internal, format!("internal fault (contained and counted): {msg}"), None),
        };
        let mut reply = serde_json::to_vec(&resp).unwrap_or_else(|_| b"{\"v\":1,\"ok\":false}".to_vec());
        reply.push(b'\n');
        if done.send(Done { conn: job.conn, reply, state: job.state }).is_err() {
            return;
        }
        let _ = wake.write(&[1]);
    }
}

/// One client connection, owned by the I/O thread.
struct Conn {
    stream: UnixStream,
    uid: u32,
    privileged: bool,
    input: Vec<u8>,
    /// Discarding an over-long line up to its newline.
    skipping: bool,
    /// When the current (incomplete) line started.
    line_started: Option<Instant>,
    last_activity: Instant,
    out: Vec<u8>,
    out_since: Option<Instant>,
    /// The state, absent while a request executes.
    state: Option<ConnState>,
    /// Close once the output is written.
    closing: bool,
    /// The peer closed its side.
    eof: bool,
}

impl Conn {
    fn busy(&self) -> bool {
        self.state.is_none()
    }

    fn queue(&mut self, r: &Response) {
        if let Ok(mut v) = serde_json::to_vec(r) {
            v.push(b'\n');
            self.queue_bytes(&v);
        }
    }

    fn queue_bytes(&mut self, b: &[u8]) {
        if self.out.is_empty() {
            self.out_since = Some(Instant::now());
        }
        self.out.extend_from_slice(b);
    }

    /// Writes what it can. Err: the connection is dead.
    fn flush(&mut self) -> Result<(), Dead> {
        while !self.out.is_empty() {
            match self.stream.write(&self.out) {
                Ok(0) => return Err(Dead),
                Ok(n) => {
                    self.out.drain(..n);
                    self.out_since = (!self.out.is_empty()).then(Instant::now);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Err(Dead),
            }
        }
        Ok(())
    }

    /// Reads what is there, up to the read-ahead bound. Err: dead.
    fn fill(&mut self) -> Result<(), Dead> {
        let mut chunk = [0u8; 16 * 1024];
        while self.input.len() < MAX_LINE + READ_AHEAD {
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.last_activity = Instant::now();
                    let got = chunk.get(..n).unwrap_or(&[]);
                    self.take_bytes(got);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Err(Dead),
            }
        }
        Ok(())
    }

    /// Appends received bytes, discarding the rest of an over-long line.
    fn take_bytes(&mut self, mut b: &[u8]) {
        if self.skipping {
            match b.iter().position(|&c| c == b'\n') {
                Some(i) => {
                    self.skipping = false;
                    b = b.get(i + 1..).unwrap_or(&[]);
                }
                None => return,
            }
        }
        if !b.is_empty() && self.line_started.is_none() {
            self.line_started = Some(Instant::now());
        }
        self.input.extend_from_slice(b);
    }

    /// The next complete line, if any (too-long lines become an error
    /// reply and are skipped).
    fn next_line(&mut self) -> Option<Vec<u8>> {
        loop {
            match self.input.iter().position(|&c| c == b'\n') {
                Some(i) if i <= MAX_LINE => {
                    let mut line: Vec<u8> = self.input.drain(..=i).collect();
                    line.pop();
                    self.line_started = (!self.input.is_empty()).then(Instant::now);
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    return Some(line);
                }
                Some(i) => {
                    self.input.drain(..=i);
                    self.line_started = (!self.input.is_empty()).then(Instant::now);
                    self.queue(&too_large());
                }
                // A last line without its newline counts at EOF.
                None if self.eof && !self.input.is_empty() && !self.skipping => {
                    let line = std::mem::take(&mut self.input);
                    self.line_started = None;
                    if line.iter().all(u8::is_ascii_whitespace) {
                        return None;
                    }
                    return Some(line);
                }
                None if self.input.len() > MAX_LINE => {
                    self.input.clear();
                    self.skipping = true;
                    self.line_started = None;
                    self.queue(&too_large());
                    return None;
                }
                None => return None,
            }
        }
    }
}

fn too_large() -> Response {
    Response::err(None, ErrorCode::TooLarge, format!("request line longer than {MAX_LINE} bytes"), None)
}

/// The I/O thread's state.
struct Io {
    listener: UnixListener,
    wake: UnixStream,
    access: Access,
    limits: Limits,
    root_jobs: Sender<Job>,
    user_jobs: Sender<Job>,
    done: Receiver<Done>,
    conns: HashMap<u64, Conn>,
    next: u64,
}

impl Io {
    /// Serves until `stop`. A fault in one round (a bug met by some
    /// client's bytes) is contained and counted; the connections of that
    /// moment are closed (their state may be half-updated) and serving
    /// goes on.
    fn run(mut self, stop: &AtomicBool) {
        let mut ids: Vec<u64> = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            if fault::contain(Task::Control, || self.round(&mut ids)).is_err() {
                self.conns.clear();
            }
        }
    }

    /// One round: poll, take replies, accept, read, dispatch, write.
    fn round(&mut self, ids: &mut Vec<u64>) {
        ids.clear();
        // A connection whose peer closed and that has nothing left to
        // write only waits for its executing request: not polled (it
        // would report POLLHUP at once, every time).
        ids.extend(self.conns.iter().filter(|(_, c)| !(c.eof && c.out.is_empty())).map(|(id, _)| *id));
        let mut ready: Vec<(u64, PollFlags)> = Vec::with_capacity(ids.len());
        let (lr, wr) = {
            let mut fds = Vec::with_capacity(ids.len() + 2);
            fds.push(PollFd::new(self.listener.as_fd(), PollFlags::POLLIN));
            fds.push(PollFd::new(self.wake.as_fd(), PollFlags::POLLIN));
            for id in ids.iter() {
                let c = &self.conns[id];
                let mut ev = PollFlags::empty();
                if !c.eof && !c.closing && c.input.len() < MAX_LINE + READ_AHEAD {
                    ev |= PollFlags::POLLIN;
                }
                if !c.out.is_empty() {
                    ev |= PollFlags::POLLOUT;
                }
                fds.push(PollFd::new(c.stream.as_fd(), ev));
            }
            if poll(&mut fds, PollTimeout::from(100u16)).is_err() {
                // EINTR (the TAP driver's SIGIO): go round.
                return;
            }
            let rev = |f: &PollFd<'_>| f.revents().unwrap_or(PollFlags::empty());
            for (id, f) in ids.iter().zip(fds.iter().skip(2)) {
                let r = rev(f);
                if !r.is_empty() {
                    ready.push((*id, r));
                }
            }
            (fds.first().map(rev).unwrap_or(PollFlags::empty()), fds.get(1).map(rev).unwrap_or(PollFlags::empty()))
        };
        if wr.contains(PollFlags::POLLIN) {
            let mut b = [0u8; 256];
            while matches!((&self.wake).read(&mut b), Ok(n) if n > 0) {}
        }
        while let Ok(d) = self.done.try_recv() {
            if let Some(c) = self.conns.get_mut(&d.conn) {
                c.queue_bytes(&d.reply);
                c.state = Some(d.state);
                c.last_activity = Instant::now();
            }
        }
        if lr.contains(PollFlags::POLLIN) {
            self.accept_all();
        }
        for (id, r) in &ready {
            let Some(c) = self.conns.get_mut(id) else { continue };
            let dead = (r.contains(PollFlags::POLLIN) || r.contains(PollFlags::POLLHUP)) && c.fill().is_err();
            if dead || r.contains(PollFlags::POLLERR) || r.contains(PollFlags::POLLNVAL) {
                self.conns.remove(id);
            }
        }
        self.service_all();
    }

    fn accept_all(&mut self) {
        loop {
            let stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            let _ = stream.set_nonblocking(true);
            let cred = getsockopt(&stream, PeerCredentials);
            let (uid, gid) = match &cred {
                Ok(c) => (c.uid(), c.gid()),
                Err(_) => (u32::MAX, u32::MAX),
            };
            if cred.is_err() || !self.access.allows(uid, gid) {
                let who = if cred.is_ok() { format!("uid {uid} gid {gid}") } else { "unknown peer".into() };
                refuse(&stream, ErrorCode::Forbidden, format!("{who} may not use this socket"));
                continue;
            }
            let privileged = privileged(uid);
            let (same, class) =
                self.conns.values().fold((0, 0), |(s, k), c| (s + usize::from(c.uid == uid), k + usize::from(c.privileged == privileged)));
            let over = if privileged {
                (class >= self.limits.privileged).then(|| format!("{} connections of root and rvsd's uid are open", self.limits.privileged))
            } else if same >= self.limits.per_uid {
                Some(format!("uid {uid} already has {same} connections (daemon.control_max_per_uid)"))
            } else if class >= self.limits.total {
                Some(format!("{class} connections of other users are open (daemon.control_max_connections)"))
            } else {
                None
            };
            if let Some(why) = over {
                refuse(&stream, ErrorCode::Busy, format!("too many control connections: {why}"));
                continue;
            }
            let now = Instant::now();
            let id = self.next;
            self.next += 1;
            self.conns.insert(
                id,
                Conn {
                    stream,
                    uid,
                    privileged,
                    input: Vec::new(),
                    skipping: false,
                    line_started: None,
                    last_activity: now,
                    out: Vec::new(),
                    out_since: None,
                    state: Some(ConnState::new(uid)),
                    closing: false,
                    eof: false,
                },
            );
        }
    }

    /// Dispatches complete lines, writes replies, enforces deadlines.
    fn service_all(&mut self) {
        let now = Instant::now();
        let limits = self.limits;
        let mut gone = Vec::new();
        for (&id, c) in &mut self.conns {
            if !c.busy() && !c.closing {
                if let Some(line) = c.next_line() {
                    if let Some(state) = c.state.take() {
                        let job = Job { conn: id, line, state };
                        let q = if c.privileged { &self.root_jobs } else { &self.user_jobs };
                        if let Err(e) = q.send(job) {
                            c.state = Some(e.0.state);
                            c.queue(&Response::err(None, ErrorCode::Internal, "control server stopping", None));
                            c.closing = true;
                        }
                    }
                }
            }
            if c.flush().is_err() {
                gone.push(id);
                continue;
            }
            let idle = !c.busy() && c.input.is_empty() && c.out.is_empty();
            let late_line = c.line_started.is_some_and(|t| now.duration_since(t) > limits.request) && !c.busy();
            let late_read = c.out_since.is_some_and(|t| now.duration_since(t) > limits.request);
            if late_line && !c.closing {
                c.queue(&Response::err(None, ErrorCode::Timeout, "request not completed in time; closing", None));
                let _ = c.flush();
                c.closing = true;
            }
            if late_read
                || (c.closing && (c.out.is_empty() || late_line))
                || (c.eof && !c.busy() && c.out.is_empty())
                || (idle && now.duration_since(c.last_activity) > limits.idle)
            {
                gone.push(id);
            }
        }
        for id in gone {
            self.conns.remove(&id);
        }
    }
}

/// One error reply to a connection that will not be served (best effort:
/// the socket is non-blocking and closed right after).
fn refuse(mut s: &UnixStream, code: ErrorCode, msg: String) {
    if let Ok(mut v) = serde_json::to_vec(&Response::err(None, code, msg, None)) {
        v.push(b'\n');
        let _ = s.write(&v);
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct BeginArgs {
    #[serde(default)]
    replace: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddArgs {
    ops: Vec<Op>,
}

/// The transaction commands, which need the connection's state.
fn transaction(cmd: &str, args: &Value, mgr: &Mutex<Manager>, st: &mut ConnState) -> Result<Value, crate::proto::CmdError> {
    use crate::proto::CmdError;
    let bad = |e: serde_json::Error| CmdError::field(ErrorCode::BadRequest, "args", format!("{cmd}: {e}"));
    match cmd {
        "txn.begin" => {
            let a: BeginArgs = if args.is_null() { BeginArgs::default() } else { serde_json::from_value(args.clone()).map_err(bad)? };
            if st.txn.is_some() {
                return Err(CmdError::new(ErrorCode::Invalid, "a transaction is already open on this connection"));
            }
            st.txn = Some(Txn { replace: a.replace, ops: Vec::new() });
            Ok(json!({"staged": 0}))
        }
        "txn.add" => {
            let a: AddArgs = serde_json::from_value(args.clone()).map_err(bad)?;
            let t = st.txn.as_mut().ok_or_else(|| CmdError::new(ErrorCode::Invalid, "no transaction open (txn.begin first)"))?;
            if t.ops.len() + a.ops.len() > TXN_MAX_OPS {
                st.txn = None;
                return Err(CmdError::new(ErrorCode::TooLarge, format!("a transaction holds at most {TXN_MAX_OPS} changes; aborted")));
            }
            t.ops.extend(a.ops);
            Ok(json!({"staged": t.ops.len()}))
        }
        "txn.commit" => {
            let t = st.txn.take().ok_or_else(|| CmdError::new(ErrorCode::Invalid, "no transaction open (txn.begin first)"))?;
            let mut ops = Vec::with_capacity(t.ops.len() + 1);
            if t.replace {
                ops.push(Op::Clear);
            }
            ops.extend(t.ops);
            let d = fault::lock(mgr).apply_ops(&ops)?;
            serde_json::to_value(&d).map_err(|e| CmdError::new(ErrorCode::Internal, e.to_string()))
        }
        "txn.abort" => {
            let had = st.txn.take().map_or(0, |t| t.ops.len());
            Ok(json!({"discarded": had}))
        }
        other => Err(CmdError::field(ErrorCode::UnknownCommand, "cmd", format!("unknown command {other:?}"))),
    }
}

/// Parses and executes one request line for a connection in state `st`.
pub fn handle_line(line: &[u8], mgr: &Mutex<Manager>, st: &mut ConnState) -> Response {
    let value: Value = match serde_json::from_slice(line) {
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
    let result = if req.cmd.starts_with("txn.") {
        transaction(&req.cmd, &req.args, mgr, st)
    } else if req.cmd == "explain" {
        // Waits for the workers too.
        crate::explain::explain(mgr, &req.args)
    } else if req.cmd == "sessions" {
        // Waits for the workers: must not hold the management lock.
        let shared = fault::lock(mgr).shared().clone();
        commands::sessions(&shared, &req.args)
    } else {
        commands::execute(&mut fault::lock(mgr), &req.cmd, &req.args)
    };
    audit(st.uid, &req.cmd, &req.args, result.as_ref().err());
    match result {
        Ok(v) => Response::ok(req.id, v),
        Err(e) => Response::err(req.id, e.code, e.message, e.field),
    }
}

/// Requests that change nothing (not in the audit trail when they succeed).
const READ_ONLY: [&str; 12] =
    ["ping", "version", "stats", "config.get", "config.toml", "sessions", "explain", "ha", "node", "choose", "timeouts.get", "txn.begin"];

/// The audit trail: every change made through the socket, with the
/// caller's uid and the change, and every refused request with the reason.
fn audit(uid: u32, cmd: &str, args: &Value, refused: Option<&crate::proto::CmdError>) {
    let mut a = args.to_string();
    if a.len() > 400 {
        let cut = (0..=400).rev().find(|&i| a.is_char_boundary(i)).unwrap_or(0);
        a.truncate(cut);
        a.push_str("...");
    }
    match refused {
        Some(e) => log::warn!("control: uid {uid} {cmd} {a}: refused: {}", e.message),
        None if READ_ONLY.contains(&cmd) => {}
        None => log::info!("control: uid {uid} {cmd} {a}: done"),
    }
}

/// A blocking client for the control socket (used by rvsadm and tests).
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
    next_id: u64,
}

/// Largest request line a [`Client`] sends when it splits a change.
const CHUNK: usize = MAX_LINE / 2;

impl Client {
    /// Connects to the socket at `path`.
    pub fn connect(path: &Path) -> std::io::Result<Client> {
        let stream = UnixStream::connect(path)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let reader = BufReader::new(stream.try_clone()?);
        Ok(Client { stream, reader, next_id: 1 })
    }

    /// Sends a command and waits for its response.
    pub fn call(&mut self, cmd: &str, args: Value) -> std::io::Result<Response> {
        let req = Request { v: VERSION, id: Some(Value::from(self.next_id)), cmd: cmd.to_string(), args };
        self.next_id += 1;
        let mut line = serde_json::to_vec(&req)?;
        line.push(b'\n');
        if let Err(e) = self.stream.write_all(&line) {
            // A server that refuses the connection (a uid not allowed, too
            // many connections) answers at once and closes: its answer may
            // be waiting even though the request could not be written.
            if matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) {
                return self.read_response().map_err(|_| e);
            }
            return Err(e);
        }
        self.read_response()
    }

    /// Applies `ops` as one all-or-nothing change, in a transaction whose
    /// request lines stay well under the line limit however many changes
    /// there are; `replace` clears every service first. Returns the
    /// commit's (or the first failing step's) response.
    pub fn apply_all(&mut self, ops: &[Op], replace: bool) -> std::io::Result<Response> {
        let r = self.call("txn.begin", json!({ "replace": replace }))?;
        if !r.ok {
            return Ok(r);
        }
        let mut chunk: Vec<Value> = Vec::new();
        let mut size = 0usize;
        for op in ops {
            let v = serde_json::to_value(op)?;
            let n = v.to_string().len() + 1;
            if size + n > CHUNK && !chunk.is_empty() {
                let r = self.call("txn.add", json!({ "ops": std::mem::take(&mut chunk) }))?;
                if !r.ok {
                    return Ok(r);
                }
                size = 0;
            }
            size += n;
            chunk.push(v);
        }
        if !chunk.is_empty() {
            let r = self.call("txn.add", json!({ "ops": chunk }))?;
            if !r.ok {
                return Ok(r);
            }
        }
        self.call("txn.commit", Value::Null)
    }

    /// Reads one response line.
    pub fn read_response(&mut self) -> std::io::Result<Response> {
        let mut line = String::new();
        let n = (&mut self.reader).take(256 << 20).read_line(&mut line)?;
        if n == 0 {
            return Err(std::io::Error::new(ErrorKind::UnexpectedEof, "rvsd closed the connection"));
        }
        serde_json::from_str(&line).map_err(|e| std::io::Error::new(ErrorKind::InvalidData, e))
    }
}
