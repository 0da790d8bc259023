//! rvs-hostile: a real server that answers health checks in every broken
//! shape, for the hardening tests (issue 10, fault 1).
//!
//! `rvs-hostile --http ADDR --https ADDR --line ADDR --agent ADDR` listens
//! on each address given and answers the n-th connection of a listener
//! with shape `n mod (number of shapes)` of that listener's list: status
//! lines of multi-byte UTF-8 (the answer that once aborted rvsd), bytes
//! that are not UTF-8, NUL bytes, a 2 MiB line without an end, 2 MiB of
//! headers, one byte every 200 ms, silence, an immediate close, truncated
//! and malformed lines. The HTTPS listener completes a TLS handshake with
//! a fresh self-signed certificate and then answers the same shapes inside
//! TLS, and in some connections sends garbage instead of a handshake.
//!
//! No shape is a passing answer to the checks the tests configure (HTTP
//! and HTTPS: status 200 with a body containing `rs`; send/expect: `PING`
//! -> `PONG`; agent: any weight word), so a correct rvsd marks this server
//! down and keeps it down. Every connection is logged to stdout as
//! `<listener> <shape index> <shape name>`, so a test can check that each
//! shape was met. It exits when its parent does.
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What to do on one connection.
#[derive(Clone)]
enum Shape {
    /// Send these bytes and close.
    Bytes(&'static str, Vec<u8>),
    /// Send this prefix, then 2 MiB of `A` with no line end.
    Huge(&'static str, Vec<u8>),
    /// Send these bytes one every 200 ms.
    Slow(&'static str, Vec<u8>),
    /// Say nothing for 10 s.
    Silent,
    /// Close at once.
    Close,
    /// (HTTPS only) send these bytes instead of a TLS handshake.
    NotTls(&'static str, Vec<u8>),
}

impl Shape {
    fn name(&self) -> &'static str {
        match self {
            Shape::Bytes(n, _) | Shape::Huge(n, _) | Shape::Slow(n, _) | Shape::NotTls(n, _) => n,
            Shape::Silent => "silent",
            Shape::Close => "close",
        }
    }
}

/// Concatenates text and raw bytes.
fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// `n` times `é` (two bytes each in UTF-8).
fn e(n: usize) -> Vec<u8> {
    "\u{e9}".repeat(n).into_bytes()
}

fn http_shapes() -> Vec<Shape> {
    vec![
        // The answer that once aborted rvsd: its 60th byte falls inside a
        // character.
        Shape::Bytes("multibyte_status", cat(&[b"X", &e(40), b"\r\n\r\n"])),
        Shape::Bytes("multibyte_code", cat(&[b"HTTP/1.1 2", &e(30), b"\r\n\r\n"])),
        Shape::Bytes("not_utf8", b"\xff\xfe\xfd\xc3HTTP/1.1 200 OK\r\n\r\n".to_vec()),
        Shape::Bytes("bad_headers_and_body", cat(&[b"HTTP/1.1 200 OK\r\nX-Name: ", &e(3), b"\xff\r\n", &e(2), b"\r\n\r\nsick ", &e(3)])),
        Shape::Bytes("body_not_utf8", b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n\xff\xfe\xc3\x28\xa0\xa1".to_vec()),
        Shape::Huge("huge_status_line", b"HTTP/1.1 200 ".to_vec()),
        Shape::Huge("huge_headers", b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec()),
        Shape::Slow("slow", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nrs".to_vec()),
        Shape::Silent,
        Shape::Close,
        Shape::Bytes("nul_bytes", b"\0\0\0\0HTTP/1.1 200 OK\r\n\r\nrs".to_vec()),
        Shape::Bytes("truncated", b"HTTP/1.1 20".to_vec()),
        Shape::Bytes("lowercase_lf_only", b"http/1.1 200 ok\n\nrs".to_vec()),
        Shape::Bytes("four_digit_status", b"HTTP/1.1 2000 OK\r\n\r\nrs".to_vec()),
        Shape::Bytes("cr_only", b"HTTP/1.1 500 \xc3\rX\r\r\rrs".to_vec()),
        Shape::Bytes("empty_status", b"\r\n\r\n".to_vec()),
    ]
}

/// TLS-level garbage, then every HTTP shape inside TLS.
fn https_shapes() -> Vec<Shape> {
    let mut v = vec![
        Shape::NotTls("garbage_instead_of_tls", cat(&[b"X", &e(40), b"\r\n\r\n"])),
        Shape::NotTls("http_instead_of_tls", b"HTTP/1.1 200 OK\r\n\r\nrs".to_vec()),
    ];
    v.extend(http_shapes());
    v
}

fn line_shapes() -> Vec<Shape> {
    vec![
        Shape::Bytes("multibyte_line", cat(&[b"PO", &e(40), b"NG\n"])),
        Shape::Bytes("not_utf8", b"\xffPO\xfeNG\xc3\n".to_vec()),
        Shape::Bytes("nul_bytes", b"\0P\0O\0N\0G\0\n".to_vec()),
        Shape::Huge("huge_line", b"PO".to_vec()),
        Shape::Slow("slow", b"PONG rs3\n".to_vec()),
        Shape::Silent,
        Shape::Close,
        Shape::Bytes("split_multibyte", b"PON\xc3".to_vec()),
    ]
}

fn agent_shapes() -> Vec<Shape> {
    vec![
        Shape::Bytes("multibyte_percent", cat(&[&e(30), b"%\n"])),
        Shape::Bytes("percent_overflow", b"99999999999999999999999%\n".to_vec()),
        Shape::Bytes("percent_then_multibyte", cat(&[b"75%", &e(1), b"\n"])),
        Shape::Bytes("not_utf8", b"\xff\xfe\xfd\n".to_vec()),
        Shape::Bytes("nul_bytes", b"\x00\x00\x00\n".to_vec()),
        Shape::Huge("huge_line", b"5".to_vec()),
        Shape::Slow("slow", b"50%\n".to_vec()),
        Shape::Silent,
        Shape::Close,
    ]
}

fn die(msg: &str) -> ! {
    eprintln!("rvs-hostile: {msg}");
    std::process::exit(2)
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn parse_addr(s: &str) -> SocketAddr {
    s.to_socket_addrs().ok().and_then(|mut a| a.next()).unwrap_or_else(|| die(&format!("{s}: not an address")))
}

/// Reads what the checker sent (a request line, `PING`), briefly.
fn read_request(s: &mut impl Read) {
    let mut b = [0u8; 4096];
    let _ = s.read(&mut b);
}

/// Plays `shape` on an established stream (plain or TLS).
fn play(s: &mut impl Write, shape: &Shape) {
    match shape {
        Shape::Bytes(_, b) | Shape::NotTls(_, b) => {
            let _ = s.write_all(b);
        }
        Shape::Huge(_, prefix) => {
            let _ = s.write_all(prefix);
            let chunk = [b'A'; 64 * 1024];
            for _ in 0..32 {
                if s.write_all(&chunk).is_err() {
                    break;
                }
            }
        }
        Shape::Slow(_, b) => {
            for c in b {
                if s.write_all(std::slice::from_ref(c)).and_then(|()| s.flush()).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        Shape::Silent => std::thread::sleep(Duration::from_secs(10)),
        Shape::Close => {}
    }
    let _ = s.flush();
}

fn tls_config() -> Arc<rustls::ServerConfig> {
    let ck = rcgen::generate_simple_self_signed(vec!["rs.test".to_string()]).unwrap_or_else(|e| die(&format!("certificate: {e}")));
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into());
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(vec![ck.cert.der().clone()], key))
        .unwrap_or_else(|e| die(&format!("TLS: {e}")));
    Arc::new(cfg)
}

/// Serves `shapes` on `addr`, one per connection in turn.
fn listen(what: &'static str, addr: &str, shapes: Vec<Shape>, tls: Option<Arc<rustls::ServerConfig>>) {
    let l = TcpListener::bind(parse_addr(addr)).unwrap_or_else(|e| die(&format!("bind {addr}: {e}")));
    let next = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let n = next.fetch_add(1, Ordering::Relaxed);
            let (shape, tls) = (shapes[n % shapes.len()].clone(), tls.clone());
            println!("{what} {} {}", n % shapes.len(), shape.name());
            std::thread::spawn(move || serve(s, shape, tls));
        }
    });
}

fn serve(mut s: TcpStream, shape: Shape, tls: Option<Arc<rustls::ServerConfig>>) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    match tls {
        Some(cfg) if !matches!(shape, Shape::NotTls(..)) => {
            let Ok(conn) = rustls::ServerConnection::new(cfg) else { return };
            let mut t = rustls::StreamOwned::new(conn, s);
            read_request(&mut t);
            play(&mut t, &shape);
            t.conn.send_close_notify();
            let _ = t.flush();
        }
        _ => {
            read_request(&mut s);
            play(&mut s, &shape);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parent = std::os::unix::process::parent_id();
    if let Some(a) = flag(&args, "--http") {
        listen("http", &a, http_shapes(), None);
    }
    if let Some(a) = flag(&args, "--https") {
        listen("https", &a, https_shapes(), Some(tls_config()));
    }
    if let Some(a) = flag(&args, "--line") {
        listen("line", &a, line_shapes(), None);
    }
    if let Some(a) = flag(&args, "--agent") {
        listen("agent", &a, agent_shapes(), None);
    }
    println!("hostile serving");
    loop {
        std::thread::sleep(Duration::from_millis(200));
        if std::os::unix::process::parent_id() != parent {
            std::process::exit(0);
        }
    }
}
