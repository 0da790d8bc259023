//! What remote peers send, on arbitrary bytes: HTTP(S) health-check
//! answers (status line, headers, body, expectations), DNS check answers,
//! feedback-agent lines, and the printable excerpt put in logs. Nothing may panic (a
//! real server once aborted rvsd with a multi-byte status line).
#![no_main]
use libfuzzer_sys::fuzz_target;
use mgmt::remote;

fuzz_target!(|d: &[u8]| {
    let _ = remote::http_status(d);
    let _ = remote::http_body(d);
    let _ = remote::check_http(d, &[200, 204], Some(b"ok".as_slice()));
    let _ = remote::check_http(d, &[], None);
    let _ = remote::parse_agent(d);
    let _ = remote::first_line(d);
    let _ = remote::printable(d, usize::from(d.first().copied().unwrap_or(0)));
    let n = d.len() / 2;
    let _ = remote::contains(&d[..n], &d[n..]);
    // DNS check answers: ours by id, or anything else.
    let id = d.get(..2).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    let _ = remote::dns_answers(d, id, 1);
    let _ = remote::dns_answers(d, 0x1234, 28);
});
