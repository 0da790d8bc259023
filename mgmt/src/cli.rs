//! rvsadm's command line: ipvsadm's, plus readable subcommands.
//!
//! ipvsadm syntax, with the same flags and defaults (scheduler `wlc`, `-p`
//! alone = 360 s, `-a` without a method = `-g`, weight 1):
//!
//! ```text
//! rvsadm -A|-E -t|-u VIP:port [-s sched] [-p [timeout]] [-M netmask] [--sched-flags f,..]
//! rvsadm -D -t|-u VIP:port
//! rvsadm -a|-e -t|-u VIP:port -r RS[:port] [-g|-i|-m|-b] [-w weight]
//! rvsadm -d -t|-u VIP:port -r RS[:port]
//! rvsadm -L|-l [-t|-u VIP:port] [-n] [--stats|--rate|-c] [--exact] [--nosort]
//! rvsadm -C | -Z | -S [-n] | -R | --set tcp tcpfin udp | --timeout
//! ```
//!
//! rvs adds: `-b`/`--fullnat` (full NAT, as DPVS's ipvsadm), and, on
//! `-A`/`-E`, `--mh-size N`, `--on-remove reset|keep`, `--when-full
//! refuse|stateless`, `--sloppy-tcp`, `--timeouts EST,SYN,FIN,CLOSE,UDP`
//! (seconds), which `-S` writes when they are not the defaults, so that
//! `-S` / `-C` / `-R` restores exactly. `--json` prints the raw reply.
//!
//! Readable forms: `rvsadm service add|edit|del tcp VIP:port [flags]`,
//! `rvsadm server add|edit|del tcp VIP:port RS[:port] [flags]`,
//! `rvsadm show [services|stats|rate|connections|drops|neighbors|health|config]`,
//! `rvsadm reload|zero|clear|save|restore|version|ping`.
use crate::ops::{Op, ServicePatch};
use config::{Forwarding, OnRemove, Persistence, Protocol, RealServer, SchedulerKind, Service, ServiceKey, Timeouts, WhenFull};
use std::net::IpAddr;

/// The persistence timeout of `-p` without a value (the kernel's
/// `IPVS_SVC_PERSISTENT_TIMEOUT`).
pub const DEFAULT_PERSISTENT_TIMEOUT: u32 = 360;

/// How to list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ListKind {
    /// Services and real servers.
    #[default]
    Services,
    /// `--stats`.
    Stats,
    /// `--rate`.
    Rate,
    /// `-c`: connections.
    Connections,
}

/// What to show in the readable `show` form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Show {
    /// Drops by reason.
    Drops,
    /// Neighbour table.
    Neighbors,
    /// Health-check state and history.
    Health,
    /// Running configuration (JSON).
    Config,
}

/// A parsed command line.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant, reason = "parsed once per command line")]
pub enum Action {
    /// List (`-L`).
    List {
        /// One service only.
        service: Option<ServiceKey>,
        /// What.
        kind: ListKind,
        /// `--exact`.
        exact: bool,
        /// `--nosort`.
        nosort: bool,
    },
    /// A configuration change.
    Change(Op),
    /// `-Z`.
    Zero,
    /// `-S`.
    Save,
    /// `-R`: one all-or-nothing change; `--replace` clears every service
    /// first, in the same change.
    Restore {
        /// Clear first (atomically with the restore).
        replace: bool,
    },
    /// `--timeout`.
    ShowTimeouts,
    /// `show drops|neighbors|health|config`.
    Show(Show),
    /// A raw command with no arguments (`reload`, `version`, `ping`).
    Simple(&'static str),
    /// `-h`.
    Help,
}

/// Global options.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Options {
    /// `--socket PATH`.
    pub socket: Option<String>,
    /// `--json`.
    pub json: bool,
}

/// Parses `host:port`, `[v6]:port`, or (when `port_optional`) a bare host.
pub fn parse_addr_port(s: &str, port_optional: bool) -> Result<(IpAddr, u16), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(|| format!("{s:?}: missing ']'"))?;
        (h, after.strip_prefix(':'))
    } else if s.matches(':').count() > 1 {
        (s, None) // a bare IPv6 address
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let addr: IpAddr = host.parse().map_err(|_| format!("{host:?} is not an IP address"))?;
    let port = match port {
        Some(p) => p.parse::<u16>().map_err(|_| format!("{p:?} is not a port"))?,
        None if port_optional => 0,
        None => return Err(format!("{s:?}: a port is required (address:port)")),
    };
    Ok((addr, port))
}

fn parse_netmask(s: &str, v6: bool) -> Result<u8, String> {
    if v6 || !s.contains('.') {
        return s.parse::<u8>().ok().filter(|m| *m <= if v6 { 128 } else { 32 }).ok_or_else(|| format!("{s:?} is not a prefix length"));
    }
    let m: std::net::Ipv4Addr = s.parse().map_err(|_| format!("{s:?} is not a netmask"))?;
    let bits = u32::from(m);
    if bits.leading_ones() + bits.trailing_zeros() != 32 {
        return Err(format!("{s:?} is not a contiguous netmask"));
    }
    u8::try_from(bits.leading_ones()).map_err(|_| "netmask".to_string())
}

#[derive(Default)]
struct Flags {
    cmd: Option<char>,
    proto: Option<Protocol>,
    vip: Option<(IpAddr, u16)>,
    sched: Option<SchedulerKind>,
    persistent: Option<u32>,
    netmask: Option<String>,
    rs: Option<(IpAddr, u16)>,
    fwd: Option<Forwarding>,
    weight: Option<u32>,
    conns: bool,
    stats: bool,
    rate: bool,
    exact: bool,
    nosort: bool,
    set: Option<(u32, u32, u32)>,
    timeout: bool,
    sched_flags: Option<(bool, bool)>,
    mh_size: Option<u32>,
    on_remove: Option<OnRemove>,
    when_full: Option<WhenFull>,
    sloppy: bool,
    timeouts: Option<Timeouts>,
    replace: bool,
}

fn set_cmd(f: &mut Flags, c: char) -> Result<(), String> {
    match f.cmd {
        Some(old) if old != c && !(matches!(old, 'L' | 'l') && matches!(c, 'L' | 'l')) => {
            Err(format!("-{old} and -{c} cannot be combined"))
        }
        _ => {
            f.cmd = Some(c);
            Ok(())
        }
    }
}

fn parse_sched_flags(v: &str) -> Result<(bool, bool), String> {
    let mut fb = false;
    let mut port = false;
    for f in v.split(',').filter(|x| !x.is_empty()) {
        match f.trim_start_matches("sh-").trim_start_matches("mh-") {
            "fallback" | "flag-1" => fb = true,
            "port" | "flag-2" => port = true,
            other => return Err(format!("unknown scheduler flag {other:?} (sh-fallback, sh-port, mh-fallback, mh-port, flag-1, flag-2)")),
        }
    }
    Ok((fb, port))
}

fn parse_timeouts(v: &str) -> Result<Timeouts, String> {
    let n: Vec<u32> =
        v.split(',').map(|x| x.parse::<u32>().map_err(|_| format!("--timeouts {v:?}: {x:?} is not a number"))).collect::<Result<_, _>>()?;
    if n.len() != 5 && n.len() != 6 {
        return Err("--timeouts wants EST,SYN,FIN,CLOSE,UDP[,SYN_UNDER_PRESSURE] seconds".into());
    }
    Ok(Timeouts {
        tcp_established: n[0],
        tcp_syn: n[1],
        tcp_fin: n[2],
        tcp_close: n[3],
        udp: n[4],
        tcp_syn_under_pressure: n.get(5).copied().unwrap_or(Timeouts::default().tcp_syn_under_pressure),
    })
}

/// Parses an ipvsadm-style argument list (without the program name).
pub fn parse_ipvsadm(args: &[String], opts: &mut Options) -> Result<Action, String> {
    let mut f = Flags::default();
    let mut i = 0;
    let next = |i: &mut usize, what: &str| -> Result<String, String> {
        *i += 1;
        args.get(*i).cloned().ok_or_else(|| format!("{what} needs a value"))
    };
    while i < args.len() {
        let a = args[i].as_str();
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let mut val = |what: &str| -> Result<String, String> { inline.clone().map_or_else(|| next(&mut i, what), Ok) };
            match name {
                "add-service" => set_cmd(&mut f, 'A')?,
                "edit-service" => set_cmd(&mut f, 'E')?,
                "delete-service" => set_cmd(&mut f, 'D')?,
                "clear" => set_cmd(&mut f, 'C')?,
                "list" => set_cmd(&mut f, 'L')?,
                "zero" => set_cmd(&mut f, 'Z')?,
                "add-server" => set_cmd(&mut f, 'a')?,
                "edit-server" => set_cmd(&mut f, 'e')?,
                "delete-server" => set_cmd(&mut f, 'd')?,
                "save" => set_cmd(&mut f, 'S')?,
                "restore" => set_cmd(&mut f, 'R')?,
                "help" => set_cmd(&mut f, 'h')?,
                "version" => set_cmd(&mut f, 'v')?,
                "tcp-service" => {
                    f.proto = Some(Protocol::Tcp);
                    f.vip = Some(parse_addr_port(&val("--tcp-service")?, false)?);
                }
                "udp-service" => {
                    f.proto = Some(Protocol::Udp);
                    f.vip = Some(parse_addr_port(&val("--udp-service")?, false)?);
                }
                "fwmark-service" => return Err("firewall-mark services are not supported by rvs".into()),
                "scheduler" => f.sched = Some(val("--scheduler")?.parse()?),
                "persistent" => {
                    let v = match &inline {
                        Some(v) => Some(v.clone()),
                        None => args.get(i + 1).filter(|x| !x.starts_with('-')).cloned().inspect(|_| i += 1),
                    };
                    f.persistent = Some(match v {
                        Some(v) => v.parse().map_err(|_| format!("--persistent {v:?}: not a number of seconds"))?,
                        None => DEFAULT_PERSISTENT_TIMEOUT,
                    });
                }
                "netmask" => f.netmask = Some(val("--netmask")?),
                "real-server" => f.rs = Some(parse_addr_port(&val("--real-server")?, true)?),
                "masquerading" => f.fwd = Some(Forwarding::Nat),
                "gatewaying" => f.fwd = Some(Forwarding::Dr),
                "ipip" => f.fwd = Some(Forwarding::Tunnel),
                "fullnat" => f.fwd = Some(Forwarding::FullNat),
                "weight" => f.weight = Some(val("--weight")?.parse().map_err(|_| "--weight: not a number".to_string())?),
                "numeric" | "sort" => {}
                "connection" => f.conns = true,
                "stats" => f.stats = true,
                "rate" => f.rate = true,
                "exact" => f.exact = true,
                "nosort" => f.nosort = true,
                "json" => opts.json = true,
                "socket" => opts.socket = Some(val("--socket")?),
                "timeout" => f.timeout = true,
                "set" => {
                    let mut n = [0u32; 3];
                    for x in &mut n {
                        *x = next(&mut i, "--set")?.parse().map_err(|_| "--set tcp tcpfin udp: numbers of seconds".to_string())?;
                    }
                    f.set = Some((n[0], n[1], n[2]));
                }
                "sched-flags" => f.sched_flags = Some(parse_sched_flags(&val("--sched-flags")?)?),
                "mh-size" => f.mh_size = Some(val("--mh-size")?.parse().map_err(|_| "--mh-size: not a number".to_string())?),
                "on-remove" => {
                    f.on_remove = Some(match val("--on-remove")?.as_str() {
                        "reset" => OnRemove::Reset,
                        "keep" => OnRemove::Keep,
                        v => return Err(format!("--on-remove {v:?}: reset or keep")),
                    })
                }
                "when-full" => {
                    f.when_full = Some(match val("--when-full")?.as_str() {
                        "refuse" => WhenFull::Refuse,
                        "stateless" => WhenFull::Stateless,
                        v => return Err(format!("--when-full {v:?}: refuse or stateless")),
                    })
                }
                "sloppy-tcp" => f.sloppy = true,
                "replace" => f.replace = true,
                "timeouts" => f.timeouts = Some(parse_timeouts(&val("--timeouts")?)?),
                "start-daemon" | "stop-daemon" | "mcast-interface" | "syncid" | "daemon" => {
                    return Err("connection synchronisation daemons are not part of rvs".into())
                }
                other => return Err(format!("unknown option --{other}")),
            }
        } else if let Some(short) = a.strip_prefix('-').filter(|s| !s.is_empty()) {
            let chars: Vec<char> = short.chars().collect();
            let mut k = 0;
            while k < chars.len() {
                let c = chars[k];
                let rest: String = chars[k + 1..].iter().collect();
                // An option with a value takes the rest of the token or the next one.
                let mut value = |what: &str| -> Result<String, String> {
                    k = chars.len();
                    if rest.is_empty() {
                        next(&mut i, what)
                    } else {
                        Ok(rest.clone())
                    }
                };
                match c {
                    'A' | 'E' | 'D' | 'C' | 'L' | 'l' | 'Z' | 'a' | 'e' | 'd' | 'S' | 'R' | 'h' | 'v' => set_cmd(&mut f, c)?,
                    't' | 'u' => {
                        f.proto = Some(if c == 't' { Protocol::Tcp } else { Protocol::Udp });
                        f.vip = Some(parse_addr_port(&value("-t/-u")?, false)?);
                    }
                    'f' => return Err("firewall-mark services are not supported by rvs".into()),
                    's' => f.sched = Some(value("-s")?.parse()?),
                    'p' => {
                        let v = if !rest.is_empty() {
                            k = chars.len();
                            Some(rest.clone())
                        } else {
                            args.get(i + 1).filter(|x| !x.starts_with('-')).cloned().inspect(|_| i += 1)
                        };
                        f.persistent = Some(match v {
                            Some(v) => v.parse().map_err(|_| format!("-p {v:?}: not a number of seconds"))?,
                            None => DEFAULT_PERSISTENT_TIMEOUT,
                        });
                    }
                    'M' => f.netmask = Some(value("-M")?),
                    'r' => f.rs = Some(parse_addr_port(&value("-r")?, true)?),
                    'g' => f.fwd = Some(Forwarding::Dr),
                    'i' => f.fwd = Some(Forwarding::Tunnel),
                    'm' => f.fwd = Some(Forwarding::Nat),
                    'b' => f.fwd = Some(Forwarding::FullNat),
                    'w' => f.weight = Some(value("-w")?.parse().map_err(|_| "-w: not a number".to_string())?),
                    'x' | 'y' => return Err("connection thresholds (-x/-y) are not supported by rvs".into()),
                    'n' | 'X' => {
                        if c == 'X' {
                            f.exact = true;
                        }
                    }
                    'c' => f.conns = true,
                    'o' => return Err("one-packet scheduling (-o) is not supported by rvs".into()),
                    other => return Err(format!("unknown option -{other}")),
                }
                k += 1;
            }
        } else {
            return Err(format!("unexpected argument {a:?}"));
        }
        i += 1;
    }

    let key = || -> Result<ServiceKey, String> {
        match (f.proto, f.vip) {
            (Some(protocol), Some((vip, port))) => Ok(ServiceKey { protocol, vip, port }),
            _ => Err("a service is required: -t or -u VIP:port".into()),
        }
    };
    let netmask = |vip: IpAddr| -> Result<Option<u8>, String> { f.netmask.as_deref().map(|m| parse_netmask(m, vip.is_ipv6())).transpose() };
    let server = || -> Result<RealServer, String> {
        let (address, port) = f.rs.ok_or("a real server is required: -r RS[:port]")?;
        Ok(RealServer { address, port, weight: f.weight.unwrap_or(1), forwarding: Some(f.fwd.unwrap_or(Forwarding::Dr)) })
    };
    if let Some((tcp, tcpfin, udp)) = f.set {
        return Ok(Action::Change(Op::SetTimeouts { tcp, tcpfin, udp }));
    }
    if f.timeout {
        return Ok(Action::ShowTimeouts);
    }
    Ok(match f.cmd {
        None | Some('L' | 'l') => {
            let kind = if f.conns {
                ListKind::Connections
            } else if f.stats {
                ListKind::Stats
            } else if f.rate {
                ListKind::Rate
            } else {
                ListKind::Services
            };
            Action::List { service: key().ok(), kind, exact: f.exact, nosort: f.nosort }
        }
        Some(c @ ('A' | 'E')) => {
            let k = key()?;
            let persistence = match f.persistent {
                Some(timeout) => Some(Persistence { timeout, netmask: netmask(k.vip)? }),
                None if f.netmask.is_some() => return Err("-M needs -p (persistence)".into()),
                None => None,
            };
            let (fallback, port) = f.sched_flags.unwrap_or((false, false));
            let sched = f.sched.unwrap_or(SchedulerKind::Wlc);
            if c == 'A' {
                let mut s = Service::new(k.protocol, k.vip, k.port);
                s.scheduler = sched;
                s.persistence = persistence;
                s.hash_fallback = fallback;
                s.hash_port = port;
                if let Some(m) = f.mh_size {
                    s.mh_table_size = m;
                }
                if let Some(fw) = f.fwd {
                    s.forwarding = fw;
                }
                s.on_remove = f.on_remove.unwrap_or_default();
                s.when_full = f.when_full;
                s.sloppy_tcp = f.sloppy;
                if let Some(t) = f.timeouts {
                    s.timeouts = t;
                }
                Action::Change(Op::ServiceAdd { service: s })
            } else {
                // ipvsadm -E sets every attribute it knows: unspecified
                // ones return to their defaults.
                let patch = ServicePatch {
                    scheduler: Some(sched),
                    persistence: Some(persistence),
                    hash_fallback: Some(fallback),
                    hash_port: Some(port),
                    mh_table_size: f.mh_size,
                    forwarding: f.fwd,
                    timeouts: f.timeouts,
                    when_full: f.when_full,
                    on_remove: f.on_remove,
                    sloppy_tcp: f.sloppy.then_some(true),
                };
                Action::Change(Op::ServiceEdit { key: k, patch })
            }
        }
        Some('D') => Action::Change(Op::ServiceDel { key: key()? }),
        Some('a') => Action::Change(Op::ServerAdd { key: key()?, server: server()? }),
        Some('e') => {
            let mut s = server()?;
            s.forwarding = f.fwd;
            Action::Change(Op::ServerEdit { key: key()?, server: s })
        }
        Some('d') => {
            let (address, port) = f.rs.ok_or("a real server is required: -r RS[:port]")?;
            Action::Change(Op::ServerDel { key: key()?, address, port })
        }
        Some('C') => Action::Change(Op::Clear),
        Some('Z') => Action::Zero,
        Some('S') => Action::Save,
        Some('R') => Action::Restore { replace: f.replace },
        Some('v') => Action::Simple("version"),
        _ => Action::Help,
    })
}

/// Parses a command line: readable subcommands or ipvsadm's syntax.
pub fn parse(args: &[String]) -> Result<(Action, Options), String> {
    let mut opts = Options::default();
    // Global options may come first.
    let mut args: Vec<String> = args.to_vec();
    while let Some(first) = args.first().cloned() {
        match first.as_str() {
            "--socket" => {
                opts.socket = Some(args.get(1).cloned().ok_or("--socket needs a path")?);
                args.drain(..2);
            }
            "--json" => {
                opts.json = true;
                args.remove(0);
            }
            _ => break,
        }
    }
    let Some(first) = args.first().cloned() else {
        return Ok((Action::List { service: None, kind: ListKind::Services, exact: false, nosort: false }, opts));
    };
    if first.starts_with('-') {
        return parse_ipvsadm(&args, &mut opts).map(|a| (a, opts));
    }
    let rest = &args[1..];
    let words = |n: usize, usage: &str| -> Result<(&[String], Vec<String>), String> {
        if rest.len() < n {
            return Err(format!("usage: rvsadm {usage}"));
        }
        Ok((&rest[..n], rest[n..].to_vec()))
    };
    let proto_flag = |p: &str| -> Result<&'static str, String> {
        match p {
            "tcp" => Ok("-t"),
            "udp" => Ok("-u"),
            _ => Err(format!("{p:?}: tcp or udp")),
        }
    };
    // Readable flags map onto ipvsadm's.
    let translate = |extra: Vec<String>| -> Vec<String> {
        let mut out = Vec::new();
        let mut it = extra.into_iter();
        while let Some(x) = it.next() {
            match x.as_str() {
                "--forwarding" | "--forward" => match it.next().as_deref() {
                    Some("nat" | "masq") => out.push("-m".into()),
                    Some("dr" | "route") => out.push("-g".into()),
                    Some("tunnel" | "tun" | "ipip") => out.push("-i".into()),
                    Some("fullnat" | "fnat") => out.push("-b".into()),
                    other => out.push(format!("--forwarding={}", other.unwrap_or(""))),
                },
                _ => out.push(x),
            }
        }
        out
    };
    let action = match (first.as_str(), rest.first().map(String::as_str)) {
        ("service", Some(verb @ ("add" | "edit" | "del" | "delete"))) => {
            let (w, extra) = words(3, "service add|edit|del tcp|udp VIP:port [--scheduler S] [--persistent T] ...")?;
            let flag = match verb {
                "add" => "-A",
                "edit" => "-E",
                _ => "-D",
            };
            let mut v = vec![flag.to_string(), proto_flag(&w[1])?.to_string(), w[2].clone()];
            v.extend(translate(extra));
            parse_ipvsadm(&v, &mut opts)?
        }
        ("server", Some(verb @ ("add" | "edit" | "del" | "delete"))) => {
            let (w, extra) = words(4, "server add|edit|del tcp|udp VIP:port RS[:port] [--weight W] [--forwarding nat|dr|tunnel|fullnat]")?;
            let flag = match verb {
                "add" => "-a",
                "edit" => "-e",
                _ => "-d",
            };
            let mut v = vec![flag.to_string(), proto_flag(&w[1])?.to_string(), w[2].clone(), "-r".into(), w[3].clone()];
            v.extend(translate(extra));
            parse_ipvsadm(&v, &mut opts)?
        }
        ("show", what) => match what.unwrap_or("services") {
            "services" | "list" => Action::List { service: None, kind: ListKind::Services, exact: false, nosort: false },
            "stats" => Action::List { service: None, kind: ListKind::Stats, exact: true, nosort: false },
            "rate" => Action::List { service: None, kind: ListKind::Rate, exact: true, nosort: false },
            "connections" | "sessions" => Action::List { service: None, kind: ListKind::Connections, exact: false, nosort: false },
            "drops" => Action::Show(Show::Drops),
            "neighbors" | "neighbours" => Action::Show(Show::Neighbors),
            "health" => Action::Show(Show::Health),
            "config" => Action::Show(Show::Config),
            other => return Err(format!("show {other:?}: services, stats, rate, connections, drops, neighbors, health or config")),
        },
        ("stats", _) => Action::List { service: None, kind: ListKind::Stats, exact: true, nosort: false },
        ("reload", _) => Action::Simple("reload"),
        ("version", _) => Action::Simple("version"),
        ("ping", _) => Action::Simple("ping"),
        ("zero", _) => Action::Zero,
        ("clear", _) => Action::Change(Op::Clear),
        ("save", _) => Action::Save,
        ("restore", _) => Action::Restore { replace: rest.iter().any(|a| a == "--replace") },
        ("help", _) => Action::Help,
        (other, _) => return Err(format!("unknown command {other:?} (try rvsadm help)")),
    };
    if rest.iter().any(|a| a == "--json") {
        opts.json = true;
    }
    Ok((action, opts))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn p(s: &str) -> Action {
        let v: Vec<String> = s.split_whitespace().map(str::to_string).collect();
        parse(&v).unwrap_or_else(|e| panic!("{s}: {e}")).0
    }

    fn key(s: &str) -> ServiceKey {
        let (vip, port) = parse_addr_port(s, false).unwrap();
        ServiceKey { protocol: Protocol::Tcp, vip, port }
    }

    #[test]
    fn addresses() {
        assert_eq!(parse_addr_port("198.18.0.1:80", false).unwrap(), ("198.18.0.1".parse().unwrap(), 80));
        assert_eq!(parse_addr_port("[2001:db8::1]:443", false).unwrap(), ("2001:db8::1".parse().unwrap(), 443));
        assert_eq!(parse_addr_port("2001:db8::1", true).unwrap(), ("2001:db8::1".parse().unwrap(), 0));
        assert_eq!(parse_addr_port("198.18.0.1", true).unwrap().1, 0);
        assert!(parse_addr_port("198.18.0.1", false).is_err());
        assert!(parse_addr_port("host:80", false).is_err());
        assert_eq!(parse_netmask("255.255.255.0", false).unwrap(), 24);
        assert!(parse_netmask("255.0.255.0", false).is_err());
        assert_eq!(parse_netmask("64", true).unwrap(), 64);
    }

    #[test]
    fn ipvsadm_add_service_with_defaults() {
        match p("-A -t 198.18.0.100:80") {
            Action::Change(Op::ServiceAdd { service }) => {
                assert_eq!(service.scheduler, SchedulerKind::Wlc);
                assert!(service.persistence.is_none());
            }
            a => panic!("{a:?}"),
        }
        match p("-A -u 198.18.0.100:53 -s rr -p -M 255.255.255.0") {
            Action::Change(Op::ServiceAdd { service }) => {
                assert_eq!(service.protocol, Protocol::Udp);
                assert_eq!(service.persistence, Some(Persistence { timeout: 360, netmask: Some(24) }));
            }
            a => panic!("{a:?}"),
        }
        match p("-A -t 198.18.0.100:80 -s mh -p 600 --sched-flags mh-fallback,mh-port --on-remove keep") {
            Action::Change(Op::ServiceAdd { service }) => {
                assert_eq!(service.persistence.unwrap().timeout, 600);
                assert!(service.hash_fallback && service.hash_port);
                assert_eq!(service.on_remove, OnRemove::Keep);
            }
            a => panic!("{a:?}"),
        }
    }

    #[test]
    fn ipvsadm_servers() {
        assert_eq!(
            p("-a -t 198.18.0.100:80 -r 198.18.1.11:8080 -m -w 3"),
            Action::Change(Op::ServerAdd {
                key: key("198.18.0.100:80"),
                server: RealServer { address: "198.18.1.11".parse().unwrap(), port: 8080, weight: 3, forwarding: Some(Forwarding::Nat) }
            })
        );
        // ipvsadm's default method is -g, weight 1, port the service's.
        match p("-a -t 198.18.0.100:80 -r 198.18.1.11") {
            Action::Change(Op::ServerAdd { server, .. }) => {
                assert_eq!((server.port, server.weight, server.forwarding), (0, 1, Some(Forwarding::Dr)));
            }
            a => panic!("{a:?}"),
        }
        assert!(matches!(p("-d -t 198.18.0.100:80 -r 198.18.1.11:8080"), Action::Change(Op::ServerDel { port: 8080, .. })));
        assert!(matches!(
            p("-e -t 198.18.0.100:80 -r 198.18.1.11:8080 -w 0"),
            Action::Change(Op::ServerEdit { server: RealServer { weight: 0, .. }, .. })
        ));
        assert!(matches!(
            p("-a -t [2001:db8::100]:80 -r [2001:db8:1::11]:80 -b"),
            Action::Change(Op::ServerAdd { server: RealServer { forwarding: Some(Forwarding::FullNat), .. }, .. })
        ));
    }

    #[test]
    fn ipvsadm_listing_flags_combine() {
        assert_eq!(p("-Ln"), Action::List { service: None, kind: ListKind::Services, exact: false, nosort: false });
        assert_eq!(p("-L -n --stats --exact"), Action::List { service: None, kind: ListKind::Stats, exact: true, nosort: false });
        assert_eq!(p("-lnc"), Action::List { service: None, kind: ListKind::Connections, exact: false, nosort: false });
        assert_eq!(
            p("-L -t 198.18.0.100:80 --rate"),
            Action::List { service: Some(key("198.18.0.100:80")), kind: ListKind::Rate, exact: false, nosort: false }
        );
        assert_eq!(p("--list --numeric --nosort"), Action::List { service: None, kind: ListKind::Services, exact: false, nosort: true });
        assert_eq!(
            p("-t198.18.0.100:80 -L"),
            Action::List { service: Some(key("198.18.0.100:80")), kind: ListKind::Services, exact: false, nosort: false }
        );
    }

    #[test]
    fn ipvsadm_misc_commands() {
        assert_eq!(p("-C"), Action::Change(Op::Clear));
        assert_eq!(p("-Z"), Action::Zero);
        assert_eq!(p("-S -n"), Action::Save);
        assert_eq!(p("-R"), Action::Restore { replace: false });
        assert_eq!(p("-R --replace"), Action::Restore { replace: true });
        assert_eq!(p("--set 900 60 300"), Action::Change(Op::SetTimeouts { tcp: 900, tcpfin: 60, udp: 300 }));
        assert_eq!(p("--timeout"), Action::ShowTimeouts);
        assert!(matches!(
            p("-E -t 198.18.0.100:80 -s rr"),
            Action::Change(Op::ServiceEdit { patch: ServicePatch { scheduler: Some(SchedulerKind::Rr), persistence: Some(None), .. }, .. })
        ));
    }

    #[test]
    fn refusals_are_explicit() {
        let bad = |s: &str| {
            let v: Vec<String> = s.split_whitespace().map(str::to_string).collect();
            parse(&v).unwrap_err()
        };
        assert!(bad("-A -t 198.18.0.100").contains("port"));
        assert!(bad("-A -f 1").contains("firewall-mark"));
        assert!(bad("-A -t 198.18.0.100:80 -s fastest").contains("unknown scheduler"));
        assert!(bad("-A -D -t 198.18.0.100:80").contains("cannot be combined"));
        assert!(bad("-a -t 198.18.0.100:80").contains("-r"));
        assert!(bad("-L --bogus").contains("--bogus"));
        assert!(bad("frobnicate").contains("unknown command"));
    }

    #[test]
    fn readable_forms() {
        assert_eq!(p("service add tcp 198.18.0.100:80 --scheduler rr"), p("-A -t 198.18.0.100:80 -s rr"));
        assert_eq!(
            p("server add tcp 198.18.0.100:80 198.18.1.11:8080 --weight 2 --forwarding nat"),
            p("-a -t 198.18.0.100:80 -r 198.18.1.11:8080 -w 2 -m")
        );
        assert_eq!(p("server del udp 198.18.0.100:53 198.18.1.11"), p("-d -u 198.18.0.100:53 -r 198.18.1.11"));
        assert_eq!(p("show connections"), p("-L -n -c"));
        assert_eq!(p("show drops"), Action::Show(Show::Drops));
        let (a, o) = parse(&["--json".into(), "stats".into()]).unwrap();
        assert!(o.json);
        assert!(matches!(a, Action::List { kind: ListKind::Stats, .. }));
    }
}
