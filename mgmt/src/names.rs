//! Names for `rvsadm -L` without `-n`, as ipvsadm prints them: a port by
//! its services-database name for the protocol (`:http`, `:domain`, from
//! `/etc/services`), an address by its host name when it resolves (the
//! system resolver: `/etc/hosts`, then DNS, through `getnameinfo`), the
//! number otherwise. Each address is looked up once per listing.
use config::Protocol;
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;

/// Port and host names.
#[derive(Debug, Default)]
pub struct Names {
    ports: HashMap<(u16, Protocol), String>,
    hosts: RefCell<HashMap<IpAddr, String>>,
    resolve_hosts: bool,
}

impl Names {
    /// The system's: `/etc/services` and the resolver.
    pub fn system() -> Names {
        let mut n = Names::from_services(&std::fs::read_to_string("/etc/services").unwrap_or_default());
        n.resolve_hosts = true;
        n
    }

    /// Port names from the text of a services file (`name port/proto
    /// [aliases] [# comment]`); the first name for a port wins, as
    /// `getservbyport` answers. Host names are not looked up.
    pub fn from_services(text: &str) -> Names {
        let mut ports = HashMap::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default();
            let mut w = line.split_whitespace();
            let (Some(name), Some(pp)) = (w.next(), w.next()) else { continue };
            let Some((port, proto)) = pp.split_once('/') else { continue };
            let Ok(port) = port.parse::<u16>() else { continue };
            let proto = match proto {
                "tcp" => Protocol::Tcp,
                "udp" => Protocol::Udp,
                _ => continue,
            };
            ports.entry((port, proto)).or_insert_with(|| name.to_string());
        }
        Names { ports, hosts: RefCell::default(), resolve_hosts: false }
    }

    /// The port's name for `proto`, or its number.
    pub fn port(&self, port: u16, proto: Protocol) -> String {
        self.ports.get(&(port, proto)).cloned().unwrap_or_else(|| port.to_string())
    }

    /// The address's host name when it resolves, or the address.
    pub fn host(&self, a: IpAddr) -> String {
        if !self.resolve_hosts {
            return a.to_string();
        }
        self.hosts
            .borrow_mut()
            .entry(a)
            .or_insert_with(|| {
                dns_lookup::lookup_addr(&a).ok().filter(|h| !h.is_empty() && h.parse::<IpAddr>().is_err()).unwrap_or_else(|| a.to_string())
            })
            .clone()
    }

    /// `host:port` as ipvsadm prints it without `-n` (an unresolved IPv6
    /// address in brackets).
    pub fn host_port(&self, a: IpAddr, port: u16, proto: Protocol) -> String {
        let h = self.host(a);
        let port = self.port(port, proto);
        if a.is_ipv6() && h.parse::<IpAddr>().is_ok() {
            format!("[{h}]:{port}")
        } else {
            format!("{h}:{port}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_named_per_protocol_and_the_first_name_wins() {
        let n = Names::from_services(
            "# comment\nhttp\t\t80/tcp\t\twww\t\t# WorldWideWeb HTTP\ndomain\t\t53/tcp\ndomain\t\t53/udp\nwww-alt 80/tcp\nmdns 5353/udp\nbad line\nx 99999/tcp\n",
        );
        assert_eq!(n.port(80, Protocol::Tcp), "http");
        assert_eq!(n.port(80, Protocol::Udp), "80");
        assert_eq!(n.port(53, Protocol::Udp), "domain");
        assert_eq!(n.port(5353, Protocol::Udp), "mdns");
        assert_eq!(n.port(8080, Protocol::Tcp), "8080");
        let v6: IpAddr = "2001:db8::100".parse().unwrap();
        assert_eq!(n.host_port(v6, 53, Protocol::Udp), "[2001:db8::100]:domain");
    }

    #[test]
    fn loopback_resolves_through_the_system_resolver() {
        let n = Names::system();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        // /etc/hosts names 127.0.0.1 on every Debian system.
        assert_eq!(n.host(lo), "localhost");
        assert_eq!(n.host_port(lo, 22, Protocol::Tcp), "localhost:ssh");
    }
}
