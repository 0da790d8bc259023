//! The SYN proxy end to end: a real kernel client downloads 10 MB through
//! a SYN-proxied service in NAT and in full NAT while its own namespace
//! drops 2% of what it receives (nftables), so its stack sends SACK blocks
//! that rvs translates; the body arrives whole, every cookie handshake is
//! counted. And real servers that drop the first SYN of every connection
//! (as one whose listen queue is full does): every connection still opens,
//! each with the SYN rvs sends again when the client probes, or, where the
//! server speaks first and the client sends nothing, when its timer fires.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test: a failed step fails the test with its message")]
mod common;
use common::{http_service, nat_bed, nat_bed_opts, vip_url, VIP, VIP6};
use testbed::Bed;

const SIZE: u64 = 10_000_000;

/// Downloads /bytes/SIZE from the VIP with curl on `host`: (HTTP status,
/// bytes received).
fn download(bed: &Bed, host: usize) -> (u32, u64) {
    let url = format!("http://198.18.0.100/bytes/{SIZE}");
    let out = bed
        .h(host)
        .ns
        .sh_timeout(
            &["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", "--max-time", "90", &url],
            std::time::Duration::from_secs(100),
        )
        .unwrap_or_else(|e| panic!("curl: {e}\nrvsd:\n{}", bed.rvsd_log()));
    let mut it = out.split_whitespace();
    (it.next().and_then(|x| x.parse().ok()).unwrap_or(0), it.next().and_then(|x| x.parse().ok()).unwrap_or(0))
}

fn spliced_download(tag: &str, fwd: &str) {
    let services =
        http_service(false, fwd, "rr").replace(&format!("forwarding = \"{fwd}\"\n"), &format!("forwarding = \"{fwd}\"\nsynproxy = true\n"));
    let (bed, cl, _) = nat_bed(tag, 1, 3, "workers = 1", &services);
    let ns = &bed.h(cl[0]).ns;
    ns.sh(&["nft", "add", "table", "inet", "loss"]).unwrap();
    ns.sh(&["nft", "add", "chain", "inet", "loss", "in", "{ type filter hook input priority 0; }"]).unwrap();
    ns.sh(&["nft", "add", "rule", "inet", "loss", "in", "meta", "l4proto", "tcp", "numgen", "random", "mod", "100", "<", "2", "drop"])
        .unwrap();
    for round in 0..2 {
        let (code, got) = download(&bed, cl[0]);
        assert_eq!((code, got), (200, SIZE), "{fwd} download {round}\nrvsd:\n{}", bed.rvsd_log());
    }
    let r = bed.stats().unwrap();
    let sp = &r.synproxy;
    println!("{fwd}: synproxy {sp:?}");
    assert!(sp.syns >= 2 && sp.cookies_valid >= 2 && sp.window_updates >= 2, "{sp:?}");
    assert_eq!(sp.cookies_invalid, 0, "{sp:?}");
    assert!(sp.sack_translated > 0, "the client's SACK blocks were translated: {sp:?}");
    assert_eq!(r.drops.get("tcp_bad_checksum").copied().unwrap_or(0), 0);
}

#[test]
fn a_10_mb_download_through_a_syn_proxied_nat_service() {
    spliced_download("spx-nat", "nat");
}

#[test]
fn a_10_mb_download_through_a_syn_proxied_full_nat_service() {
    spliced_download("spx-fnat", "fullnat");
}

/// Every real server drops every other SYN it receives (nftables), the
/// first included; ten connections one after the other through the SYN
/// proxy: each one's first SYN is lost, the client's window probe makes
/// rvs send it again, and every request is answered within 5 s.
fn lost_syns_are_sent_again(tag: &str, fwd: &str, v6: bool) {
    let services =
        http_service(v6, fwd, "rr").replace(&format!("forwarding = \"{fwd}\"\n"), &format!("forwarding = \"{fwd}\"\nsynproxy = true\n"));
    let (bed, cl, sv) = nat_bed(tag, 1, 3, "workers = 1", &services);
    lose_every_other_syn(&bed, &sv, 8080);
    let url = vip_url(v6, "/");
    for i in 0..10 {
        let out = bed
            .h(cl[0])
            .ns
            .sh_timeout(
                &["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", &url],
                std::time::Duration::from_secs(10),
            )
            .unwrap_or_else(|e| panic!("{fwd} connection {i}: curl: {e}\nrvsd:\n{}", bed.rvsd_log()));
        assert_eq!(out.trim(), "200", "{fwd} connection {i}: {:?}", bed.stats().map(|r| r.synproxy));
    }
    let dropped = syns_lost(&bed, &sv);
    let sp = bed.stats().unwrap().synproxy;
    println!("{fwd}: real servers dropped {dropped} SYNs; synproxy {sp:?}");
    // Each server drops its first SYN and every other one after (a SYN
    // sent twice before a slow answer shifts which): at least one per
    // server, and every SYN dropped was followed by another.
    assert!(dropped >= 3, "the real servers dropped SYNs: {dropped}");
    assert!(sp.syns_resent >= dropped && sp.cookies_valid == 10 && sp.window_updates == 10, "{dropped} dropped: {sp:?}");
}

#[test]
fn a_real_server_dropping_first_syns_gets_every_connection_nat() {
    lost_syns_are_sent_again("spx-lost-nat", "nat", false);
}

#[test]
fn a_real_server_dropping_first_syns_gets_every_connection_full_nat() {
    lost_syns_are_sent_again("spx-lost-fnat", "fullnat", false);
}

/// Makes every real server drop every other SYN to `port` (nftables), the
/// first one included.
fn lose_every_other_syn(bed: &Bed, servers: &[usize], port: u16) {
    for &h in servers {
        let ns = &bed.h(h).ns;
        ns.sh(&["nft", "add", "table", "inet", "lose"]).unwrap();
        ns.sh(&["nft", "add", "chain", "inet", "lose", "in", "{ type filter hook input priority 0; }"]).unwrap();
        let rule = format!("add rule inet lose in tcp dport {port} tcp flags & (syn|ack) == syn numgen inc mod 2 == 0 counter drop");
        let mut cmd = vec!["nft"];
        cmd.extend(rule.split_whitespace());
        ns.sh(&cmd).unwrap();
    }
}

/// The SYNs the real servers' nftables dropped.
fn syns_lost(bed: &Bed, servers: &[usize]) -> u64 {
    servers
        .iter()
        .map(|&h| {
            let rules = bed.h(h).ns.sh(&["nft", "list", "table", "inet", "lose"]).unwrap();
            rules.split_whitespace().skip_while(|w| *w != "packets").nth(1).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0)
        })
        .sum()
}

/// A protocol where the server speaks first (the real servers' agent port
/// writes one line and closes): the client sends nothing after its ACK, so
/// it never probes; each connection's first SYN is lost, and rvs's timer
/// sends it again a second later. Three connections in a row each read the
/// server's line within 4 s.
fn the_server_speaks_first(tag: &str, fwd: &str, v6: bool) {
    let vip = if v6 { VIP6 } else { VIP };
    let mut services = format!(
        "[[services]]\nvip = \"{vip}\"\nport = 7777\nprotocol = \"tcp\"\nscheduler = \"rr\"\nforwarding = \"{fwd}\"\nsynproxy = true\n"
    );
    for i in 0..3 {
        let a = if v6 { format!("2001:db8:1::{:x}", 0x11 + i) } else { format!("198.18.1.{}", 11 + i) };
        services.push_str(&format!("[[services.real_servers]]\naddress = \"{a}\"\nport = 7777\n"));
    }
    let agent = |_: usize| vec!["--agent".to_string(), "[::]:7777".to_string()];
    let (bed, cl, sv) = nat_bed_opts(tag, 1, 3, "workers = 1", &services, false, &agent);
    lose_every_other_syn(&bed, &sv, 7777);
    for i in 0..3 {
        let out = bed
            .h(cl[0])
            .ns
            .sh_timeout(
                &["bash", "-c", &format!("exec 3<>/dev/tcp/{vip}/7777 && timeout 4 head -n1 <&3")],
                std::time::Duration::from_secs(10),
            )
            .unwrap_or_else(|e| panic!("{fwd} connection {i}: {e}: {:?}\nrvsd:\n{}", bed.stats().map(|r| r.synproxy), bed.rvsd_log()));
        assert_eq!(out.trim(), "up", "{fwd} connection {i}");
    }
    let dropped = syns_lost(&bed, &sv);
    let sp = bed.stats().unwrap().synproxy;
    println!("{fwd}: real servers dropped {dropped} SYNs; synproxy {sp:?}");
    assert!(dropped >= 3, "every connection's first SYN was dropped: {dropped}");
    assert!(sp.syns_resent >= dropped && sp.cookies_valid == 3 && sp.window_updates == 3, "{dropped} dropped: {sp:?}");
}

#[test]
fn a_server_speaking_first_gets_its_connection_though_its_syn_was_lost_nat() {
    the_server_speaks_first("spx-first-nat", "nat", false);
}

#[test]
fn a_server_speaking_first_gets_its_connection_though_its_syn_was_lost_full_nat() {
    the_server_speaks_first("spx-first-fnat", "fullnat", false);
}

/// Both over IPv6: a real server's lost SYN sent again on the client's
/// probe (NAT) and by the timer to a server that speaks first (full NAT).
#[test]
fn lost_syns_to_real_servers_are_sent_again_over_ipv6() {
    lost_syns_are_sent_again("spx-lost-v6", "nat", true);
    the_server_speaks_first("spx-first-v6", "fullnat", true);
}
