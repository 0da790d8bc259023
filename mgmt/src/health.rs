//! Health checks and feedback probes, run by management, never by workers.
//!
//! A [`Checker`] owns one scheduler thread and a pool of probe threads
//! that grows with demand: a probe due while every pool thread is busy
//! (servers that black-hole their checks hold a thread for the whole
//! timeout) gets a new thread, up to [`MAX_PROBE_THREADS`], so a few dead or
//! hostile servers cannot delay the checks of healthy ones. Management hands it the set of probes ([`Checker::sync`]) after
//! every configuration change; the scheduler starts each probe every
//! `interval` (the first runs at once, spread over the first interval), a
//! pool thread runs it under its `timeout` with ordinary kernel sockets
//! (through the port's kernel interface) and sends the [`ProbeResult`]
//! back; management drains the results ([`Checker::drain`]), applies
//! rise/fall, and republishes when a real server changes state.
//!
//! Probes: TCP connect; HTTP/HTTPS GET with acceptable statuses and an
//! optional body substring (TLS without certificate verification, as
//! keepalived's SSL_GET); send/expect over TCP; an external command (exit
//! status 0 within the timeout); and the feedback agent (one line, HAProxy
//! agent-check style). Each connects from the configured source address
//! when there is one.
use crate::remote;
pub use crate::remote::AgentSays;
use crossbeam_channel::{unbounded, Receiver, Sender};
use rvs_core::table::BackendKey;
use socket2::{Domain, Protocol as SockProto, SockAddr, Socket, Type};
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a probe does.
#[derive(Clone, Debug, PartialEq)]
pub enum ProbeKind {
    /// TCP connect.
    Tcp,
    /// HTTP(S) GET.
    Http {
        /// TLS.
        tls: bool,
        /// Path.
        path: String,
        /// Host header.
        host: String,
        /// Acceptable statuses.
        status: Vec<u16>,
        /// Required body substring.
        body: Option<String>,
    },
    /// Send a string, expect a substring back.
    SendExpect {
        /// Sent.
        send: String,
        /// Expected.
        expect: String,
    },
    /// Run a command.
    Command(Vec<String>),
    /// Ask the feedback agent for a weight.
    Feedback,
    /// A UDP datagram, a reply (containing `expect` unless empty).
    Udp {
        /// Sent.
        send: String,
        /// Expected in the reply (empty: any reply).
        expect: String,
    },
    /// A DNS query; an answer with a record of the type.
    Dns {
        /// The name asked for.
        name: String,
        /// The record type.
        qtype: u16,
    },
    /// An SMTP banner (220).
    Smtp,
}

/// One probe of one real server.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeSpec {
    /// The real server.
    pub key: BackendKey,
    /// Health check or feedback.
    pub feedback: bool,
    /// Which of the server's health checks (0 for feedback).
    pub check: usize,
    /// Address to probe.
    pub addr: IpAddr,
    /// Port to probe.
    pub port: u16,
    /// Source address.
    pub source: Option<IpAddr>,
    /// What to do.
    pub kind: ProbeKind,
    /// Period.
    pub interval: Duration,
    /// Deadline of one run.
    pub timeout: Duration,
    /// After a failure, the next run this much later instead of after
    /// `interval` (keepalived's `delay_before_retry`).
    pub retry: Option<Duration>,
}

/// The identity of a probe: the real server, feedback or not, which of
/// its checks.
pub type ProbeId = (BackendKey, bool, usize);

impl ProbeSpec {
    /// Its identity.
    pub fn id(&self) -> ProbeId {
        (self.key, self.feedback, self.check)
    }

    /// Check number `check` of real server `key` at `addr`, `port`.
    fn check(key: BackendKey, check: usize, addr: IpAddr, port: u16, h: &config::HealthCheck) -> ProbeSpec {
        let kind = match h.kind {
            config::CheckKind::Tcp => ProbeKind::Tcp,
            config::CheckKind::Http | config::CheckKind::Https => ProbeKind::Http {
                tls: h.kind == config::CheckKind::Https,
                path: h.path.clone(),
                host: h.host.clone().unwrap_or_else(|| crate::ipvsadm::addr_port(addr, h.port.unwrap_or(port))),
                status: h.expect_status.clone(),
                body: h.expect_body.clone(),
            },
            config::CheckKind::SendExpect => {
                ProbeKind::SendExpect { send: h.send.clone().unwrap_or_default(), expect: h.expect.clone().unwrap_or_default() }
            }
            config::CheckKind::Command => ProbeKind::Command(h.command.clone()),
            config::CheckKind::Udp => {
                ProbeKind::Udp { send: h.send.clone().unwrap_or_default(), expect: h.expect.clone().unwrap_or_default() }
            }
            config::CheckKind::Dns => ProbeKind::Dns {
                name: h.dns_name.clone().unwrap_or_default(),
                qtype: remote::DNS_TYPES.iter().find(|(n, _)| n.eq_ignore_ascii_case(&h.dns_type)).map_or(1, |(_, v)| *v),
            },
            config::CheckKind::Smtp => ProbeKind::Smtp,
        };
        ProbeSpec {
            key,
            feedback: false,
            check,
            addr,
            port: h.port.unwrap_or(port),
            source: h.source,
            kind,
            interval: Duration::from_secs_f64(h.interval),
            timeout: Duration::from_secs_f64(h.timeout),
            retry: h.delay_before_retry.map(Duration::from_secs_f64),
        }
    }

    /// The probes of a configuration: each health check of every real
    /// server (its own, or its service's) and one feedback query per real
    /// server of a service that has an agent.
    pub fn from_config(cfg: &config::Config) -> Vec<ProbeSpec> {
        let mut out = Vec::new();
        for s in &cfg.services {
            for r in &s.real_servers {
                let port = s.port_of(r);
                let key = (s.key(), r.address, port);
                for (check, h) in s.checks_of(r).into_iter().enumerate() {
                    out.push(ProbeSpec::check(key, check, r.address, port, h));
                }
                if let Some(f) = &s.feedback {
                    out.push(ProbeSpec {
                        key,
                        feedback: true,
                        check: 0,
                        addr: r.address,
                        port: f.port,
                        source: s.main_check_of(r).and_then(|h| h.source),
                        kind: ProbeKind::Feedback,
                        interval: Duration::from_secs_f64(f.interval),
                        timeout: Duration::from_secs_f64(f.timeout),
                        retry: None,
                    });
                }
            }
        }
        out
    }
}

/// The outcome of one probe run.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeResult {
    /// Which probe.
    pub id: ProbeId,
    /// Passed.
    pub ok: bool,
    /// What happened, for operators.
    pub message: String,
    /// How long it took.
    pub took: Duration,
    /// Feedback probes: what the agent said.
    pub agent: Option<AgentSays>,
}

/// Why a probe failed, as the operator reads it in `show health`.
#[derive(Debug, thiserror::Error)]
enum ProbeError {
    /// The deadline passed before the connection was made.
    #[error("timed out")]
    Timeout,
    /// The deadline passed while waiting for the answer.
    #[error("timed out reading the answer")]
    ReadTimeout,
    /// The deadline passed during the TLS handshake.
    #[error("TLS: timed out in the handshake")]
    TlsTimeout,
    /// A system call failed (socket, bind, connect, send, read).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// The TLS layer refused.
    #[error("TLS: {0}")]
    Tls(String),
    /// An HTTP answer that fails the check.
    #[error(transparent)]
    Http(#[from] remote::HttpAnswerError),
    /// A send/expect or agent answer that fails the check.
    #[error("{0}")]
    Answer(String),
    /// A check command that failed or could not run.
    #[error("{0}")]
    Command(String),
}

/// Maps a system error to [`ProbeError::Io`] saying what was being done.
fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ProbeError {
    let what = what.into();
    move |source| ProbeError::Io { what, source }
}

/// Connects within the deadline; the stream's reads and writes stay
/// bounded by it ([`Bounded`]).
fn connect(spec: &ProbeSpec, deadline: Instant) -> Result<Bounded, ProbeError> {
    let target = SocketAddr::new(spec.addr, spec.port);
    let domain = if spec.addr.is_ipv4() { Domain::IPV4 } else { Domain::IPV6 };
    let sock = Socket::new(domain, Type::STREAM, Some(SockProto::TCP)).map_err(io("socket"))?;
    if let Some(src) = spec.source {
        sock.bind(&SockAddr::from(SocketAddr::new(src, 0))).map_err(io(format!("bind {src}")))?;
    }
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(ProbeError::Timeout);
    }
    sock.connect_timeout(&SockAddr::from(target), left).map_err(io(format!("connect {target}")))?;
    Ok(Bounded { s: sock.into(), deadline })
}

/// A TCP stream every read and write of which is bounded by one deadline
/// for the whole probe: the socket's timeout is set to what is left
/// before each system call, and a call after the deadline fails at once.
/// Whatever reads through it (the plain answer loop, or rustls's
/// handshake and record reads, which loop over many socket reads inside
/// one call) cannot outlast the probe's `timeout`, however a server
/// trickles, stalls or stays silent.
struct Bounded {
    s: TcpStream,
    deadline: Instant,
}

impl Bounded {
    /// What is left before the deadline, or the timeout error.
    fn left(&self) -> std::io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        Ok(left)
    }
}

impl Read for Bounded {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            self.s.set_read_timeout(Some(self.left()?))?;
            match self.s.read(buf) {
                // DPDK's TAP driver takes SIGIO in this process: a read
                // may be interrupted by a signal and is simply retried.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                r => return r,
            }
        }
    }
}

impl Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        loop {
            self.s.set_write_timeout(Some(self.left()?))?;
            match self.s.write(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                r => return r,
            }
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.s.flush()
    }
}

/// Whether an I/O error is a timeout (the socket's, or [`Bounded`]'s own).
fn timed_out(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
}

/// Reads until `done(buf)`, EOF or 64 KiB; every read is bounded by the
/// stream's deadline ([`Bounded`]).
fn read_until(s: &mut dyn Read, done: &dyn Fn(&[u8]) -> bool) -> Result<Vec<u8>, ProbeError> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !done(&buf) && buf.len() < 65536 {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or(&[])),
            Err(e) if timed_out(&e) => return Err(ProbeError::ReadTimeout),
            Err(e) => return Err(io("read")(e)),
        }
    }
    Ok(buf)
}

/// Accepts any certificate (health checks do not authenticate servers,
/// as keepalived's SSL_GET by default) but still checks the handshake
/// signatures.
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_config() -> Result<Arc<rustls::ClientConfig>, ProbeError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ProbeError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// `GET path` over TCP or TLS; the status (and body) must match.
fn http(
    spec: &ProbeSpec,
    deadline: Instant,
    tls: bool,
    path: &str,
    host: &str,
    status: &[u16],
    body: Option<&str>,
) -> Result<String, ProbeError> {
    let mut s = connect(spec, deadline)?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: rvs-health\r\nAccept: */*\r\nConnection: close\r\n\r\n");
    let until_body = |b: &[u8]| body.is_none() && b.windows(4).any(|w| w == b"\r\n\r\n");
    let answer = if tls {
        let name = rustls::pki_types::ServerName::try_from(host.split(':').next().unwrap_or(host).trim_matches(['[', ']']).to_string())
            .unwrap_or_else(|_| rustls::pki_types::ServerName::IpAddress(spec.addr.into()));
        let conn = rustls::ClientConnection::new(tls_config()?, name).map_err(|e| ProbeError::Tls(e.to_string()))?;
        let mut tls = rustls::StreamOwned::new(conn, s);
        // The handshake happens here, its reads bounded like the answer's.
        tls.write_all(req.as_bytes()).map_err(|e| if timed_out(&e) { ProbeError::TlsTimeout } else { ProbeError::Tls(e.to_string()) })?;
        read_until(&mut tls, &until_body)?
    } else {
        s.write_all(req.as_bytes()).map_err(io("send"))?;
        read_until(&mut s, &until_body)?
    };
    Ok(remote::check_http(&answer, status, body.map(str::as_bytes))?)
}

/// Sends a string; the answer must contain the expected one.
fn send_expect(spec: &ProbeSpec, deadline: Instant, send: &str, expect: &str) -> Result<String, ProbeError> {
    let mut s = connect(spec, deadline)?;
    s.write_all(send.as_bytes()).map_err(io("send"))?;
    let want = expect.as_bytes();
    // The answer is complete once it holds the expected string or more
    // line ends than the expected string: a wrong one-line answer fails
    // at once instead of at the timeout.
    let lines = want.iter().filter(|&&c| c == b'\n').count();
    let got = read_until(&mut s, &|b| remote::contains(b, want) || b.iter().filter(|&&c| c == b'\n').count() > lines)?;
    if remote::contains(&got, want) {
        Ok(format!("got {}", remote::printable(want, remote::SNIPPET)))
    } else {
        Err(ProbeError::Answer(format!(
            "expected {}, got {}",
            remote::printable(want, remote::SNIPPET),
            remote::printable(&got, remote::SNIPPET)
        )))
    }
}

/// Runs a command (`{address}`/`{port}` substituted); exit 0 passes, and
/// it is killed at the deadline.
fn command(spec: &ProbeSpec, deadline: Instant, argv: &[String]) -> Result<String, ProbeError> {
    let subst = |a: &String| a.replace("{address}", &spec.addr.to_string()).replace("{port}", &spec.port.to_string());
    let (prog, args) = argv.split_first().ok_or_else(|| ProbeError::Command("empty command".into()))?;
    let mut child = std::process::Command::new(subst(prog))
        .args(args.iter().map(subst))
        .env("RVS_ADDRESS", spec.addr.to_string())
        .env("RVS_PORT", spec.port.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(io(format!("cannot run {prog}")))?;
    loop {
        match child.try_wait() {
            Ok(Some(st)) if st.success() => return Ok(format!("{prog} exited 0")),
            Ok(Some(st)) => {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                return Err(ProbeError::Command(format!("{prog} {st}: {}", err.trim().chars().take(120).collect::<String>())));
            }
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ProbeError::Command(format!("{prog} still running after {:?}: killed", spec.timeout)));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(io(format!("waiting for {prog}"))(e)),
        }
    }
}

/// Sends one datagram from the check's source (if any) and waits for a
/// reply until the deadline; checks it contains `expect` (when not empty)
/// or, with `dns`, that it answers the DNS query.
fn udp(spec: &ProbeSpec, deadline: Instant, send: &[u8], expect: &[u8], dns: Option<(u16, u16)>) -> Result<String, ProbeError> {
    let target = SocketAddr::new(spec.addr, spec.port);
    let domain = if spec.addr.is_ipv4() { Domain::IPV4 } else { Domain::IPV6 };
    let sock = Socket::new(domain, Type::DGRAM, Some(SockProto::UDP)).map_err(io("socket"))?;
    if let Some(src) = spec.source {
        sock.bind(&SockAddr::from(SocketAddr::new(src, 0))).map_err(io(format!("bind {src}")))?;
    }
    sock.connect(&SockAddr::from(target)).map_err(io(format!("connect {target}")))?;
    let sock: std::net::UdpSocket = sock.into();
    sock.send(send).map_err(io("send"))?;
    let mut buf = vec![0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ProbeError::ReadTimeout);
        }
        sock.set_read_timeout(Some(left)).map_err(io("socket"))?;
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return Err(ProbeError::ReadTimeout)
            }
            // ICMP port unreachable arrives as ECONNREFUSED.
            Err(e) => return Err(io("receive")(e)),
        };
        let got = &buf[..n];
        if let Some((id, qtype)) = dns {
            match remote::dns_answers(got, id, qtype) {
                Ok(k) => return Ok(format!("DNS answer with {k} record(s)")),
                // Someone else's datagram: wait for ours.
                Err(remote::DnsAnswerError::NotOurs) => continue,
                Err(e) => return Err(ProbeError::Answer(e.to_string())),
            }
        }
        return if expect.is_empty() || remote::contains(got, expect) {
            Ok(format!("UDP reply {}", remote::printable(got, remote::SNIPPET)))
        } else {
            Err(ProbeError::Answer(format!(
                "expected {}, got {}",
                remote::printable(expect, remote::SNIPPET),
                remote::printable(got, remote::SNIPPET)
            )))
        };
    }
}

/// keepalived's DNS_CHECK: a query for `name`/`qtype`, a NOERROR answer
/// with at least one such record.
fn dns(spec: &ProbeSpec, deadline: Instant, name: &str, qtype: u16) -> Result<String, ProbeError> {
    // The id only has to tell our answer from stray datagrams.
    let id = u16::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos() & 0xffff)
        .unwrap_or(1);
    let q = remote::dns_query(id, name, qtype).ok_or_else(|| ProbeError::Answer(format!("{name:?} is not a domain name")))?;
    udp(spec, deadline, &q, b"", Some((id, qtype)))
}

/// keepalived's SMTP_CHECK: the banner must be `220`; then QUIT.
fn smtp(spec: &ProbeSpec, deadline: Instant) -> Result<String, ProbeError> {
    let mut s = connect(spec, deadline)?;
    let got = read_until(&mut s, &|b| b.contains(&b'\n') || b.len() > 512)?;
    let line = remote::first_line(&got);
    if line.starts_with(b"220") {
        let _ = s.write_all(b"QUIT\r\n");
        Ok(format!("SMTP {}", remote::printable(line, remote::SNIPPET)))
    } else {
        Err(ProbeError::Answer(format!("SMTP banner {}", remote::printable(line, remote::SNIPPET))))
    }
}

/// Reads the agent's one line (HAProxy's agent-check).
fn feedback(spec: &ProbeSpec, deadline: Instant) -> Result<(String, AgentSays), ProbeError> {
    let mut s = connect(spec, deadline)?;
    let got = read_until(&mut s, &|b| b.contains(&b'\n') || b.len() > 512)?;
    let line = remote::first_line(&got);
    match remote::parse_agent(line) {
        Some(a) => Ok((format!("agent: {} ({a:?})", remote::printable(line, remote::SNIPPET)), a)),
        None => Err(ProbeError::Answer(format!("agent said {}", remote::printable(line, remote::SNIPPET)))),
    }
}

/// Runs one probe to completion (or its deadline).
pub fn run_probe(spec: &ProbeSpec) -> ProbeResult {
    crate::fault::injection_point(crate::fault::Task::Probe);
    let start = Instant::now();
    let deadline = start + spec.timeout;
    let r = match &spec.kind {
        ProbeKind::Tcp => connect(spec, deadline).map(|_| ("TCP connect".to_string(), None)),
        ProbeKind::Http { tls, path, host, status, body } => {
            http(spec, deadline, *tls, path, host, status, body.as_deref()).map(|m| (m, None))
        }
        ProbeKind::SendExpect { send, expect } => send_expect(spec, deadline, send, expect).map(|m| (m, None)),
        ProbeKind::Command(argv) => command(spec, deadline, argv).map(|m| (m, None)),
        ProbeKind::Feedback => feedback(spec, deadline).map(|(m, a)| (m, Some(a))),
        ProbeKind::Udp { send, expect } => udp(spec, deadline, send.as_bytes(), expect.as_bytes(), None).map(|m| (m, None)),
        ProbeKind::Dns { name, qtype } => dns(spec, deadline, name, *qtype).map(|m| (m, None)),
        ProbeKind::Smtp => smtp(spec, deadline).map(|m| (m, None)),
    };
    let took = start.elapsed();
    match r {
        Ok((message, agent)) => ProbeResult { id: spec.id(), ok: true, message, took, agent },
        Err(e) => ProbeResult { id: spec.id(), ok: false, message: e.to_string(), took, agent: None },
    }
}

#[derive(Debug)]
struct Due(Instant, ProbeId);

impl PartialEq for Due {
    fn eq(&self, o: &Self) -> bool {
        self.0 == o.0
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Due {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        o.0.cmp(&self.0) // min-heap on time
    }
}

#[derive(Debug, Default)]
struct Shared {
    specs: HashMap<ProbeId, ProbeSpec>,
    added: Vec<ProbeId>,
    running: HashSet<ProbeId>,
    /// Failed probes with a `delay_before_retry`: when to run them again.
    retry: Vec<(ProbeId, Instant)>,
}

/// Most probe threads a [`Checker`] grows to (each idle one costs a
/// parked thread; probes beyond this wait for a free one).
pub const MAX_PROBE_THREADS: usize = 256;

/// Runs one probe; [`run_probe`] in rvsd, something else in tests.
pub type ProbeRunner = Arc<dyn Fn(&ProbeSpec) -> ProbeResult + Send + Sync>;

/// The probe scheduler and its pool.
///
/// Each probe runs isolated: a panic inside one (a bug met by some
/// server's answer) is caught, reported as that probe's failure with the
/// panic's message, and counted in [`Checker::faults`]; the pool thread
/// goes on with the next probe, and forwarding never notices.
pub struct Checker {
    shared: Arc<Mutex<Shared>>,
    results: Receiver<ProbeResult>,
    stop: Arc<AtomicBool>,
    faults: Arc<AtomicU64>,
    threads: Arc<Mutex<Vec<std::thread::JoinHandle<()>>>>,
    pool: Arc<Pool>,
}

/// The probe threads: how many, how many wait for work.
#[derive(Debug, Default)]
struct Pool {
    threads: std::sync::atomic::AtomicUsize,
    idle: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for Checker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checker").field("faults", &self.faults()).finish_non_exhaustive()
    }
}

/// Runs `runner` for `spec`, turning a panic into a failed result.
fn run_isolated(runner: &ProbeRunner, spec: &ProbeSpec, faults: &AtomicU64) -> ProbeResult {
    let start = Instant::now();
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runner(spec))) {
        Ok(r) => r,
        Err(p) => {
            faults.fetch_add(1, Ordering::Relaxed);
            crate::fault::record(crate::fault::Task::Probe);
            let msg = crate::fault::panic_message(p.as_ref());
            log::warn!("health: fault contained in the probe of {} port {} (check failed, counted): {msg}", spec.addr, spec.port);
            ProbeResult {
                id: spec.id(),
                ok: false,
                message: format!("probe fault (counted, check failed): {msg}"),
                took: start.elapsed(),
                agent: None,
            }
        }
    }
}

impl Checker {
    /// Starts the scheduler and `pool` probe threads running [`run_probe`].
    pub fn start(pool: usize) -> Checker {
        Checker::start_with(pool, Arc::new(run_probe))
    }

    /// Starts the scheduler and `pool` probe threads running `runner`
    /// (more are started while every one is busy, up to
    /// [`MAX_PROBE_THREADS`]).
    pub fn start_with(pool: usize, runner: ProbeRunner) -> Checker {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let faults = Arc::new(AtomicU64::new(0));
        let (job_tx, job_rx): (Sender<ProbeSpec>, Receiver<ProbeSpec>) = unbounded();
        let (res_tx, res_rx) = unbounded();
        let threads = Arc::new(Mutex::new(Vec::new()));
        let counts = Arc::new(Pool::default());
        let spawn = {
            let (threads, counts, shared, faults) = (threads.clone(), counts.clone(), shared.clone(), faults.clone());
            move || {
                let i = counts.threads.fetch_add(1, Ordering::Relaxed);
                let (jobs, results, sh, runner, faults, pool) =
                    (job_rx.clone(), res_tx.clone(), shared.clone(), runner.clone(), faults.clone(), counts.clone());
                let t = std::thread::Builder::new().name(format!("rvs-probe{i}")).spawn(move || loop {
                    pool.idle.fetch_add(1, Ordering::Relaxed);
                    let got = jobs.recv();
                    pool.idle.fetch_sub(1, Ordering::Relaxed);
                    let Ok(spec) = got else { return };
                    let r = run_isolated(&runner, &spec, &faults);
                    {
                        let mut s = sh.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                        s.running.remove(&spec.id());
                        // A probe removed while it ran reports nothing.
                        if s.specs.get(&spec.id()) != Some(&spec) {
                            continue;
                        }
                        // keepalived's delay_before_retry: a failed check
                        // runs again after this, not after the interval.
                        if let (false, Some(d)) = (r.ok, spec.retry) {
                            s.retry.push((spec.id(), Instant::now() + d));
                        }
                    }
                    if results.send(r).is_err() {
                        return;
                    }
                });
                match t {
                    Ok(t) => threads.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(t),
                    Err(e) => {
                        counts.threads.fetch_sub(1, Ordering::Relaxed);
                        log::warn!("health: no new probe thread: {e}");
                    }
                }
            }
        };
        for _ in 0..pool.max(1) {
            spawn();
        }
        let (sh, st, counts2) = (shared.clone(), stop.clone(), counts.clone());
        let sched = std::thread::Builder::new().name("rvs-health".into()).spawn(move || {
            let mut heap: BinaryHeap<Due> = BinaryHeap::new();
            // The one due time of each probe that counts: heap entries with
            // another (a probe changed, or rescheduled for a retry) are stale.
            let mut next: HashMap<ProbeId, Instant> = HashMap::new();
            let mut n = 0u32;
            while !st.load(Ordering::Relaxed) {
                let now = Instant::now();
                {
                    let mut s = sh.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    // New probes start at once, spread a little so a large
                    // configuration does not probe everything together.
                    for id in std::mem::take(&mut s.added) {
                        n = n.wrapping_add(1);
                        let at = now + Duration::from_millis(u64::from(n % 50) * 2);
                        next.insert(id, at);
                        heap.push(Due(at, id));
                    }
                    for (id, at) in std::mem::take(&mut s.retry) {
                        next.insert(id, at);
                        heap.push(Due(at, id));
                    }
                    while heap.peek().is_some_and(|d| d.0 <= now) {
                        let Some(Due(at, id)) = heap.pop() else { break };
                        if next.get(&id) != Some(&at) {
                            continue;
                        }
                        let Some(spec) = s.specs.get(&id).cloned() else {
                            next.remove(&id);
                            continue;
                        };
                        let due = now + spec.interval;
                        next.insert(id, due);
                        heap.push(Due(due, id));
                        if s.running.insert(id) {
                            // Every thread busy (or about to be, with what
                            // is queued): one more, up to the cap.
                            let queued = job_tx.len();
                            if counts2.idle.load(Ordering::Relaxed) <= queued && counts2.threads.load(Ordering::Relaxed) < MAX_PROBE_THREADS
                            {
                                spawn();
                            }
                            if job_tx.send(spec).is_err() {
                                return;
                            }
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        if let Ok(t) = sched {
            threads.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(t);
        }
        Checker { shared, results: res_rx, stop, faults, threads, pool: counts }
    }

    /// Probe threads running now.
    pub fn threads(&self) -> usize {
        self.pool.threads.load(Ordering::Relaxed)
    }

    /// Probes that panicked (each was reported as a failed check).
    pub fn faults(&self) -> u64 {
        self.faults.load(Ordering::Relaxed)
    }

    /// Replaces the set of probes; new or changed ones run at once.
    pub fn sync(&self, specs: Vec<ProbeSpec>) {
        {
            let mut s = self.shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let new: HashMap<ProbeId, ProbeSpec> = specs.into_iter().map(|p| (p.id(), p)).collect();
            let added: Vec<ProbeId> = new.iter().filter(|(id, p)| s.specs.get(*id) != Some(*p)).map(|(id, _)| *id).collect();
            s.specs = new;
            s.added.extend(added);
        }
    }

    /// Results since the last call.
    pub fn drain(&self) -> Vec<ProbeResult> {
        self.results.try_iter().collect()
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner).specs.clear();
        // The scheduler stops within its 10 ms tick, and with it the job
        // queue; a pool thread ends when its probe does, which its timeout
        // bounds ([`Bounded`]). They are waited for a moment, not for the
        // longest timeout configured: rvsd stops its workers first, so a
        // probe through the kernel interface gets no more answers and
        // runs to its timeout; a thread still running then is left to end
        // on its own (its result goes nowhere). The scheduler may add a
        // thread until it stops: the list is taken again until it is empty.
        let until = Instant::now() + STOP_WAIT;
        loop {
            let (done, running): (Vec<_>, Vec<_>) = self
                .threads
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .drain(..)
                .partition(std::thread::JoinHandle::is_finished);
            for t in done {
                let _ = t.join();
            }
            if running.is_empty() || Instant::now() >= until {
                break;
            }
            self.threads.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend(running);
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// How long dropping a [`Checker`] waits for probes in flight.
const STOP_WAIT: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn spec(port: u16, kind: ProbeKind) -> ProbeSpec {
        let key = (
            config::ServiceKey { protocol: config::Protocol::Tcp, vip: "127.0.0.1".parse().unwrap(), port: 1 },
            "127.0.0.1".parse().unwrap(),
            port,
        );
        ProbeSpec {
            key,
            feedback: false,
            check: 0,
            addr: "127.0.0.1".parse().unwrap(),
            port,
            source: None,
            kind,
            interval: Duration::from_millis(100),
            timeout: Duration::from_millis(500),
            retry: None,
        }
    }

    fn serve(answer: &'static str) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let mut s = s;
                let mut b = [0u8; 1024];
                let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
                let _ = s.read(&mut b);
                let _ = s.write_all(answer.as_bytes());
            }
        });
        port
    }

    /// A UDP server on loopback answering each datagram with `answer(it)`.
    fn serve_udp(answer: fn(&[u8]) -> Vec<u8>) -> u16 {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = s.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let mut b = [0u8; 2048];
            while let Ok((n, from)) = s.recv_from(&mut b) {
                let _ = s.send_to(&answer(&b[..n]), from);
            }
        });
        port
    }

    #[test]
    fn udp_dns_and_smtp_probes_against_local_servers() {
        let echo = serve_udp(|d| d.to_vec());
        let udp = |send: &str, expect: &str| run_probe(&spec(echo, ProbeKind::Udp { send: send.into(), expect: expect.into() }));
        assert!(udp("PING", "PING").ok);
        assert!(udp("PING", "").ok, "any reply");
        let r = udp("PING", "PONG");
        assert!(!r.ok && r.message.contains("expected \"PONG\""), "{r:?}");
        let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let r = run_probe(&spec(closed, ProbeKind::Udp { send: "x".into(), expect: String::new() }));
        assert!(!r.ok, "{r:?}");
        // A DNS server answering every query with one A record.
        let dns = serve_udp(|q| {
            let mut r = q.to_vec();
            r[2] = 0x81;
            r[3] = 0x80;
            r[7] = 1;
            r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 198, 18, 1, 11]);
            r
        });
        let r = run_probe(&spec(dns, ProbeKind::Dns { name: "rs.test".into(), qtype: 1 }));
        assert!(r.ok && r.message.contains("1 record"), "{r:?}");
        let r = run_probe(&spec(dns, ProbeKind::Dns { name: "rs.test".into(), qtype: 28 }));
        assert!(!r.ok && r.message.contains("no AAAA record"), "{r:?}");
        let smtp = serve("220 mail.rs.test ESMTP\r\n");
        let r = run_probe(&spec(smtp, ProbeKind::Smtp));
        assert!(r.ok && r.message.contains("220 mail.rs.test"), "{r:?}");
        let r = run_probe(&spec(serve("554 go away\r\n"), ProbeKind::Smtp));
        assert!(!r.ok && r.message.contains("554"), "{r:?}");
    }

    #[test]
    fn probes_against_local_servers() {
        let http = serve("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        let ok = run_probe(&spec(
            http,
            ProbeKind::Http { tls: false, path: "/".into(), host: "x".into(), status: vec![200], body: Some("ok".into()) },
        ));
        assert!(ok.ok, "{ok:?}");
        let bad = run_probe(&spec(http, ProbeKind::Http { tls: false, path: "/".into(), host: "x".into(), status: vec![204], body: None }));
        assert!(!bad.ok && bad.message.contains("HTTP 200"), "{bad:?}");
        let body = run_probe(&spec(
            http,
            ProbeKind::Http { tls: false, path: "/".into(), host: "x".into(), status: vec![200], body: Some("nope".into()) },
        ));
        assert!(!body.ok, "{body:?}");
        let pong = serve("PONG rs1\n");
        assert!(run_probe(&spec(pong, ProbeKind::SendExpect { send: "PING\n".into(), expect: "PONG".into() })).ok);
        let wrong = run_probe(&spec(pong, ProbeKind::SendExpect { send: "PING\n".into(), expect: "PANG".into() }));
        assert!(!wrong.ok && wrong.took < Duration::from_millis(300), "a wrong answer line fails before the timeout: {wrong:?}");
        let agent = serve("60%\n");
        let mut f = spec(agent, ProbeKind::Feedback);
        f.feedback = true;
        assert_eq!(run_probe(&f).agent, Some(AgentSays::Percent(60)));
        assert!(run_probe(&spec(pong, ProbeKind::Tcp)).ok);
        // A closed port fails at once; a command's status decides.
        let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        assert!(!run_probe(&spec(closed, ProbeKind::Tcp)).ok);
        assert!(run_probe(&spec(1, ProbeKind::Command(vec!["true".into()]))).ok);
        assert!(!run_probe(&spec(1, ProbeKind::Command(vec!["false".into()]))).ok);
        let slow = run_probe(&spec(1, ProbeKind::Command(vec!["sleep".into(), "5".into()])));
        assert!(!slow.ok && slow.took < Duration::from_secs(2), "{slow:?}");
    }

    /// A TLS server with a fresh self-signed certificate answering each
    /// request with `answer`.
    fn serve_tls(answer: &'static str) -> u16 {
        let ck = rcgen::generate_simple_self_signed(vec!["rs.test".to_string()]).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into());
        let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![ck.cert.der().clone()], key)
            .unwrap();
        let cfg = Arc::new(cfg);
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let conn = rustls::ServerConnection::new(cfg.clone()).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, s);
                let mut req = Vec::new();
                let mut b = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut b) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&b[..n]),
                    }
                }
                let _ = tls.write_all(answer.as_bytes());
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        });
        port
    }

    #[test]
    fn https_probe_completes_a_tls_handshake_and_checks_status_and_body() {
        let port = serve_tls("HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\nhealthy");
        let https = |status: Vec<u16>, body: Option<&str>| {
            run_probe(&spec(
                port,
                ProbeKind::Http { tls: true, path: "/health".into(), host: "rs.test".into(), status, body: body.map(str::to_string) },
            ))
        };
        let ok = https(vec![200], Some("healthy"));
        assert!(ok.ok, "{ok:?}");
        let bad_status = https(vec![204], None);
        assert!(!bad_status.ok && bad_status.message.contains("HTTP 200"), "{bad_status:?}");
        assert!(!https(vec![200], Some("sick")).ok);
        // Plain TCP to a TLS port is not an HTTP answer; TLS to a plain
        // HTTP port fails the handshake.
        let plain = serve("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        let r =
            run_probe(&spec(plain, ProbeKind::Http { tls: true, path: "/".into(), host: "rs.test".into(), status: vec![200], body: None }));
        assert!(!r.ok && r.message.contains("TLS"), "{r:?}");
    }

    /// A server that accepts and then stalls: `first` is sent at once,
    /// then one byte of `trickle` every 100 ms; the connection is held
    /// open for 5 s either way.
    fn serve_stalling(first: &'static [u8], trickle: &'static [u8]) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut s = s;
                    let _ = s.write_all(first);
                    let end = Instant::now() + Duration::from_secs(5);
                    for b in trickle.iter().cycle() {
                        if Instant::now() > end || s.write_all(std::slice::from_ref(b)).is_err() {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    std::thread::sleep(end.saturating_duration_since(Instant::now()));
                });
            }
        });
        port
    }

    /// Every probe ends within its timeout whatever the server does after
    /// accepting: silence during the TLS handshake (the handshake's reads
    /// once had no timeout at all, so such a server held a probe thread,
    /// and rvsd's stop, for as long as it kept the connection), a TLS
    /// record trickled a byte at a time (each socket read succeeds, inside
    /// one rustls read), and the same trickle and silence over plain TCP.
    #[test]
    fn a_stalling_server_cannot_hold_a_probe_past_its_timeout() {
        // A TLS handshake record header announcing 16 KiB, then its body
        // a byte every 100 ms.
        let record: &[u8] = &[0x16, 0x03, 0x03, 0x40, 0x00];
        let cases = [
            ("https, silent", serve_stalling(b"", b""), true),
            ("https, a record trickled", serve_stalling(record, b"\x00"), true),
            ("http, silent", serve_stalling(b"", b""), false),
            ("http, an answer trickled", serve_stalling(b"HTTP/1.1 200 OK\r\n", b"X-A: b\r\n"), false),
        ];
        let (tx, rx) = std::sync::mpsc::channel();
        for (what, port, tls) in cases {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let r = run_probe(&spec(
                    port,
                    ProbeKind::Http { tls, path: "/".into(), host: "rs.test".into(), status: vec![200], body: None },
                ));
                let _ = tx.send((what, r));
            });
        }
        for _ in 0..4 {
            // 500 ms timeout; a bound well short of the servers' 5 s.
            let (what, r) = rx.recv_timeout(Duration::from_secs(3)).expect("a probe outlived its timeout by seconds");
            assert!(!r.ok && r.took < Duration::from_millis(1500), "{what}: {r:?}");
            assert!(r.message.contains("timed out"), "{what}: {r:?}");
        }
    }

    /// Dropping the checker (rvsd stopping) waits for probes in flight a
    /// moment, not for their timeout: a probe held by a silent server with
    /// a 30 s timeout does not hold the stop.
    #[test]
    fn a_probe_in_flight_does_not_hold_the_stop() {
        let port = serve_stalling(b"", b"");
        let c = Checker::start(1);
        let mut p = spec(port, ProbeKind::Http { tls: true, path: "/".into(), host: "rs.test".into(), status: vec![200], body: None });
        p.timeout = Duration::from_secs(30);
        c.sync(vec![p]);
        std::thread::sleep(Duration::from_millis(300));
        let t = Instant::now();
        drop(c);
        assert!(t.elapsed() < STOP_WAIT + Duration::from_millis(500), "the stop waited {:?}", t.elapsed());
    }

    /// A probe that panics (injected here) fails its check, is counted,
    /// and the checker goes on running every probe, the faulty one too.
    #[test]
    fn a_panicking_probe_fails_its_check_and_is_counted() {
        let good = serve("x");
        let runner: ProbeRunner = Arc::new(move |s: &ProbeSpec| {
            if s.port != good {
                panic!("injected fault for port {}", s.port);
            }
            run_probe(s)
        });
        let c = Checker::start_with(1, runner);
        c.sync(vec![spec(good, ProbeKind::Tcp), spec(1, ProbeKind::Tcp)]);
        // Until each has run three times (a panic's backtrace can take a
        // few hundred ms to print on a loaded machine), within a bound.
        let mut r = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            r.extend(c.drain());
            let n = |p: u16| r.iter().filter(|x: &&ProbeResult| x.id.0 .2 == p).count();
            if n(1) >= 3 && n(good) >= 3 {
                break;
            }
        }
        let bad: Vec<_> = r.iter().filter(|x| x.id.0 .2 == 1).collect();
        let ok: Vec<_> = r.iter().filter(|x| x.id.0 .2 == good).collect();
        assert!(bad.len() >= 3 && bad.iter().all(|x| !x.ok && x.message.contains("injected fault")), "{bad:?}");
        assert!(ok.len() >= 3 && ok.iter().all(|x| x.ok), "the single pool thread survived every fault: {ok:?}");
        assert!(c.faults() >= bad.len() as u64, "every fault counted: {} < {}", c.faults(), bad.len());
    }

    /// Twelve servers that hold every check for its whole timeout (a
    /// black hole) cannot delay the check of a healthy one: the pool grows
    /// past its two first threads, and the healthy server is checked at its
    /// interval throughout.
    #[test]
    fn black_holed_servers_do_not_delay_the_checks_of_healthy_ones() {
        let runner: ProbeRunner = Arc::new(move |s: &ProbeSpec| {
            if s.port != 100 {
                std::thread::sleep(s.timeout);
                return ProbeResult { id: s.id(), ok: false, message: "timeout".into(), took: s.timeout, agent: None };
            }
            ProbeResult { id: s.id(), ok: true, message: "ok".into(), took: Duration::ZERO, agent: None }
        });
        let c = Checker::start_with(2, runner);
        let every = |port: u16| {
            let mut p = spec(port, ProbeKind::Tcp);
            p.interval = Duration::from_millis(100);
            p.timeout = Duration::from_millis(600);
            p
        };
        let mut specs: Vec<ProbeSpec> = (1..=12).map(every).collect();
        specs.push(every(100));
        c.sync(specs);
        std::thread::sleep(Duration::from_millis(1500));
        let r = c.drain();
        let healthy = r.iter().filter(|x| x.id.0 .2 == 100).count();
        // Every 100 ms for 1.5 s: 15 if nothing waits; a fixed pool of two
        // would manage about one in 0.6 s x 12 / 2 = 3.6 s.
        assert!(healthy >= 10, "the healthy server was checked {healthy} times in 1.5 s ({} threads)", c.threads());
        assert!(c.threads() > 2 && c.threads() <= MAX_PROBE_THREADS, "{} threads", c.threads());
    }

    /// keepalived's delay_before_retry: a failing probe runs again after
    /// the retry delay (50 ms), not after its interval (1 s); a passing
    /// one keeps the interval.
    #[test]
    fn a_failed_check_is_retried_after_delay_before_retry() {
        let runner: ProbeRunner = Arc::new(|s: &ProbeSpec| ProbeResult {
            id: s.id(),
            ok: s.port == 100,
            message: String::new(),
            took: Duration::ZERO,
            agent: None,
        });
        let c = Checker::start_with(2, runner);
        let with_retry = |port: u16| {
            let mut p = spec(port, ProbeKind::Tcp);
            p.interval = Duration::from_secs(1);
            p.retry = Some(Duration::from_millis(50));
            p
        };
        c.sync(vec![with_retry(1), with_retry(100)]);
        std::thread::sleep(Duration::from_millis(700));
        let r = c.drain();
        let n = |p: u16| r.iter().filter(|x| x.id.0 .2 == p).count();
        assert!(n(1) >= 6, "the failing probe ran {} times in 0.7 s", n(1));
        assert_eq!(n(100), 1, "the passing probe waits its interval");
    }

    #[test]
    fn checker_runs_probes_periodically() {
        let port = serve("x");
        let c = Checker::start(2);
        c.sync(vec![spec(port, ProbeKind::Tcp)]);
        std::thread::sleep(Duration::from_millis(450));
        let r = c.drain();
        assert!(r.len() >= 3 && r.iter().all(|x| x.ok), "{r:?}");
        c.sync(Vec::new());
        std::thread::sleep(Duration::from_millis(250));
        let _ = c.drain();
        std::thread::sleep(Duration::from_millis(250));
        assert!(c.drain().is_empty(), "removed probes stop");
    }
}
