//! ipvsadm-compatible text output, column for column.
//!
//! Formats follow ipvsadm 1.2x's `print_title` / `print_service_entry`:
//! services sorted by family, protocol, address and port, real servers by
//! address and port (unless `--nosort`); large numbers abbreviated with
//! K/M/G/T unless `--exact`. rvs adds one forwarding method, full NAT,
//! shown as `FullNat` and saved as `--fullnat` (DPVS's long option; `-b`
//! is ipvsadm's `--sched-flags`).
use crate::report::{RealServerReport, Report, ServiceReport};
use config::Forwarding;
use std::fmt::Write;
use std::net::IpAddr;

/// What to list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `-L -n`: scheduler, flags, forward, weight, connections.
    Plain,
    /// `--stats`.
    Stats,
    /// `--rate`.
    Rate,
    /// `-S`: rules that `-R` can read back.
    Rule,
}

/// Listing options.
#[derive(Clone, Copy, Debug)]
pub struct Options<'a> {
    /// Names instead of numbers (`-L` without `-n`); `None`: numeric.
    pub names: Option<&'a crate::names::Names>,
    /// The format.
    pub format: Format,
    /// Print exact numbers (`--exact`).
    pub exact: bool,
    /// Keep configuration order (`--nosort`).
    pub nosort: bool,
}

/// `addr:port`, IPv6 in brackets.
pub fn addr_port(a: IpAddr, port: u16) -> String {
    match a {
        IpAddr::V4(v) => format!("{v}:{port}"),
        IpAddr::V6(v) => format!("[{v}]:{port}"),
    }
}

/// ipvsadm's `print_largenum`.
pub fn largenum(out: &mut String, i: u64, exact: bool) {
    let _ = if exact {
        let len = i.to_string().len();
        write!(out, "{:>w$}", i, w = if len <= 8 { 9 } else { len + 1 })
    } else if i < 100_000_000 {
        write!(out, "{i:9}")
    } else if i < 1_000_000_000 {
        write!(out, "{:8}K", i / 1000)
    } else if i < 100_000_000_000 {
        write!(out, "{:8}M", i / 1_000_000)
    } else if i < 100_000_000_000_000 {
        write!(out, "{:8}G", i / 1_000_000_000)
    } else {
        write!(out, "{:8}T", i / 1_000_000_000_000)
    };
}

fn fwd_name(f: Forwarding) -> &'static str {
    f.ipvsadm_name()
}

fn fwd_switch(f: Forwarding) -> &'static str {
    match f {
        Forwarding::Nat => "-m",
        Forwarding::Dr => "-g",
        Forwarding::Tunnel => "-i",
        Forwarding::FullNat => "--fullnat",
    }
}

fn mask_text(vip: IpAddr, prefix: u8) -> Option<String> {
    match vip {
        IpAddr::V4(_) if prefix < 32 => {
            let m = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) };
            Some(std::net::Ipv4Addr::from(m).to_string())
        }
        IpAddr::V6(_) if prefix < 128 => Some(prefix.to_string()),
        _ => None,
    }
}

fn sorted_services(r: &Report, nosort: bool) -> Vec<&ServiceReport> {
    let mut v: Vec<&ServiceReport> = r.services.iter().collect();
    if !nosort {
        v.sort_by_key(|s| (s.vip.is_ipv6(), s.protocol, s.vip, s.port));
    }
    v
}

fn sorted_rs(s: &ServiceReport, nosort: bool) -> Vec<&RealServerReport> {
    let mut v: Vec<&RealServerReport> = s.real_servers.iter().collect();
    if !nosort {
        v.sort_by_key(|r| (r.address, r.port));
    }
    v
}

fn truncated(mut s: String, n: usize) -> String {
    s.truncate(n);
    s
}

/// The whole listing (`rvsadm -L -n [--stats|--rate]`, `-S`).
pub fn list(r: &Report, size: u64, o: Options<'_>) -> String {
    let mut out = String::new();
    if o.format != Format::Rule {
        let _ = writeln!(out, "IP Virtual Server version 1.2.1 (size={size})");
    }
    title(&mut out, o.format);
    for s in sorted_services(r, o.nosort) {
        service(&mut out, s, o);
    }
    out
}

/// The column titles.
pub fn title(out: &mut String, f: Format) {
    let _ = match f {
        Format::Stats => writeln!(
            out,
            "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port",
            "Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
        ),
        Format::Rate => writeln!(
            out,
            "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port",
            "Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
        ),
        Format::Plain => {
            writeln!(out, "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn")
        }
        Format::Rule => Ok(()),
    };
}

#[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "rates are printed as whole numbers")]
fn rate(x: f64) -> u64 {
    x.max(0.0).round() as u64
}

/// One service and its real servers.
pub fn service(out: &mut String, s: &ServiceReport, o: Options<'_>) {
    let proto = match s.protocol {
        config::Protocol::Tcp => "TCP",
        config::Protocol::Udp => "UDP",
    };
    let name = |a: IpAddr, port: u16| match o.names {
        Some(n) if o.format != Format::Rule => n.host_port(a, port, s.protocol),
        _ => addr_port(a, port),
    };
    let vname = name(s.vip, s.port);
    let svc_name = if o.format == Format::Rule {
        format!("{} {}", if s.protocol == config::Protocol::Tcp { "-t" } else { "-u" }, vname)
    } else if s.vip.is_ipv4() {
        truncated(format!("{proto}  {vname}"), 33)
    } else {
        format!("{proto}  {vname}")
    };
    match o.format {
        Format::Rule => {
            let _ = write!(out, "-A {svc_name} -s {}", s.scheduler);
            if let Some(p) = s.persistence {
                let _ = write!(out, " -p {}", p.timeout);
                if let Some(m) = mask_text(s.vip, p.prefix(s.vip.is_ipv6())) {
                    let _ = write!(out, " -M {m}");
                }
            }
        }
        Format::Stats => {
            let _ = write!(out, "{svc_name:<33}");
            for v in [s.totals.conns, s.totals.pkts_in, s.totals.pkts_out, s.totals.bytes_in, s.totals.bytes_out] {
                largenum(out, v, o.exact);
            }
        }
        Format::Rate => {
            let _ = write!(out, "{svc_name:<33}");
            for v in [s.rates.cps, s.rates.inpps, s.rates.outpps, s.rates.inbps, s.rates.outbps] {
                largenum(out, rate(v), o.exact);
            }
        }
        Format::Plain => {
            let _ = write!(out, "{svc_name} {}", s.scheduler);
            if let Some(p) = s.persistence {
                let _ = write!(out, " persistent {}", p.timeout);
                if let Some(m) = mask_text(s.vip, p.prefix(s.vip.is_ipv6())) {
                    let _ = write!(out, " mask {m}");
                }
            }
        }
    }
    out.push('\n');
    for r in sorted_rs(s, o.nosort) {
        let dname = name(r.address, r.port);
        let dname = if o.format != Format::Rule && s.vip.is_ipv4() { truncated(dname, 28) } else { dname };
        let _ = match o.format {
            Format::Rule => writeln!(out, "-a {svc_name} -r {dname} {} -w {}", fwd_switch(r.forwarding), r.weight),
            Format::Stats => {
                let _ = write!(out, "  -> {dname:<28}");
                for v in [r.totals.conns, r.totals.pkts_in, r.totals.pkts_out, r.totals.bytes_in, r.totals.bytes_out] {
                    largenum(out, v, o.exact);
                }
                writeln!(out)
            }
            Format::Rate => {
                let _ = write!(out, "  -> {dname:<28} {:8} {:8} {:8}", rate(r.rates.cps), rate(r.rates.inpps), rate(r.rates.outpps));
                largenum(out, rate(r.rates.inbps), o.exact);
                largenum(out, rate(r.rates.outbps), o.exact);
                writeln!(out)
            }
            Format::Plain => writeln!(
                out,
                "  -> {dname:<28} {:<7} {:<6} {:<10} {:<10}",
                fwd_name(r.forwarding),
                r.effective_weight,
                r.active.max(0),
                r.inactive.max(0)
            ),
        };
    }
}

/// `ipvsadm -S -n`: the services and real servers as commands `-R` reads
/// back, with rvs's extra service options when they are not the defaults.
pub fn save(cfg: &config::Config) -> String {
    let mut out = String::new();
    let mut services: Vec<&config::Service> = cfg.services.iter().collect();
    services.sort_by_key(|s| (s.vip.is_ipv6(), s.protocol, s.vip, s.port));
    for s in services {
        let flag = if s.protocol == config::Protocol::Tcp { "-t" } else { "-u" };
        let svc = format!("{flag} {}", addr_port(s.vip, s.port));
        let _ = write!(out, "-A {svc} -s {}", s.scheduler);
        if let Some(p) = s.persistence {
            let _ = write!(out, " -p {}", p.timeout);
            if let Some(m) = mask_text(s.vip, p.prefix(s.vip.is_ipv6())) {
                let _ = write!(out, " -M {m}");
            }
        }
        if s.hash_fallback || s.hash_port {
            // ipvsadm's names: sh-*/mh-* for sh and mh, flag-N otherwise.
            let names = match s.scheduler {
                config::SchedulerKind::Sh => ["sh-fallback", "sh-port"],
                config::SchedulerKind::Mh => ["mh-fallback", "mh-port"],
                _ => ["flag-1", "flag-2"],
            };
            let flags: Vec<&str> = [(s.hash_fallback, names[0]), (s.hash_port, names[1])].iter().filter(|x| x.0).map(|x| x.1).collect();
            let _ = write!(out, " --sched-flags {}", flags.join(","));
        }
        if s.mh_table_size != 65537 {
            let _ = write!(out, " --mh-size {}", s.mh_table_size);
        }
        if s.on_remove == config::OnRemove::Keep {
            out.push_str(" --on-remove keep");
        }
        match s.when_full {
            Some(config::WhenFull::Stateless) => out.push_str(" --when-full stateless"),
            Some(config::WhenFull::Refuse) => out.push_str(" --when-full refuse"),
            None => {}
        }
        if s.sloppy_tcp {
            out.push_str(" --sloppy-tcp");
        }
        if s.cluster {
            out.push_str(" --cluster");
        }
        if s.synproxy {
            out.push_str(" --synproxy");
            if s.synproxy_invalid_ack == config::InvalidAck::Drop {
                out.push_str(" --synproxy-invalid-ack drop");
            }
        }
        let t = s.timeouts;
        if t != config::Timeouts::default() {
            let _ = write!(
                out,
                " --timeouts {},{},{},{},{},{}",
                t.tcp_established, t.tcp_syn, t.tcp_fin, t.tcp_close, t.udp, t.tcp_syn_under_pressure
            );
        }
        // Whatever has no flag of its own (health check, sorry server,
        // feedback, local addresses, source lists, name, forwarding).
        if let Some(x) = crate::cli::extra_of(s) {
            let _ = write!(out, " --extra {x}");
        }
        out.push('\n');
        let mut rs: Vec<&config::RealServer> = s.real_servers.iter().collect();
        rs.sort_by_key(|r| (r.address, s.port_of(r)));
        for r in rs {
            let _ = write!(out, "-a {svc} -r {} {} -w {}", addr_port(r.address, s.port_of(r)), fwd_switch(s.forwarding_of(r)), r.weight);
            if let Some(x) = crate::cli::server_extra_of(r) {
                let _ = write!(out, " --extra {x}");
            }
            out.push('\n');
        }
    }
    out
}

/// `ipvsadm -L -n -c`: one line per session.
pub fn connections(sessions: &[serde_json::Value]) -> String {
    let mut out = String::from("IPVS connection entries\n");
    let _ = writeln!(out, "pro expire {:<11} {:<18} {:<18} destination", "state", "source", "virtual");
    for s in sessions {
        let t = s["expires_s"].as_u64().unwrap_or(0);
        let proto = s["protocol"].as_str().unwrap_or("").to_uppercase();
        let _ = writeln!(
            out,
            "{:<3} {:<6} {:<11} {:<18} {:<18} {}",
            proto,
            format!("{:02}:{:02}", t / 60, t % 60),
            s["state"].as_str().unwrap_or(""),
            s["client"].as_str().unwrap_or(""),
            s["virtual"].as_str().unwrap_or(""),
            s["server"].as_str().unwrap_or("")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largenum_matches_ipvsadm() {
        let mut s = String::new();
        largenum(&mut s, 42, false);
        largenum(&mut s, 123_456_789, false);
        largenum(&mut s, 12_345_678_901, false);
        assert_eq!(s, "       42  123456K   12345M");
        let mut s = String::new();
        largenum(&mut s, 123_456_789_012, true);
        assert_eq!(s, " 123456789012");
    }

    #[test]
    fn addresses() {
        assert_eq!(addr_port("198.18.0.100".parse().unwrap(), 80), "198.18.0.100:80");
        assert_eq!(addr_port("2001:db8::1".parse().unwrap(), 80), "[2001:db8::1]:80");
        assert_eq!(mask_text("1.2.3.4".parse().unwrap(), 24).as_deref(), Some("255.255.255.0"));
        assert_eq!(mask_text("1.2.3.4".parse().unwrap(), 32), None);
    }
}
