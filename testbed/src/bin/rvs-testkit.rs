//! rvs-testkit: real servers and clients for rvs's end-to-end tests and demo.
//!
//! All traffic uses ordinary kernel sockets, run inside the bed's network
//! namespaces with `ip netns exec`.
//!
//! * `serve --name rs1 --http ADDR --udp ADDR --tcp-echo ADDR` - an HTTP/1.1
//!   server (keep-alive; `GET /status/NNN` answers with that status; every
//!   response carries `X-Real-Server: rs1` and the body `rs1\n`), a UDP echo
//!   (`rs1 <payload>`) and a line-oriented TCP responder (`PING` -> `PONG rs1`).
//!   It exits when its parent does.
//! * `http --url URL --count N [--concurrency C] [--source-port P]` - N
//!   requests (request i from port P + i when given), each on a new
//!   connection; prints JSON `{ok, failed, by_server, errors}`.
//! * `udp --target ADDR --count N` - N echoes, each from a new socket (a new
//!   flow); prints the same JSON.
//! * `hold --url URL --conns N --seconds S` - N keep-alive connections, each
//!   sending a request every 200 ms for S seconds; prints per-connection
//!   results and which server each stayed on.
//! * `failover --url URL --conns N --interval-ms I --seconds S [--udp ADDR
//!   --udp-flows M] [--new-per-s K [--new-timeout-ms T]]` - the load of a
//!   failover test: N keep-alive connections, each sending a request every
//!   I ms; M UDP flows (one socket each), each sending an echo every I ms;
//!   K new connections a second, one request each, failed when connecting
//!   or answering takes longer than T ms (500). Prints JSON: per long-lived
//!   connection whether it survived and every silence longer than 3 I
//!   (epoch milliseconds), per UDP flow its answers and last answer, and
//!   the new connections that failed and when.
//! * `vrrp --from ADDR --vrid V --priority P --count N --interval-ms I
//!   [--tag none|bad]` - VRRPv3 adverts to 224.0.0.18 as a third router
//!   would send them (a forger: without an authentication trailer, or with
//!   a trailer whose tag is wrong).
//! * `ha-junk --from ADDR --vrid V --sync-port P` - malformed VRRP
//!   (truncated, wrong version, wrong checksum, TTL below 255, unknown
//!   VRID, trailing bytes) and sync datagrams (truncated, wrong version,
//!   wrong size, unknown kind, another sync id, records for services no
//!   balancer has) to the VRRP and sync multicast groups.
//! * `flood --syn|--udp --to VIP:PORT --net A.B.C.0/24 --seconds S` - a
//!   spoofed-source flood as fast as a raw socket sends: SYNs (or 18-byte
//!   UDP datagrams) from random addresses of the /24 (hosts 20-250) and
//!   random ports; prints the count sent.
//! * `decap` - a userspace IP-in-IP decapsulator for a real server in tunnel
//!   mode (these kernels have no ipip/ip6_tunnel modules): raw sockets
//!   receive protocol 4 and 41 over IPv4 and IPv6, and the inner packet is
//!   re-sent with IP_HDRINCL / IPV6_HDRINCL to its destination (the VIP,
//!   held on the server's loopback), which delivers it to the local stack.
//!
//! The HTTP server answers `GET /bytes/N` with an N-byte body and reads a
//! request body (Content-Length); `http --post-bytes N` sends one. With
//! `serve --down-file F`, while F exists `GET /health` answers 503 and the
//! TCP responder answers `DOWN`; `serve --agent ADDR --agent-file F` runs a
//! feedback agent answering F's first line (HAProxy agent-check style).
//! `http --retries N` retries a request that failed to connect or was
//! reset, as a browser or an HTTP library would.
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn die(msg: &str) -> ! {
    eprintln!("rvs-testkit: {msg}");
    std::process::exit(2)
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn flags(args: &[String], name: &str) -> Vec<String> {
    args.iter().enumerate().filter(|(_, a)| *a == name).filter_map(|(i, _)| args.get(i + 1).cloned()).collect()
}

fn num(args: &[String], name: &str, default: u64) -> u64 {
    flag(args, name).map(|v| v.parse().unwrap_or_else(|_| die(&format!("{name} {v}: not a number")))).unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => serve(&args),
        Some("http") => http(&args),
        Some("udp") => udp(&args),
        Some("hold") => hold(&args),
        Some("failover") => failover(&args),
        Some("vrrp") => vrrp_adverts(&args),
        Some("ha-junk") => ha_junk(&args),
        Some("decap") => decap(),
        Some("flood") => flood(&args),
        _ => die("usage: rvs-testkit serve|http|udp|hold|failover|vrrp|ha-junk|flood|decap ..."),
    }
}

fn parse_addr(s: &str) -> SocketAddr {
    s.to_socket_addrs().ok().and_then(|mut a| a.next()).unwrap_or_else(|| die(&format!("{s}: not an address")))
}

fn is_down(f: &Option<String>) -> bool {
    f.as_ref().is_some_and(|p| std::path::Path::new(p).exists())
}

fn serve(args: &[String]) {
    let name = flag(args, "--name").unwrap_or_else(|| "rs".into());
    let down = flag(args, "--down-file");
    let parent = std::os::unix::process::parent_id();
    for a in flags(args, "--http") {
        let l = TcpListener::bind(parse_addr(&a)).unwrap_or_else(|e| die(&format!("bind {a}: {e}")));
        let (name, down) = (name.clone(), down.clone());
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let (name, down) = (name.clone(), down.clone());
                std::thread::spawn(move || http_conn(s, &name, &down));
            }
        });
    }
    if let Some(a) = flag(args, "--agent") {
        let l = TcpListener::bind(parse_addr(&a)).unwrap_or_else(|e| die(&format!("bind {a}: {e}")));
        let file = flag(args, "--agent-file");
        std::thread::spawn(move || {
            for mut s in l.incoming().flatten() {
                let line = file
                    .as_ref()
                    .and_then(|f| std::fs::read_to_string(f).ok())
                    .and_then(|t| t.lines().next().map(str::to_string))
                    .unwrap_or_else(|| "up".into());
                let _ = s.write_all(format!("{line}\n").as_bytes());
            }
        });
    }
    for a in flags(args, "--udp") {
        let s = UdpSocket::bind(parse_addr(&a)).unwrap_or_else(|e| die(&format!("bind {a}: {e}")));
        let name = name.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while let Ok((n, from)) = s.recv_from(&mut buf) {
                let mut reply = format!("{name} ").into_bytes();
                reply.extend_from_slice(&buf[..n]);
                let _ = s.send_to(&reply, from);
            }
        });
    }
    for a in flags(args, "--tcp-echo") {
        let l = TcpListener::bind(parse_addr(&a)).unwrap_or_else(|e| die(&format!("bind {a}: {e}")));
        let (name, down) = (name.clone(), down.clone());
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let (name, down) = (name.clone(), down.clone());
                std::thread::spawn(move || {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
                    let mut w = match s.try_clone() {
                        Ok(w) => w,
                        Err(_) => return,
                    };
                    for line in BufReader::new(s).lines() {
                        let Ok(line) = line else { return };
                        let out = if is_down(&down) {
                            "DOWN\n".to_string()
                        } else if line.trim() == "PING" {
                            format!("PONG {name}\n")
                        } else {
                            format!("ECHO {name} {line}\n")
                        };
                        if w.write_all(out.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
    }
    println!("{name} serving");
    loop {
        std::thread::sleep(Duration::from_millis(200));
        if std::os::unix::process::parent_id() != parent {
            std::process::exit(0);
        }
    }
}

fn http_conn(s: TcpStream, name: &str, down: &Option<String>) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
    let Ok(mut w) = s.try_clone() else { return };
    let mut r = BufReader::new(s);
    loop {
        let mut request = String::new();
        match r.read_line(&mut request) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut close = false;
        let mut content_length = 0usize;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let t = h.trim();
            if t.is_empty() {
                break;
            }
            if t.eq_ignore_ascii_case("connection: close") {
                close = true;
            }
            if let Some(v) = t.strip_prefix("Content-Length: ") {
                content_length = v.parse().unwrap_or(0);
            }
        }
        if content_length > 0 {
            let mut body = vec![0u8; content_length];
            if r.read_exact(&mut body).is_err() {
                return;
            }
        }
        let path = request.split_whitespace().nth(1).unwrap_or("/");
        let status: u16 = if path == "/health" && is_down(down) {
            503
        } else {
            path.strip_prefix("/status/").and_then(|c| c.parse().ok()).unwrap_or(200)
        };
        let body = match path.strip_prefix("/bytes/").and_then(|n| n.parse::<usize>().ok()) {
            Some(n) => {
                let mut b = format!("{name}\n").into_bytes();
                b.resize(n.max(b.len()), b'.');
                String::from_utf8(b).unwrap_or_default()
            }
            None => format!("{name}\n"),
        };
        let resp = format!(
            "HTTP/1.1 {status} X\r\nX-Real-Server: {name}\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n{body}",
            body.len(),
            if close { "close" } else { "keep-alive" }
        );
        if w.write_all(resp.as_bytes()).is_err() || close {
            return;
        }
    }
}

/// Splits "http://host:port/path".
fn split_url(url: &str) -> (SocketAddr, String) {
    let rest = url.strip_prefix("http://").unwrap_or_else(|| die("only http:// URLs"));
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    let hp = if hostport.starts_with('[') || hostport.matches(':').count() == 1 { hostport.to_string() } else { format!("{hostport}:80") };
    let hp = if hp.starts_with('[') && !hp.contains("]:") { format!("{hp}:80") } else { hp };
    (parse_addr(&hp), path)
}

/// One request on an open connection; returns the X-Real-Server value.
fn request(s: &mut BufReader<TcpStream>, path: &str, keep: bool) -> Result<String, String> {
    request_body(s, path, keep, 0)
}

/// One request, with a `post` -byte body when `post` > 0.
fn request_body(s: &mut BufReader<TcpStream>, path: &str, keep: bool, post: usize) -> Result<String, String> {
    let method = if post > 0 { "POST" } else { "GET" };
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: rvs\r\nConnection: {}\r\n", if keep { "keep-alive" } else { "close" }).into_bytes();
    if post > 0 {
        req.extend_from_slice(format!("Content-Length: {post}\r\n").as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    req.resize(req.len() + post, b'p');
    s.get_mut().write_all(&req).map_err(|e| format!("send: {e}"))?;
    let mut status = String::new();
    s.read_line(&mut status).map_err(|e| format!("status: {e}"))?;
    if !status.starts_with("HTTP/1.1 ") {
        return Err(format!("bad status line {status:?}"));
    }
    let mut server = String::new();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        if s.read_line(&mut h).map_err(|e| format!("header: {e}"))? == 0 {
            return Err("connection closed in headers".into());
        }
        let t = h.trim();
        if t.is_empty() {
            break;
        }
        if let Some(v) = t.strip_prefix("X-Real-Server: ") {
            server = v.to_string();
        }
        if let Some(v) = t.strip_prefix("Content-Length: ") {
            len = v.parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).map_err(|e| format!("body: {e}"))?;
    let code = status.split_whitespace().nth(1).unwrap_or("");
    if code != "200" {
        return Err(format!("HTTP {code} from {server}"));
    }
    Ok(server)
}

#[derive(Default)]
struct Tally {
    ok: u64,
    failed: u64,
    by: BTreeMap<String, u64>,
    errors: Vec<String>,
}

impl Tally {
    fn add(&mut self, r: Result<String, String>) {
        match r {
            Ok(s) => {
                self.ok += 1;
                *self.by.entry(s).or_insert(0) += 1;
            }
            Err(e) => {
                self.failed += 1;
                if self.errors.len() < 10 {
                    self.errors.push(e);
                }
            }
        }
    }
    fn print(&self, extra: serde_json::Value) {
        let mut v = serde_json::json!({"ok": self.ok, "failed": self.failed, "by_server": self.by, "errors": self.errors});
        if let (Some(m), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            for (k, x) in e {
                m.insert(k.clone(), x.clone());
            }
        }
        println!("{v}");
    }
}

fn http(args: &[String]) {
    let url = flag(args, "--url").unwrap_or_else(|| die("--url required"));
    let count = num(args, "--count", 100);
    let conc = num(args, "--concurrency", 1).max(1);
    let timeout = Duration::from_millis(num(args, "--timeout-ms", 3000));
    let gap = Duration::from_millis(num(args, "--gap-ms", 0));
    let post = rvs_wire::num::sat_usize(num(args, "--post-bytes", 0));
    let retries = num(args, "--retries", 0);
    // Request i comes from this port + i (rvsadm explain's test names each
    // flow before it opens).
    let sport = flag(args, "--source-port").map(|p| p.parse::<u16>().unwrap_or_else(|_| die("--source-port: a port")));
    let retried = Arc::new(AtomicU64::new(0));
    let (addr, path) = split_url(&url);
    let next = Arc::new(AtomicU64::new(0));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let order = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let threads: Vec<_> = (0..conc)
        .map(|_| {
            let (next, tally, order, path, retried) = (next.clone(), tally.clone(), order.clone(), path.clone(), retried.clone());
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return;
                }
                let once = || {
                    connect_from(&addr, sport.map(|p| p.wrapping_add(u16::try_from(i).unwrap_or(0))), timeout).and_then(|s| {
                        s.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
                        s.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
                        request_body(&mut BufReader::new(s), &path, false, post)
                    })
                };
                let mut r = once();
                for _ in 0..retries {
                    if r.is_ok() {
                        break;
                    }
                    retried.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(20));
                    r = once();
                }
                if let Ok(s) = &r {
                    if let Ok(mut o) = order.lock() {
                        o.push(s.clone());
                    }
                }
                if let Ok(mut t) = tally.lock() {
                    t.add(r);
                }
                if !gap.is_zero() {
                    std::thread::sleep(gap);
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    let order = order.lock().map(|o| o.clone()).unwrap_or_default();
    let t = tally.lock().unwrap_or_else(|e| e.into_inner());
    t.print(serde_json::json!({"seconds": start.elapsed().as_secs_f64(), "order": order, "retried": retried.load(Ordering::Relaxed)}));
}

/// A TCP connection to `addr`, from source port `sport` when given.
fn connect_from(addr: &SocketAddr, sport: Option<u16>, timeout: Duration) -> Result<TcpStream, String> {
    let Some(p) = sport else { return TcpStream::connect_timeout(addr, timeout).map_err(|e| format!("connect: {e}")) };
    let domain = if addr.is_ipv4() { socket2::Domain::IPV4 } else { socket2::Domain::IPV6 };
    let s = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP)).map_err(|e| format!("socket: {e}"))?;
    s.set_reuse_address(true).map_err(|e| format!("SO_REUSEADDR: {e}"))?;
    let any: SocketAddr = if addr.is_ipv4() { SocketAddr::from(([0, 0, 0, 0], p)) } else { SocketAddr::from(([0u16; 8], p)) };
    s.bind(&any.into()).map_err(|e| format!("bind port {p}: {e}"))?;
    s.connect_timeout(&(*addr).into(), timeout).map_err(|e| format!("connect: {e}"))?;
    Ok(s.into())
}

fn udp(args: &[String]) {
    let target = parse_addr(&flag(args, "--target").unwrap_or_else(|| die("--target required")));
    let count = num(args, "--count", 100);
    let timeout = Duration::from_millis(num(args, "--timeout-ms", 2000));
    let tries = num(args, "--tries", 3).max(1);
    let bind: SocketAddr = if target.is_ipv4() {
        "0.0.0.0:0".parse().unwrap_or_else(|_| die("bind"))
    } else {
        "[::]:0".parse().unwrap_or_else(|_| die("bind"))
    };
    let mut t = Tally::default();
    let start = Instant::now();
    // Sockets stay open until the end, so every echo has its own source
    // port (a closed socket's port could be reused: the same flow twice).
    let mut open = Vec::new();
    for i in 0..count {
        let r = (|| -> Result<String, String> {
            let s = UdpSocket::bind(bind).map_err(|e| format!("bind: {e}"))?;
            let s = {
                open.push(s);
                open.last().ok_or("socket")?
            };
            s.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
            let msg = format!("echo-{i}");
            let mut buf = [0u8; 2048];
            for _ in 0..tries {
                s.send_to(msg.as_bytes(), target).map_err(|e| format!("send: {e}"))?;
                if let Ok((n, _)) = s.recv_from(&mut buf) {
                    let reply = String::from_utf8_lossy(&buf[..n]).to_string();
                    let (server, payload) = reply.split_once(' ').ok_or_else(|| format!("bad reply {reply:?}"))?;
                    if payload != msg {
                        return Err(format!("reply {payload:?} to {msg:?}"));
                    }
                    return Ok(server.to_string());
                }
            }
            Err(format!("no reply to {msg} after {tries} tries"))
        })();
        t.add(r);
    }
    t.print(serde_json::json!({"seconds": start.elapsed().as_secs_f64()}));
}

fn hold(args: &[String]) {
    let url = flag(args, "--url").unwrap_or_else(|| die("--url required"));
    let conns = num(args, "--conns", 10);
    let secs = num(args, "--seconds", 5);
    let (addr, path) = split_url(&url);
    let handles: Vec<_> = (0..conns)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || -> serde_json::Value {
                let s = match TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
                    Ok(s) => s,
                    Err(e) => return serde_json::json!({"ok": false, "error": format!("connect: {e}")}),
                };
                let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
                let mut r = BufReader::new(s);
                let end = Instant::now() + Duration::from_secs(secs);
                let mut servers = std::collections::BTreeSet::new();
                let mut requests = 0u64;
                while Instant::now() < end {
                    match request(&mut r, &path, true) {
                        Ok(s) => {
                            servers.insert(s);
                            requests += 1;
                        }
                        Err(e) => return serde_json::json!({"ok": false, "error": e, "requests": requests, "servers": servers}),
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                serde_json::json!({"ok": true, "requests": requests, "servers": servers})
            })
        })
        .collect();
    let results: Vec<serde_json::Value> =
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| serde_json::json!({"ok": false}))).collect();
    let ok = results.iter().filter(|r| r["ok"] == true).count();
    println!("{}", serde_json::json!({"ok": ok, "failed": results.len() - ok, "conns": results}));
}

fn epoch_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// One long-lived connection of `failover`: requests every `every` until
/// `end`; returns whether it survived, its requests and its silences.
fn failover_conn(addr: SocketAddr, path: &str, every: Duration, end: Instant) -> serde_json::Value {
    let s = match TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
        Ok(s) => s,
        Err(e) => return serde_json::json!({"ok": false, "error": format!("connect: {e}")}),
    };
    // Generous: a request caught by the failover is retransmitted by TCP.
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let port = s.local_addr().map_or(0, |a| a.port());
    let mut r = BufReader::new(s);
    let (mut requests, mut last, mut gaps) = (0u64, epoch_ms(), Vec::new());
    // Every real server that answered (one, unless the flow moved).
    let mut servers: Vec<String> = Vec::new();
    let limit = 3 * u64::try_from(every.as_millis()).unwrap_or(u64::MAX);
    while Instant::now() < end {
        match request(&mut r, path, true) {
            Err(e) => {
                return serde_json::json!({"ok": false, "error": e, "requests": requests, "gaps": gaps, "at": epoch_ms(), "servers": servers, "port": port})
            }
            Ok(name) if !servers.contains(&name) => servers.push(name),
            Ok(_) => {}
        }
        let now = epoch_ms();
        if now - last > limit {
            gaps.push([last, now]);
        }
        last = now;
        requests += 1;
        std::thread::sleep(every);
    }
    serde_json::json!({"ok": true, "requests": requests, "gaps": gaps, "servers": servers, "port": port})
}

/// One UDP flow of `failover`.
fn failover_udp(target: SocketAddr, every: Duration, end: Instant) -> serde_json::Value {
    let bind: SocketAddr = if target.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().unwrap_or_else(|_| die("bind"));
    let Ok(s) = UdpSocket::bind(bind) else { return serde_json::json!({"sent": 0, "answered": 0}) };
    let _ = s.set_read_timeout(Some(every));
    let (mut sent, mut answered, mut last) = (0u64, 0u64, 0u64);
    let mut buf = [0u8; 1500];
    while Instant::now() < end {
        if s.send_to(b"flow", target).is_ok() {
            sent += 1;
        }
        let t0 = Instant::now();
        while t0.elapsed() < every {
            if s.recv(&mut buf).is_ok() {
                answered += 1;
                last = epoch_ms();
            }
        }
    }
    serde_json::json!({"sent": sent, "answered": answered, "last": last})
}

fn failover(args: &[String]) {
    let url = flag(args, "--url").unwrap_or_else(|| die("--url required"));
    let (addr, path) = split_url(&url);
    let conns = num(args, "--conns", 100);
    let every = Duration::from_millis(num(args, "--interval-ms", 50));
    let end = Instant::now() + Duration::from_secs(num(args, "--seconds", 10));
    let udp = flag(args, "--udp").map(|a| parse_addr(&a));
    let flows = num(args, "--udp-flows", 0);
    let new_per_s = num(args, "--new-per-s", 0);
    // How long a new connection may take to connect, and then to answer.
    let new_timeout = Duration::from_millis(num(args, "--new-timeout-ms", 500));
    let long: Vec<_> = (0..conns)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || failover_conn(addr, &path, every, end))
        })
        .collect();
    let udp: Vec<_> = udp.map_or_else(Vec::new, |t| (0..flows).map(|_| std::thread::spawn(move || failover_udp(t, every, end))).collect());
    let fresh = (new_per_s > 0).then(|| {
        let path = path.clone();
        std::thread::spawn(move || {
            let gap = Duration::from_millis(1000 / new_per_s);
            let (mut ok, mut failed) = (0u64, Vec::new());
            while Instant::now() < end {
                let t = epoch_ms();
                let r = TcpStream::connect_timeout(&addr, new_timeout).map_err(|e| e.to_string()).and_then(|s| {
                    let _ = s.set_read_timeout(Some(new_timeout));
                    request(&mut BufReader::new(s), &path, false)
                });
                match r {
                    Ok(_) => ok += 1,
                    Err(_) => failed.push(t),
                }
                std::thread::sleep(gap);
            }
            serde_json::json!({"ok": ok, "failed": failed})
        })
    });
    let join = |h: std::thread::JoinHandle<serde_json::Value>| h.join().unwrap_or_else(|_| serde_json::json!({"ok": false}));
    let long: Vec<serde_json::Value> = long.into_iter().map(join).collect();
    let udp: Vec<serde_json::Value> = udp.into_iter().map(join).collect();
    let fresh = fresh.map(join);
    println!("{}", serde_json::json!({"long": long, "udp": udp, "new": fresh}));
}

/// A raw socket for VRRP (IP protocol 112) from `from`, TTL `ttl`.
fn vrrp_socket(from: std::net::Ipv4Addr, ttl: u32) -> socket2::Socket {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(112))).unwrap_or_else(|e| die(&format!("raw socket: {e}")));
    s.set_multicast_if_v4(&from).unwrap_or_else(|e| die(&format!("multicast if: {e}")));
    s.set_multicast_ttl_v4(ttl).unwrap_or_else(|e| die(&format!("multicast ttl: {e}")));
    s
}

fn v4_flag(args: &[String], name: &str) -> std::net::Ipv4Addr {
    flag(args, name).and_then(|a| a.parse().ok()).unwrap_or_else(|| die(&format!("{name} ADDR required")))
}

const VRRP_GROUP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(224, 0, 0, 18);

fn vrrp_adverts(args: &[String]) {
    use rvs_wire::vrrp;
    let from = v4_flag(args, "--from");
    let vrid = u8::try_from(num(args, "--vrid", 51)).unwrap_or_else(|_| die("--vrid"));
    let priority = u8::try_from(num(args, "--priority", 254)).unwrap_or_else(|_| die("--priority"));
    let count = num(args, "--count", 10);
    let every = Duration::from_millis(num(args, "--interval-ms", 100));
    let tag = flag(args, "--tag").unwrap_or_else(|| "none".into());
    let adv = vrrp::Advert { vrid, priority, interval_cs: 10, addrs: vec!["198.18.0.100".parse().unwrap_or_else(|_| die("addr"))] };
    let s = vrrp_socket(from, 255);
    let to = socket2::SockAddr::from(std::net::SocketAddrV4::new(VRRP_GROUP, 0));
    let wrong = |_: &[u8]| [0x5a; vrrp::TAG_LEN];
    for i in 0..count {
        let (src, dst) = (rvs_wire::Ipv4::from(from), rvs_wire::Ipv4::from(VRRP_GROUP));
        let msg = if tag == "bad" { vrrp::encode(&adv, src, dst, Some((i + 1, &wrong))) } else { vrrp::encode(&adv, src, dst, None) };
        let _ = s.send_to(&msg, &to);
        std::thread::sleep(every);
    }
    println!("{}", serde_json::json!({"sent": count}));
}

fn ha_junk(args: &[String]) {
    use rvs_wire::{sync, vrrp, Ipv4};
    let from = v4_flag(args, "--from");
    let vrid = u8::try_from(num(args, "--vrid", 51)).unwrap_or_else(|_| die("--vrid"));
    let sync_port = u16::try_from(num(args, "--sync-port", 8848)).unwrap_or_else(|_| die("--sync-port"));
    let (src, dst) = (Ipv4::from(from), Ipv4::from(VRRP_GROUP));
    let adv = vrrp::Advert { vrid, priority: 254, interval_cs: 10, addrs: vec!["198.18.0.100".parse().unwrap_or_else(|_| die("addr"))] };
    let good = vrrp::encode(&adv, src, dst, None);
    let mut junk: Vec<(&str, Vec<u8>)> = vec![("truncated", good[..5].to_vec())];
    let mut v = good.clone();
    v[0] = 0x21;
    junk.push(("bad_version", v));
    let mut v = good.clone();
    v[2] ^= 0x40;
    junk.push(("bad_checksum", v));
    junk.push(("other_vrid", vrrp::encode(&vrrp::Advert { vrid: vrid.wrapping_add(1), ..adv.clone() }, src, dst, None)));
    // Three stray bytes after the addresses, under a right checksum.
    let mut v = good.clone();
    v.extend_from_slice(&[1, 2, 3]);
    v[6..8].copy_from_slice(&[0, 0]);
    let c = rvs_wire::checksum::l4_checksum(rvs_wire::Family::pseudo_header(src, dst, vrrp::PROTO, v.len()), &v);
    v[6..8].copy_from_slice(&c.to_be_bytes());
    junk.push(("bad_trailer", v));
    let s = vrrp_socket(from, 255);
    let to = socket2::SockAddr::from(std::net::SocketAddrV4::new(VRRP_GROUP, 0));
    let mut sent = serde_json::Map::new();
    for (what, m) in &junk {
        let _ = s.send_to(m, &to);
        sent.insert((*what).to_string(), 1.into());
    }
    // A well-formed advert that crossed a router (TTL 64).
    let _ = vrrp_socket(from, 64).send_to(&good, &to);
    sent.insert("bad_ttl".into(), 1.into());
    // Sync datagrams.
    let rec = sync::AnyRecord::V4(sync::Record {
        op: sync::Op::Upsert as u8,
        proto: 6,
        state: 2,
        mode: 1,
        vip: Ipv4(0xc612_00fe), // 198.18.0.254: no service has it
        client: Ipv4(0xc612_0063),
        rs: Ipv4(0xc612_010b),
        cport: 1234,
        vport: 80,
        rport: 8080,
        timeout_ms: 60_000,
        ..Default::default()
    });
    let good = sync::encode(sync::Kind::Records, vrid, 1, &[rec], None);
    let mut sjunk: Vec<(&str, Vec<u8>)> = vec![("truncated", good[..9].to_vec())];
    let mut v = good.clone();
    v[0] = 9;
    sjunk.push(("bad_version", v));
    let mut v = good.clone();
    v[1] = 7;
    sjunk.push(("unknown_kind", v));
    sjunk.push(("bad_size", good[..good.len() - 1].to_vec()));
    sjunk.push(("other_sync_id", sync::encode(sync::Kind::Records, vrid.wrapping_add(1), 2, &[rec], None)));
    sjunk.push(("unknown_service", sync::encode(sync::Kind::Records, vrid, 3, &[rec], None)));
    let u = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))
        .unwrap_or_else(|e| die(&format!("udp: {e}")));
    u.set_multicast_if_v4(&from).unwrap_or_else(|e| die(&format!("multicast if: {e}")));
    u.bind(&socket2::SockAddr::from(std::net::SocketAddrV4::new(from, 0))).unwrap_or_else(|e| die(&format!("bind: {e}")));
    let u: UdpSocket = u.into();
    let group = SocketAddr::from((std::net::Ipv4Addr::new(224, 0, 0, 81), sync_port));
    for (what, m) in &sjunk {
        let _ = u.send_to(m, group);
        sent.insert(format!("sync_{what}"), 1.into());
    }
    println!("{}", serde_json::Value::Object(sent));
}

fn decap() {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
    let inj4 = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(255))).unwrap_or_else(|e| die(&format!("raw v4: {e}")));
    let inj6 = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::from(255))).unwrap_or_else(|e| die(&format!("raw v6: {e}")));
    inj6.set_header_included_v6(true).unwrap_or_else(|e| die(&format!("IPV6_HDRINCL: {e}")));
    let inj = Arc::new((inj4, inj6));
    let count = Arc::new(AtomicU64::new(0));
    for (domain, proto) in [(Domain::IPV4, 4), (Domain::IPV4, 41), (Domain::IPV6, 4), (Domain::IPV6, 41)] {
        let sock = Socket::new(domain, Type::RAW, Some(Protocol::from(proto)))
            .unwrap_or_else(|e| die(&format!("raw socket for protocol {proto}: {e}")));
        let (inj, count) = (inj.clone(), count.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            loop {
                let Ok(n) = (&sock).read(&mut buf) else { return };
                // IPv4 raw sockets deliver the outer header, IPv6 ones do not.
                let inner = if domain == Domain::IPV4 {
                    let hl = usize::from(buf[0] & 0x0f) * 4;
                    if n <= hl {
                        continue;
                    }
                    &buf[hl..n]
                } else {
                    &buf[..n]
                };
                let sent = match inner.first().map(|b| b >> 4) {
                    Some(4) if inner.len() >= 20 => {
                        let dst = Ipv4Addr::new(inner[16], inner[17], inner[18], inner[19]);
                        inj.0.send_to(inner, &SockAddr::from(SocketAddrV4::new(dst, 0)))
                    }
                    Some(6) if inner.len() >= 40 => {
                        let mut a = [0u8; 16];
                        a.copy_from_slice(&inner[24..40]);
                        inj.1.send_to(inner, &SockAddr::from(SocketAddrV6::new(Ipv6Addr::from(a), 0, 0, 0)))
                    }
                    _ => continue,
                };
                if sent.is_ok() {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    println!("decapsulating");
    let parent = std::os::unix::process::parent_id();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        if std::os::unix::process::parent_id() != parent {
            std::process::exit(0);
        }
    }
}

/// `flood`: spoofed-source SYNs or UDP datagrams through a raw IPv4 socket
/// (the kernel routes them and resolves the VIP's MAC; the sources are
/// made up, so no host answers for them).
fn flood(args: &[String]) {
    use rvs_testpkt::Tcp;
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let to = match parse_addr(&flag(args, "--to").unwrap_or_else(|| die("--to VIP:PORT required"))) {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(_) => die("flood: IPv4 only"),
    };
    let net: std::net::Ipv4Addr = flag(args, "--net")
        .and_then(|n| n.split('/').next().and_then(|a| a.parse().ok()))
        .unwrap_or_else(|| die("--net A.B.C.0/24 required"));
    let syn = args.iter().any(|a| a == "--syn");
    let secs = num(args, "--seconds", 5);
    let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(255))).unwrap_or_else(|e| die(&format!("raw socket: {e}")));
    let dst = SockAddr::from(to);
    let base = u32::from(net) & 0xffff_ff00;
    let mac = rvs_wire::MacAddr([2, 0, 0, 0, 0, 0]);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id());
    let end = Instant::now() + Duration::from_secs(secs);
    let mut sent = 0u64;
    while Instant::now() < end {
        for _ in 0..256 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let src = std::net::Ipv4Addr::from(base | (20 + (x % 231) as u32));
            let sport = 1024 + ((x >> 16) % 60000) as u16;
            let frame = if syn {
                rvs_testpkt::tcp4(
                    mac,
                    mac,
                    src,
                    *to.ip(),
                    &Tcp { sport, dport: to.port(), flags: 0x02, seq: (x >> 32) as u32, payload: &[] },
                )
            } else {
                rvs_testpkt::udp4(mac, mac, src, *to.ip(), sport, to.port(), b"flood-flood-flood!")
            };
            // The IP packet, past the Ethernet header.
            if s.send_to(&frame[14..], &dst).is_ok() {
                sent += 1;
            }
        }
    }
    println!("{}", serde_json::json!({"sent": sent, "seconds": secs, "pps": sent / secs.max(1)}));
}
