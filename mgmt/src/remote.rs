//! Parsers of what remote peers send: health-check answers and feedback
//! agent lines.
//!
//! Everything here works on bytes. A real server is not trusted: its answer
//! may be huge, truncated, binary, or UTF-8 cut in the middle of a
//! character, and none of that may panic (a panic in a management thread
//! used to take the forwarding cores down with it). The contract: every
//! function accepts any `&[u8]`, never slices a `str` at a byte index, and
//! what it returns for display ([`printable`]) is plain ASCII of bounded
//! length.

/// What the feedback agent said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentSays {
    /// Use this percentage of the configured weight.
    Percent(u8),
    /// Back to the configured weight.
    Up,
    /// No new connections (weight 0).
    Drain,
}

/// Why an HTTP answer does not pass.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HttpAnswerError {
    /// The first line is not `HTTP/x.y NNN ...`.
    #[error("no HTTP status line in {0}")]
    NoStatusLine(String),
    /// A status outside the acceptable ones.
    #[error("HTTP {got}, expected {expected:?}")]
    Status {
        /// The status received.
        got: u16,
        /// The statuses accepted.
        expected: Vec<u16>,
    },
    /// The body lacks the required substring.
    #[error("HTTP {status}, body lacks {wanted}")]
    Body {
        /// The status received.
        status: u16,
        /// The substring, for display.
        wanted: String,
    },
}

/// At most this many bytes of remote data appear in a message.
pub const SNIPPET: usize = 60;

/// A bounded, printable rendering of remote bytes for logs and reports:
/// printable ASCII as is, everything else as `\xNN`, at most `max` input
/// bytes, with `...` when cut. Always valid, always ASCII.
pub fn printable(bytes: &[u8], max: usize) -> String {
    let cut = bytes.len() > max;
    let mut s = String::with_capacity(max.min(bytes.len()) + 5);
    s.push('"');
    for &b in bytes.iter().take(max) {
        match b {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            0x20..=0x7e => s.push(char::from(b)),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s.push('"');
    if cut {
        s.push_str("...");
    }
    s
}

/// True when `needle` occurs in `hay` (an empty needle always does).
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// The first line of `data`, without its line end (LF or CRLF).
pub fn first_line(data: &[u8]) -> &[u8] {
    let line = match data.iter().position(|&b| b == b'\n') {
        Some(i) => data.get(..i).unwrap_or(data),
        None => data,
    };
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The status code of an HTTP status line: `HTTP/<digits>.<digits> NNN`
/// followed by the end of the line or a space (RFC 9112 4).
pub fn http_status(answer: &[u8]) -> Result<u16, HttpAnswerError> {
    let line = first_line(answer);
    let bad = || HttpAnswerError::NoStatusLine(printable(line, SNIPPET));
    let rest = line.strip_prefix(b"HTTP/").ok_or_else(bad)?;
    let sp = rest.iter().position(|&b| b == b' ').ok_or_else(bad)?;
    let (version, after) = rest.split_at(sp);
    let version_ok = match version.iter().position(|&b| b == b'.') {
        Some(dot) => {
            let (major, minor) = version.split_at(dot);
            let minor = minor.get(1..).unwrap_or(&[]);
            !major.is_empty() && !minor.is_empty() && major.iter().chain(minor).all(u8::is_ascii_digit)
        }
        None => !version.is_empty() && version.iter().all(u8::is_ascii_digit),
    };
    if !version_ok {
        return Err(bad());
    }
    let code = after.get(1..4).ok_or_else(bad)?;
    if !code.iter().all(u8::is_ascii_digit) || after.get(4).is_some_and(|&b| b != b' ') {
        return Err(bad());
    }
    Ok(code.iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0')))
}

/// The body of an HTTP answer: what follows the first empty line (empty
/// when there is none).
pub fn http_body(answer: &[u8]) -> &[u8] {
    answer.windows(4).position(|w| w == b"\r\n\r\n").and_then(|i| answer.get(i + 4..)).unwrap_or(&[])
}

/// Checks an HTTP answer: its status must be one of `status` and, when
/// `body` is given, its body must contain it. Returns a description.
pub fn check_http(answer: &[u8], status: &[u16], body: Option<&[u8]>) -> Result<String, HttpAnswerError> {
    let code = http_status(answer)?;
    if !status.contains(&code) {
        return Err(HttpAnswerError::Status { got: code, expected: status.to_vec() });
    }
    if let Some(b) = body {
        if !contains(http_body(answer), b) {
            return Err(HttpAnswerError::Body { status: code, wanted: printable(b, SNIPPET) });
        }
    }
    Ok(format!("HTTP {code}"))
}

/// Parses an agent's line (HAProxy agent-check words): `75%`, `up`,
/// `ready`, `drain`, `down`, `fail`, `maint`, `stopped`; several may be
/// given, the last of each sort wins, `down`-like words win over weights.
/// Bytes that are not ASCII words are ignored.
pub fn parse_agent(line: &[u8]) -> Option<AgentSays> {
    let mut out = None;
    let mut down = false;
    for w in line.split(|&c| c.is_ascii_whitespace() || c == b',').filter(|w| !w.is_empty()) {
        let w = w.to_ascii_lowercase();
        if let Some(p) = w.strip_suffix(b"%") {
            out = parse_percent(p).map(AgentSays::Percent);
        } else {
            match w.as_slice() {
                b"up" | b"ready" => out = Some(AgentSays::Up),
                b"drain" => out = Some(AgentSays::Drain),
                b"down" | b"fail" | b"failed" | b"maint" | b"stopped" => down = true,
                _ => {}
            }
        }
    }
    if down {
        Some(AgentSays::Drain)
    } else {
        out
    }
}

/// A decimal percentage, capped at 100 (`250%` is 100%).
fn parse_percent(digits: &[u8]) -> Option<u8> {
    if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
    u8::try_from(n.min(100)).ok()
}

pub use config::DNS_TYPES;

/// A DNS query (RFC 1035: one question, recursion desired) for `name`
/// and record type `qtype`, or `None` when the name is not a valid one
/// (empty labels, a label over 63 bytes, over 253 bytes in all).
pub fn dns_query(id: u16, name: &str, qtype: u16) -> Option<Vec<u8>> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return None;
    }
    let mut q = Vec::with_capacity(18 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        let len = u8::try_from(label.len()).ok().filter(|&n| (1..=63).contains(&n))?;
        q.push(len);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    Some(q)
}

/// Skips a (possibly compressed) domain name at `at`; the offset after it.
fn dns_skip_name(d: &[u8], mut at: usize) -> Option<usize> {
    for _ in 0..128 {
        let len = *d.get(at)?;
        match len & 0xc0 {
            0xc0 => return d.get(at + 1).map(|_| at + 2),
            0 if len == 0 => return Some(at + 1),
            0 => at += 1 + usize::from(len),
            _ => return None,
        }
    }
    None
}

/// Why a DNS answer fails a check.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DnsAnswerError {
    /// Not a DNS response to our query (short, another id, not a response).
    #[error("not an answer to the query")]
    NotOurs,
    /// The server answered with an error code.
    #[error("the server answered {0}")]
    Rcode(&'static str),
    /// A response with no record of the type asked for.
    #[error("no {0} record in the answer")]
    NoRecord(String),
    /// A record runs past the end of the message.
    #[error("the answer is truncated or malformed")]
    Malformed,
}

/// Checks a DNS response on arbitrary bytes: ours (`id`, a response),
/// NOERROR, and at least one answer record of `qtype` (class IN).
/// Returns how many.
pub fn dns_answers(d: &[u8], id: u16, qtype: u16) -> Result<u16, DnsAnswerError> {
    let word = |at: usize| d.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let (Some(got_id), Some(flags), Some(qd), Some(an)) = (word(0), word(2), word(4), word(6)) else {
        return Err(DnsAnswerError::NotOurs);
    };
    if got_id != id || flags & 0x8000 == 0 {
        return Err(DnsAnswerError::NotOurs);
    }
    match flags & 0x000f {
        0 => {}
        1 => return Err(DnsAnswerError::Rcode("FORMERR")),
        2 => return Err(DnsAnswerError::Rcode("SERVFAIL")),
        3 => return Err(DnsAnswerError::Rcode("NXDOMAIN")),
        4 => return Err(DnsAnswerError::Rcode("NOTIMP")),
        5 => return Err(DnsAnswerError::Rcode("REFUSED")),
        _ => return Err(DnsAnswerError::Rcode("an error")),
    }
    let mut at = 12;
    for _ in 0..qd {
        at = dns_skip_name(d, at).ok_or(DnsAnswerError::Malformed)? + 4;
    }
    let mut found = 0u16;
    for _ in 0..an {
        at = dns_skip_name(d, at).ok_or(DnsAnswerError::Malformed)?;
        let (Some(t), Some(class), Some(rdlen)) = (word(at), word(at + 2), word(at + 8)) else { return Err(DnsAnswerError::Malformed) };
        at += 10 + usize::from(rdlen);
        if at > d.len() {
            return Err(DnsAnswerError::Malformed);
        }
        if t == qtype && class == 1 {
            found += 1;
        }
    }
    if found == 0 {
        let name = DNS_TYPES.iter().find(|(_, v)| *v == qtype).map_or_else(|| format!("type {qtype}"), |(n, _)| (*n).to_string());
        return Err(DnsAnswerError::NoRecord(name));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A response to `q` with the given rcode and answers (each an A or
    /// AAAA record behind a compression pointer to the question's name).
    fn response(q: &[u8], rcode: u8, answers: &[(u16, &[u8])]) -> Vec<u8> {
        let mut r = q.to_vec();
        r[2] = 0x81;
        r[3] = 0x80 | rcode;
        r[6..8].copy_from_slice(&u16::try_from(answers.len()).unwrap().to_be_bytes());
        for (t, data) in answers {
            r.extend_from_slice(&[0xc0, 12]);
            r.extend_from_slice(&t.to_be_bytes());
            r.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
            r.extend_from_slice(&u16::try_from(data.len()).unwrap().to_be_bytes());
            r.extend_from_slice(data);
        }
        r
    }

    #[test]
    fn dns_queries_and_answers() {
        let q = dns_query(0x1234, "www.rs.test.", 1).unwrap();
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(&q[12..], b"\x03www\x02rs\x04test\x00\x00\x01\x00\x01");
        assert_eq!(dns_query(1, "a..b", 1), None);
        assert_eq!(dns_query(1, &"x".repeat(64), 1), None);
        assert_eq!(dns_answers(&response(&q, 0, &[(1, &[198, 18, 1, 11])]), 0x1234, 1), Ok(1));
        assert_eq!(dns_answers(&response(&q, 0, &[(28, &[0; 16]), (1, &[1, 2, 3, 4])]), 0x1234, 1), Ok(1));
        assert_eq!(dns_answers(&response(&q, 3, &[]), 0x1234, 1), Err(DnsAnswerError::Rcode("NXDOMAIN")));
        assert_eq!(dns_answers(&response(&q, 0, &[(28, &[0; 16])]), 0x1234, 1), Err(DnsAnswerError::NoRecord("A".into())));
        assert_eq!(dns_answers(&response(&q, 0, &[]), 0x4321, 1), Err(DnsAnswerError::NotOurs));
        assert_eq!(dns_answers(&q, 0x1234, 1), Err(DnsAnswerError::NotOurs), "a query is not a response");
        let mut cut = response(&q, 0, &[(1, &[198, 18, 1, 11])]);
        cut.truncate(cut.len() - 2);
        assert_eq!(dns_answers(&cut, 0x1234, 1), Err(DnsAnswerError::Malformed));
        // A name that points at itself cannot loop.
        let mut evil = response(&q, 0, &[(1, &[1, 2, 3, 4])]);
        let at = q.len();
        evil[at..at + 2].copy_from_slice(&[0xc0, u8::try_from(at).unwrap()]);
        assert!(dns_answers(&evil, 0x1234, 1).is_ok(), "a pointer is followed once, never looped");
    }

    proptest! {
        #[test]
        fn dns_answers_never_panic(d in proptest::collection::vec(any::<u8>(), 0..600), id: u16, t: u16) {
            let _ = dns_answers(&d, id, t);
        }
    }

    #[test]
    fn status_lines() {
        assert_eq!(http_status(b"HTTP/1.1 200 OK\r\n\r\n"), Ok(200));
        assert_eq!(http_status(b"HTTP/1.0 503\r\n"), Ok(503));
        assert_eq!(http_status(b"HTTP/2 204 No Content\n"), Ok(204));
        for bad in [
            &b""[..],
            b"HTTP/1.1",
            b"HTTP/1.1 ",
            b"HTTP/1.1 20",
            b"HTTP/1.1 2000 OK",
            b"HTTP/x.1 200 OK",
            b"HTTP/1. 200 OK",
            b"http/1.1 200 OK",
            b"SSH-2.0-OpenSSH\r\n",
            b"HTTP/1.1 2\xc3\xa9",
        ] {
            assert!(http_status(bad).is_err(), "{bad:?}");
        }
    }

    /// The answer that aborted rvsd: a status line of multi-byte UTF-8
    /// whose 60th byte falls inside a character.
    #[test]
    fn multibyte_status_line_is_refused_not_fatal() {
        let mut line = b"X".to_vec();
        for _ in 0..40 {
            line.extend_from_slice("é".as_bytes());
        }
        line.extend_from_slice(b"\r\n\r\n");
        let e = check_http(&line, &[200], None).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("no HTTP status line in \"X\\xc3\\xa9"), "{msg}");
        assert!(msg.is_ascii() && msg.ends_with("..."), "{msg}");
    }

    #[test]
    fn bodies_and_statuses() {
        let a = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        assert_eq!(check_http(a, &[200], Some(b"ok")).unwrap(), "HTTP 200");
        assert!(matches!(check_http(a, &[204], None), Err(HttpAnswerError::Status { got: 200, .. })));
        assert!(matches!(check_http(a, &[200], Some(b"no")), Err(HttpAnswerError::Body { status: 200, .. })));
        assert_eq!(http_body(b"HTTP/1.1 200 OK\r\n"), b"");
    }

    #[test]
    fn agent_words() {
        assert_eq!(parse_agent(b"75%"), Some(AgentSays::Percent(75)));
        assert_eq!(parse_agent(b"up 40%\n"), Some(AgentSays::Percent(40)));
        assert_eq!(parse_agent(b"ready"), Some(AgentSays::Up));
        assert_eq!(parse_agent(b"drain"), Some(AgentSays::Drain));
        assert_eq!(parse_agent(b"50% maint"), Some(AgentSays::Drain));
        assert_eq!(parse_agent(b"250%"), Some(AgentSays::Percent(100)));
        assert_eq!(parse_agent(b"99999999999%"), None);
        assert_eq!(parse_agent(b"what?"), None);
        assert_eq!(parse_agent("é%".as_bytes()), None);
        assert_eq!(parse_agent(b"\xff\xfe up"), Some(AgentSays::Up));
    }

    #[test]
    fn printable_is_bounded_ascii() {
        assert_eq!(printable(b"ok", 10), "\"ok\"");
        assert_eq!(printable(b"a\r\n\x00\xff", 10), "\"a\\r\\n\\x00\\xff\"");
        assert_eq!(printable(b"abcdef", 3), "\"abc\"...");
        assert_eq!(first_line(b"a\r\nb"), b"a");
        assert_eq!(first_line(b"abc"), b"abc");
    }

    proptest! {
        /// No input makes a parser panic, and displays stay ASCII.
        #[test]
        fn any_bytes_are_safe(data in proptest::collection::vec(any::<u8>(), 0..300), status in 100u16..600) {
            let _ = http_status(&data);
            let _ = http_body(&data);
            if let Err(e) = check_http(&data, &[status], Some(b"x")) {
                prop_assert!(e.to_string().is_ascii());
            }
            let _ = parse_agent(&data);
            let p = printable(&data, SNIPPET);
            prop_assert!(p.is_ascii() && p.len() <= SNIPPET * 4 + 5);
        }

        /// A valid status line anywhere in the accepted shape parses.
        #[test]
        fn valid_lines_parse(code in 100u16..1000, reason in "[ -~]{0,40}") {
            let line = format!("HTTP/1.1 {code} {reason}\r\n\r\n");
            prop_assert_eq!(http_status(line.as_bytes()), Ok(code));
        }
    }
}
