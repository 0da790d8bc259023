//! Configurations for tests and benchmarks, written once.
//!
//! Every crate's tests start from the same world: a `client` port on
//! 198.18.0.1/24 (and 2001:db8::1/64), a `server` port on 198.18.1.1/24
//! (and 2001:db8:1::1/64), and a TCP service 198.18.0.100:80 balanced over
//! real servers 198.18.1.11, .12, ... Built with the `fixtures` feature
//! (tests of other crates enable it as a dev-dependency); never part of
//! rvsd.

/// The two ports, on `net_null` devices unless others are given.
pub fn two_ports() -> String {
    two_ports_on("net_null0", "net_null1")
}

/// The two ports on the given DPDK devices.
pub fn two_ports_on(client: &str, server: &str) -> String {
    format!(
        "[[ports]]\nname = \"client\"\ndevice = \"{client}\"\naddresses = [\"198.18.0.1/24\", \"2001:db8::1/64\"]\n\n\
         [[ports]]\nname = \"server\"\ndevice = \"{server}\"\naddresses = [\"198.18.1.1/24\", \"2001:db8:1::1/64\"]\n\n"
    )
}

/// A TCP service 198.18.0.100:80 with `scheduler` and `forwarding`, and
/// one real server per weight: 198.18.1.11, .12, ... on `rs_port` (a port
/// of 0 leaves it out: the service's own).
pub fn service(scheduler: &str, forwarding: &str, rs_port: u16, weights: &[u32]) -> String {
    let mut s = format!(
        "[[services]]\nvip = \"198.18.0.100\"\nport = 80\nprotocol = \"tcp\"\nscheduler = \"{scheduler}\"\nforwarding = \"{forwarding}\"\n"
    );
    for (i, w) in weights.iter().enumerate() {
        s.push_str(&format!("\n[[services.real_servers]]\naddress = \"198.18.1.{}\"\n", 11 + i));
        if rs_port != 0 {
            s.push_str(&format!("port = {rs_port}\n"));
        }
        s.push_str(&format!("weight = {w}\n"));
    }
    s
}

/// The two ports and a NAT service, wrr over 198.18.1.11:8080 (weight 2)
/// and 198.18.1.12:8080 (weight 1): the configuration most tests need.
pub fn two_port_nat() -> String {
    format!("{}{}", two_ports(), service("wrr", "nat", 8080, &[2, 1]))
}

/// Static neighbours for real servers 198.18.1.11.. on the server port,
/// with MACs 02:5e:00:00:00:0b, ... (10 + i + 1 in the last octet).
pub fn server_neighbours(n: u8) -> String {
    (0..n)
        .map(|i| {
            format!("[[neighbors]]\naddress = \"198.18.1.{}\"\nmac = \"02:5e:00:00:00:{:02x}\"\nport = \"server\"\n\n", 11 + i, 11 + i)
        })
        .collect()
}

/// The 1-based line of the first line of `text` that contains `needle`
/// (0 if none): tests say which line they expect an error on by its
/// content, not by a number that moves when the fixture does.
pub fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).map_or(0, |i| i + 1)
}
