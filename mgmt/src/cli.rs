//! rvsadm's command line: ipvsadm's, plus readable subcommands.
//!
//! ipvsadm syntax, with the same flags and defaults (scheduler `wlc`, `-p`
//! alone = 360 s, `-a` without a method = `-g`, weight 1):
//!
//! ```text
//! rvsadm -A|-E -t|-u VIP:port [-s sched] [-p [timeout]] [-M netmask] [-b|--sched-flags f,..]
//! rvsadm -D -t|-u VIP:port
//! rvsadm -a|-e -t|-u VIP:port -r RS[:port] [-g|-i|-m|--fullnat] [-w weight]
//! rvsadm -d -t|-u VIP:port -r RS[:port]
//! rvsadm -L|-l [-t|-u VIP:port] [-n] [--stats|--rate|-c] [--exact] [--nosort]
//! rvsadm -C | -Z | -S [-n] | -R | --set tcp tcpfin udp | --timeout
//! ```
//!
//! rvs adds: `--fullnat` (full NAT, DPVS's long option; DPVS's short `-b`
//! is ipvsadm's `--sched-flags` here, so ipvsadm scripts keep working), and, on
//! `-A`/`-E`, `--mh-size N`, `--on-remove reset|keep`, `--when-full
//! refuse|stateless`, `--sloppy-tcp`, `--cluster`, `--synproxy`, `--synproxy-invalid-ack
//! reset|drop`, `--timeouts EST,SYN,FIN,CLOSE,UDP`
//! (seconds), which `-S` writes when they are not the defaults, and
//! `--extra JSON` for every field without a flag ([`extra_of`]), so that
//! `-S` / `-C` / `-R` restores exactly. `--json` prints the raw reply.
//!
//! Readable forms: `rvsadm service add|edit|del tcp VIP:port [flags]`,
//! `rvsadm server add|edit|del tcp VIP:port RS[:port] [flags]`,
//! `rvsadm show [services|stats|rate|connections|drops|neighbors|health|config|ha]`,
//! `rvsadm reload [--force]|save-config [FILE]|zero|clear|save|restore|version|ping`.
use crate::ops::{Op, ServicePatch};
use config::{Forwarding, InvalidAck, OnRemove, Persistence, Protocol, RealServer, SchedulerKind, Service, ServiceKey, Timeouts, WhenFull};
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
    /// The pair: state, master, adverts, sync.
    Ha,
    /// Scale-out: the VIPs announced, the drain state.
    Node,
}

/// A parsed command line.
#[derive(Clone, Debug, PartialEq)]
#[expect(clippy::large_enum_variant, reason = "parsed once per command line")]
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
        /// `-n`: numbers, not service and host names.
        numeric: bool,
    },
    /// A configuration change.
    Change(Op),
    /// `explain tcp|udp CLIENT:PORT VIP:PORT`: what rvs does with a flow
    /// and why.
    Explain {
        /// The protocol.
        protocol: Protocol,
        /// The client's address and port.
        client: (IpAddr, u16),
        /// The virtual service's address and port.
        vip: (IpAddr, u16),
    },
    /// `server maint|ready`: take a real server out of service by hand
    /// (drained; health checks cannot bring it back) or give it back.
    Maint {
        /// The service.
        key: ServiceKey,
        /// The real server.
        address: IpAddr,
        /// Its port (0: the service's).
        port: u16,
        /// Maintenance on (maint) or off (ready).
        maint: bool,
    },
    /// `reload [--force]`: re-read the file; `--force` discards unsaved
    /// changes made through the socket.
    Reload {
        /// Discard unsaved runtime changes.
        force: bool,
    },
    /// `save-config [FILE]`: the running configuration as TOML, into
    /// rvsd's own file (no FILE) or FILE.
    SaveConfig(Option<String>),
    /// `-Z` (every service) or `-Z -t|-u VIP:port` (that one).
    Zero(Option<ServiceKey>),
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
    /// `--start-daemon` / `--stop-daemon`.
    SyncDaemon(SyncDaemon),
    /// `-L --daemon`: the sync daemon's state.
    ListDaemon,
    /// `choose tcp|udp VIP:port CLIENT:PORT...`: the real server a hashing
    /// scheduler gives each client's new flow.
    Choose {
        /// The service.
        key: ServiceKey,
        /// The flows' clients.
        clients: Vec<(IpAddr, u16)>,
    },
    /// `-h`.
    Help,
}

/// A refused command line, in words for the operator.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(String);

fn usage(msg: impl Into<String>) -> UsageError {
    UsageError(msg.into())
}

impl From<String> for UsageError {
    fn from(msg: String) -> Self {
        UsageError(msg)
    }
}

impl From<&str> for UsageError {
    fn from(msg: &str) -> Self {
        UsageError(msg.to_string())
    }
}

impl From<config::UnknownScheduler> for UsageError {
    fn from(e: config::UnknownScheduler) -> Self {
        usage(e.to_string())
    }
}

/// ipvsadm's `--start-daemon` / `--stop-daemon`: in rvs, session sync is
/// part of the pair (`[ha]`), with the role elected; these start and pause
/// it, checking what they name against the configuration.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SyncDaemon {
    /// Start (resume) or stop (pause).
    pub start: bool,
    /// `master` or `backup` as ipvsadm names it (informational: the
    /// election decides).
    pub role: Option<String>,
    /// `--syncid`.
    pub syncid: Option<u8>,
    /// `--mcast-interface`.
    pub interface: Option<String>,
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
pub fn parse_addr_port(s: &str, port_optional: bool) -> Result<(IpAddr, u16), UsageError> {
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
        None => return Err(usage(format!("{s:?}: a port is required (address:port)"))),
    };
    Ok((addr, port))
}

fn parse_netmask(s: &str, v6: bool) -> Result<u8, UsageError> {
    if v6 || !s.contains('.') {
        return s
            .parse::<u8>()
            .ok()
            .filter(|m| *m <= if v6 { 128 } else { 32 })
            .ok_or_else(|| usage(format!("{s:?} is not a prefix length")));
    }
    let m: std::net::Ipv4Addr = s.parse().map_err(|_| format!("{s:?} is not a netmask"))?;
    let bits = u32::from(m);
    if bits.leading_ones() + bits.trailing_zeros() != 32 {
        return Err(usage(format!("{s:?} is not a contiguous netmask")));
    }
    u8::try_from(bits.leading_ones()).map_err(|_| usage("netmask"))
}

#[derive(Default)]
struct Flags {
    daemon: Option<SyncDaemon>,
    mcast_interface: Option<String>,
    syncid: Option<u8>,
    list_daemon: bool,
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
    numeric: bool,
    set: Option<(u32, u32, u32)>,
    timeout: bool,
    sched_flags: Option<(bool, bool)>,
    mh_size: Option<u32>,
    on_remove: Option<OnRemove>,
    when_full: Option<WhenFull>,
    sloppy: bool,
    cluster: bool,
    synproxy: bool,
    invalid_ack: Option<InvalidAck>,
    timeouts: Option<Timeouts>,
    extra: Option<serde_json::Map<String, serde_json::Value>>,
    replace: bool,
}

fn set_cmd(f: &mut Flags, c: char) -> Result<(), UsageError> {
    match f.cmd {
        Some(old) if old != c && !(matches!(old, 'L' | 'l') && matches!(c, 'L' | 'l')) => {
            Err(usage(format!("-{old} and -{c} cannot be combined")))
        }
        _ => {
            f.cmd = Some(c);
            Ok(())
        }
    }
}

fn parse_sched_flags(v: &str) -> Result<(bool, bool), UsageError> {
    let mut fb = false;
    let mut port = false;
    for f in v.split(',').filter(|x| !x.is_empty()) {
        match f.trim_start_matches("sh-").trim_start_matches("mh-") {
            "fallback" | "flag-1" => fb = true,
            "port" | "flag-2" => port = true,
            other => {
                return Err(usage(format!("unknown scheduler flag {other:?} (sh-fallback, sh-port, mh-fallback, mh-port, flag-1, flag-2)")))
            }
        }
    }
    Ok((fb, port))
}

/// The fields of a service that have no flag of their own (health check,
/// sorry server, feedback agent, local addresses, source lists, name, the
/// service's forwarding method), as `-S` writes them after `--extra`: one
/// JSON object with no whitespace, so a saved line stays one word per
/// argument. Only fields that differ from a new service's are written.
pub fn extra_of(s: &Service) -> Option<String> {
    let mut v = serde_json::to_value(s).ok()?;
    let base = serde_json::to_value(Service::new(s.protocol, s.vip, s.port)).ok()?;
    let (serde_json::Value::Object(m), serde_json::Value::Object(b)) = (&mut v, &base) else { return None };
    m.retain(|k, val| !FLAGGED.contains(&k.as_str()) && b.get(k) != Some(val));
    if m.is_empty() {
        return None;
    }
    one_word(m)
}

/// Compact JSON as one command-line word: it has whitespace only inside
/// strings, escaped there.
fn one_word(v: &impl serde::Serialize) -> Option<String> {
    Some(serde_json::to_string(v).ok()?.replace(' ', "\\u0020"))
}

/// Service fields `-S` carries with flags (or `-a` lines) of their own.
const FLAGGED: [&str; 16] = [
    "real_servers",
    "vip",
    "port",
    "protocol",
    "scheduler",
    "mh_table_size",
    "hash_fallback",
    "hash_port",
    "persistence",
    "timeouts",
    "when_full",
    "sloppy_tcp",
    "cluster",
    "synproxy",
    "synproxy_invalid_ack",
    "on_remove",
];

/// The fields of a real server without a flag (its own health checks), as
/// `-S` writes them after `-a ... --extra`, as [`extra_of`] does for a
/// service.
pub fn server_extra_of(r: &RealServer) -> Option<String> {
    if r.health_checks.is_empty() {
        return None;
    }
    one_word(&serde_json::json!({ "health_checks": r.health_checks }))
}

/// The health checks an `-a ... --extra` object gives a real server.
fn server_extra(extra: &serde_json::Map<String, serde_json::Value>) -> Result<Vec<config::HealthCheck>, UsageError> {
    let mut checks = Vec::new();
    for (k, x) in extra {
        if k != "health_checks" {
            return Err(usage(format!("--extra: {k:?} is not a real-server field without a flag (health_checks)")));
        }
        checks = serde_json::from_value(x.clone()).map_err(|e| usage(format!("--extra: health_checks: {e}")))?;
    }
    Ok(checks)
}

/// `s` with the fields of an `--extra` object; refused naming the field.
fn with_extra(s: &Service, extra: &serde_json::Map<String, serde_json::Value>) -> Result<Service, UsageError> {
    let mut v = serde_json::to_value(s).map_err(|e| usage(e.to_string()))?;
    if let serde_json::Value::Object(m) = &mut v {
        for (k, x) in extra {
            if FLAGGED.contains(&k.as_str()) {
                return Err(usage(format!("--extra: {k:?} has its own flag (or line)")));
            }
            // (`health_checks` is not written while empty.)
            if !m.contains_key(k) && k != "health_checks" {
                return Err(usage(format!("--extra: {k:?} is not a service field")));
            }
            m.insert(k.clone(), x.clone());
        }
    }
    serde_json::from_value(v).map_err(|e| usage(format!("--extra: {e}")))
}

fn parse_timeouts(v: &str) -> Result<Timeouts, UsageError> {
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

/// The argument list being read, one token at a time.
struct Cursor<'a> {
    args: &'a [String],
    i: usize,
}

impl Cursor<'_> {
    /// The token after the current one, which becomes current.
    fn value(&mut self, what: &str) -> Result<String, UsageError> {
        self.i += 1;
        self.args.get(self.i).cloned().ok_or_else(|| usage(format!("{what} needs a value")))
    }

    /// The next token if it is not an option (ipvsadm's `-p [timeout]`).
    fn optional_value(&mut self) -> Option<String> {
        let v = self.args.get(self.i + 1).filter(|x| !x.starts_with('-')).cloned();
        if v.is_some() {
            self.i += 1;
        }
        v
    }
}

/// Where one option finds its value: glued to it (`-w3`, `--weight=3`) or
/// in the next token.
struct Arg<'c, 'a> {
    /// The option as the user spelled it, for messages.
    spelled: String,
    glued: Option<String>,
    used_glued: bool,
    cur: &'c mut Cursor<'a>,
}

impl Arg<'_, '_> {
    fn value(&mut self) -> Result<String, UsageError> {
        match self.glued.take() {
            Some(v) => {
                self.used_glued = true;
                Ok(v)
            }
            None => self.cur.value(&self.spelled),
        }
    }

    fn optional(&mut self) -> Option<String> {
        match self.glued.take() {
            Some(v) => {
                self.used_glued = true;
                Some(v)
            }
            None => self.cur.optional_value(),
        }
    }

    fn number<T: std::str::FromStr>(&mut self, unit: &str) -> Result<T, UsageError> {
        let v = self.value()?;
        v.parse().map_err(|_| usage(format!("{} {v:?}: not {unit}", self.spelled)))
    }

    fn choice<T: Copy>(&mut self, choices: &[(&str, T)]) -> Result<T, UsageError> {
        let v = self.value()?;
        choices.iter().find(|(n, _)| *n == v).map(|(_, t)| *t).ok_or_else(|| {
            let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
            usage(format!("{} {v:?}: {}", self.spelled, names.join(" or ")))
        })
    }
}

/// ipvsadm's one-letter options, by the long name that means the same.
fn long_name(short: char) -> Option<&'static str> {
    Some(match short {
        'A' => "add-service",
        'E' => "edit-service",
        'D' => "delete-service",
        'C' => "clear",
        'L' | 'l' => "list",
        'Z' => "zero",
        'a' => "add-server",
        'e' => "edit-server",
        'd' => "delete-server",
        'S' => "save",
        'R' => "restore",
        'h' => "help",
        'v' => "version",
        't' => "tcp-service",
        'u' => "udp-service",
        'f' => "fwmark-service",
        's' => "scheduler",
        'p' => "persistent",
        'M' => "netmask",
        'r' => "real-server",
        'g' => "gatewaying",
        'i' => "ipip",
        'm' => "masquerading",
        // ipvsadm's -b is --sched-flags; full NAT is --fullnat (DPVS's
        // long spelling; its -b would collide).
        'b' => "sched-flags",
        'w' => "weight",
        'x' => "u-threshold",
        'y' => "l-threshold",
        'n' => "numeric",
        'X' => "exact",
        'c' => "connection",
        'o' => "ops",
        _ => return None,
    })
}

/// The command an option selects, as its ipvsadm letter.
fn command_letter(name: &str) -> Option<char> {
    Some(match name {
        "add-service" => 'A',
        "edit-service" => 'E',
        "delete-service" => 'D',
        "clear" => 'C',
        "list" => 'L',
        "zero" => 'Z',
        "add-server" => 'a',
        "edit-server" => 'e',
        "delete-server" => 'd',
        "save" => 'S',
        "restore" => 'R',
        "help" => 'h',
        "version" => 'v',
        _ => return None,
    })
}

/// Applies one option (by its long name) to the flags read so far.
fn apply_option(f: &mut Flags, opts: &mut Options, name: &str, arg: &mut Arg<'_, '_>) -> Result<(), UsageError> {
    if let Some(c) = command_letter(name) {
        return set_cmd(f, c);
    }
    match name {
        "tcp-service" | "udp-service" => {
            f.proto = Some(if name == "tcp-service" { Protocol::Tcp } else { Protocol::Udp });
            f.vip = Some(parse_addr_port(&arg.value()?, false)?);
        }
        "fwmark-service" => return Err(usage("firewall-mark services are not supported by rvs")),
        "scheduler" => f.sched = Some(arg.value()?.parse()?),
        "persistent" => {
            f.persistent = Some(match arg.optional() {
                Some(v) => v.parse().map_err(|_| usage(format!("{} {v:?}: not a number of seconds", arg.spelled)))?,
                None => DEFAULT_PERSISTENT_TIMEOUT,
            });
        }
        "netmask" => f.netmask = Some(arg.value()?),
        "real-server" => f.rs = Some(parse_addr_port(&arg.value()?, true)?),
        "masquerading" => f.fwd = Some(Forwarding::Nat),
        "gatewaying" => f.fwd = Some(Forwarding::Dr),
        "ipip" => f.fwd = Some(Forwarding::Tunnel),
        "fullnat" => f.fwd = Some(Forwarding::FullNat),
        "weight" => f.weight = Some(arg.number("a number")?),
        "numeric" => f.numeric = true,
        "sort" => {}
        "connection" => f.conns = true,
        "stats" => f.stats = true,
        "rate" => f.rate = true,
        "exact" => f.exact = true,
        "nosort" => f.nosort = true,
        "json" => opts.json = true,
        "socket" => opts.socket = Some(arg.value()?),
        "timeout" => f.timeout = true,
        "set" => {
            let mut n = [0u32; 3];
            for x in &mut n {
                *x = arg.number("a number of seconds (--set tcp tcpfin udp)")?;
            }
            f.set = Some((n[0], n[1], n[2]));
        }
        "sched-flags" => f.sched_flags = Some(parse_sched_flags(&arg.value()?)?),
        "mh-size" => f.mh_size = Some(arg.number("a number")?),
        "on-remove" => f.on_remove = Some(arg.choice(&[("reset", OnRemove::Reset), ("keep", OnRemove::Keep)])?),
        "when-full" => f.when_full = Some(arg.choice(&[("refuse", WhenFull::Refuse), ("stateless", WhenFull::Stateless)])?),
        "sloppy-tcp" => f.sloppy = true,
        "cluster" => f.cluster = true,
        "synproxy" => f.synproxy = true,
        "synproxy-invalid-ack" => f.invalid_ack = Some(arg.choice(&[("reset", InvalidAck::Reset), ("drop", InvalidAck::Drop)])?),
        "replace" => f.replace = true,
        "timeouts" => f.timeouts = Some(parse_timeouts(&arg.value()?)?),
        "extra" => {
            let v = arg.value()?;
            match serde_json::from_str::<serde_json::Value>(&v) {
                Ok(serde_json::Value::Object(m)) => f.extra = Some(m),
                _ => return Err(usage(format!("--extra {v:?}: a JSON object of service fields (as `rvsadm -S` writes)"))),
            }
        }
        "u-threshold" | "l-threshold" => return Err(usage("connection thresholds (-x/-y) are not supported by rvs")),
        "ops" => return Err(usage("one-packet scheduling (-o) is not supported by rvs")),
        "start-daemon" => {
            f.daemon = Some(SyncDaemon {
                start: true,
                role: Some(arg.choice(&[("master", "master"), ("backup", "backup")])?.to_string()),
                ..f.daemon.take().unwrap_or_default()
            })
        }
        "stop-daemon" => {
            let role = arg.optional().filter(|r| r == "master" || r == "backup");
            f.daemon = Some(SyncDaemon { start: false, role, ..f.daemon.take().unwrap_or_default() });
        }
        "mcast-interface" => f.mcast_interface = Some(arg.value()?),
        "syncid" => f.syncid = Some(arg.number("a sync id (0..=255)")?),
        "daemon" => f.list_daemon = true,
        _ => return Err(usage(format!("unknown option {}", arg.spelled))),
    }
    Ok(())
}

/// Reads every option of an ipvsadm-style argument list into flags.
fn read_flags(args: &[String], opts: &mut Options) -> Result<Flags, UsageError> {
    let mut f = Flags::default();
    let mut cur = Cursor { args, i: 0 };
    while let Some(a) = args.get(cur.i) {
        if let Some(long) = a.strip_prefix("--") {
            let (name, glued) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let mut arg = Arg { spelled: format!("--{name}"), glued, used_glued: false, cur: &mut cur };
            apply_option(&mut f, opts, name, &mut arg)?;
        } else if let Some(short) = a.strip_prefix('-').filter(|s| !s.is_empty()) {
            // A cluster of letters (`-lnc`); an option with a value takes
            // the rest of the cluster (`-t198.18.0.1:80`) or the next token.
            for (k, c) in short.char_indices() {
                let name = long_name(c).ok_or_else(|| usage(format!("unknown option -{c}")))?;
                let rest = &short[k + c.len_utf8()..];
                let glued = (!rest.is_empty()).then(|| rest.to_string());
                let mut arg = Arg { spelled: format!("-{c}"), glued, used_glued: false, cur: &mut cur };
                apply_option(&mut f, opts, name, &mut arg)?;
                if arg.used_glued {
                    break;
                }
            }
        } else {
            return Err(usage(format!("unexpected argument {a:?}")));
        }
        cur.i += 1;
    }
    Ok(f)
}

impl Flags {
    fn key(&self) -> Result<ServiceKey, UsageError> {
        match (self.proto, self.vip) {
            (Some(protocol), Some((vip, port))) => Ok(ServiceKey { protocol, vip, port }),
            _ => Err(usage("a service is required: -t or -u VIP:port")),
        }
    }

    fn real_server(&self) -> Result<(IpAddr, u16), UsageError> {
        self.rs.ok_or_else(|| usage("a real server is required: -r RS[:port]"))
    }

    fn server(&self) -> Result<RealServer, UsageError> {
        let (address, port) = self.real_server()?;
        let mut r = RealServer {
            port,
            weight: self.weight.unwrap_or(1),
            forwarding: Some(self.fwd.unwrap_or(Forwarding::Dr)),
            ..RealServer::new(address)
        };
        if let Some(extra) = &self.extra {
            r.health_checks = server_extra(extra)?;
        }
        Ok(r)
    }

    fn list(&self) -> Action {
        let kind = if self.conns {
            ListKind::Connections
        } else if self.stats {
            ListKind::Stats
        } else if self.rate {
            ListKind::Rate
        } else {
            ListKind::Services
        };
        Action::List { service: self.key().ok(), kind, exact: self.exact, nosort: self.nosort, numeric: self.numeric }
    }

    fn persistence(&self, vip: IpAddr) -> Result<Option<Persistence>, UsageError> {
        match self.persistent {
            Some(timeout) => {
                let netmask = self.netmask.as_deref().map(|m| parse_netmask(m, vip.is_ipv6())).transpose()?;
                Ok(Some(Persistence { timeout, netmask }))
            }
            None if self.netmask.is_some() => Err(usage("-M needs -p (persistence)")),
            None => Ok(None),
        }
    }

    /// `-A`: a new service; what is not given takes ipvsadm's defaults.
    fn add_service(&self) -> Result<Op, UsageError> {
        let k = self.key()?;
        let mut s = Service::new(k.protocol, k.vip, k.port);
        let (fallback, port) = self.sched_flags.unwrap_or((false, false));
        s.scheduler = self.sched.unwrap_or(SchedulerKind::Wlc);
        s.persistence = self.persistence(k.vip)?;
        s.hash_fallback = fallback;
        s.hash_port = port;
        if let Some(m) = self.mh_size {
            s.mh_table_size = m;
        }
        if let Some(fw) = self.fwd {
            s.forwarding = fw;
        }
        s.on_remove = self.on_remove.unwrap_or_default();
        s.when_full = self.when_full;
        s.sloppy_tcp = self.sloppy;
        s.cluster = self.cluster;
        s.synproxy = self.synproxy;
        s.synproxy_invalid_ack = self.invalid_ack.unwrap_or_default();
        if let Some(t) = self.timeouts {
            s.timeouts = t;
        }
        if let Some(extra) = &self.extra {
            s = with_extra(&s, extra)?;
        }
        Ok(Op::ServiceAdd { service: s })
    }

    /// `-E`: ipvsadm sets every attribute it knows, so unspecified ones
    /// return to their defaults.
    fn edit_service(&self) -> Result<Op, UsageError> {
        let key = self.key()?;
        if self.extra.is_some() {
            return Err(usage(
                "--extra is for -A (a service as -S saved it); change a running service's other fields in the file and reload",
            ));
        }
        let (fallback, port) = self.sched_flags.unwrap_or((false, false));
        let patch = ServicePatch {
            scheduler: Some(self.sched.unwrap_or(SchedulerKind::Wlc)),
            persistence: Some(self.persistence(key.vip)?),
            hash_fallback: Some(fallback),
            hash_port: Some(port),
            mh_table_size: self.mh_size,
            forwarding: self.fwd,
            timeouts: self.timeouts,
            when_full: self.when_full,
            on_remove: self.on_remove,
            sloppy_tcp: self.sloppy.then_some(true),
            cluster: Some(self.cluster),
            synproxy: Some(self.synproxy),
            synproxy_invalid_ack: Some(self.invalid_ack.unwrap_or_default()),
        };
        Ok(Op::ServiceEdit { key, patch })
    }

    /// The action the flags ask for.
    fn action(&self) -> Result<Action, UsageError> {
        if let Some((tcp, tcpfin, udp)) = self.set {
            return Ok(Action::Change(Op::SetTimeouts { tcp, tcpfin, udp }));
        }
        if self.timeout {
            return Ok(Action::ShowTimeouts);
        }
        if let Some(d) = &self.daemon {
            return Ok(Action::SyncDaemon(SyncDaemon { syncid: self.syncid, interface: self.mcast_interface.clone(), ..d.clone() }));
        }
        if self.list_daemon {
            return Ok(Action::ListDaemon);
        }
        Ok(match self.cmd {
            None | Some('L' | 'l') => self.list(),
            Some('A') => Action::Change(self.add_service()?),
            Some('E') => Action::Change(self.edit_service()?),
            Some('D') => Action::Change(Op::ServiceDel { key: self.key()? }),
            Some('a') => Action::Change(Op::ServerAdd { key: self.key()?, server: self.server()? }),
            Some('e') => {
                if self.extra.is_some() {
                    return Err(usage("--extra is for -a (a server as -S saved it); change a server's checks in the file and reload"));
                }
                let mut s = self.server()?;
                s.forwarding = self.fwd;
                Action::Change(Op::ServerEdit { key: self.key()?, server: s })
            }
            Some('d') => {
                let (address, port) = self.real_server()?;
                Action::Change(Op::ServerDel { key: self.key()?, address, port })
            }
            Some('C') => Action::Change(Op::Clear),
            Some('Z') => Action::Zero(self.key().ok()),
            Some('S') => Action::Save,
            Some('R') => Action::Restore { replace: self.replace },
            Some('v') => Action::Simple("version"),
            _ => Action::Help,
        })
    }
}

/// Parses an ipvsadm-style argument list (without the program name).
pub fn parse_ipvsadm(args: &[String], opts: &mut Options) -> Result<Action, UsageError> {
    read_flags(args, opts)?.action()
}

/// Readable flags of the `service`/`server` forms, as ipvsadm's.
fn translate(extra: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = extra.iter();
    while let Some(x) = it.next() {
        match x.as_str() {
            "--forwarding" | "--forward" => match it.next().map(String::as_str) {
                Some("nat" | "masq") => out.push("-m".into()),
                Some("dr" | "route") => out.push("-g".into()),
                Some("tunnel" | "tun" | "ipip") => out.push("-i".into()),
                Some("fullnat" | "fnat") => out.push("--fullnat".into()),
                other => out.push(format!("--forwarding={}", other.unwrap_or(""))),
            },
            _ => out.push(x.clone()),
        }
    }
    out
}

fn protocol_flag(p: &str) -> Result<&'static str, UsageError> {
    match p {
        "tcp" => Ok("-t"),
        "udp" => Ok("-u"),
        _ => Err(usage(format!("{p:?}: tcp or udp"))),
    }
}

/// `service add|edit|del tcp VIP:port [flags]` and `server add|edit|del
/// tcp VIP:port RS[:port] [flags]`, rewritten as ipvsadm's command line.
fn service_or_server(noun: &str, verb: &str, rest: &[String], opts: &mut Options) -> Result<Action, UsageError> {
    let (words, form, flags) = match noun {
        "service" => (3, "service add|edit|del tcp|udp VIP:port [--scheduler S] [--persistent T] ...", ["-A", "-E", "-D"]),
        _ => (4, "server add|edit|del tcp|udp VIP:port RS[:port] [--weight W] [--forwarding nat|dr|tunnel|fullnat]", ["-a", "-e", "-d"]),
    };
    if rest.len() < words {
        return Err(usage(format!("usage: rvsadm {form}")));
    }
    let flag = match verb {
        "add" => flags[0],
        "edit" => flags[1],
        _ => flags[2],
    };
    let mut v = vec![flag.to_string(), protocol_flag(&rest[1])?.to_string(), rest[2].clone()];
    if words == 4 {
        v.extend(["-r".to_string(), rest[3].clone()]);
    }
    v.extend(translate(&rest[words..]));
    parse_ipvsadm(&v, opts)
}

fn list(kind: ListKind, exact: bool) -> Action {
    Action::List { service: None, kind, exact, nosort: false, numeric: true }
}

/// `sources tcp|udp VIP:port allow|deny add|del PREFIX...`: a change to
/// a service's source lists.
fn sources(rest: &[String]) -> Result<Action, UsageError> {
    const FORM: &str = "usage: rvsadm sources tcp|udp VIP:port allow|deny add|del PREFIX...";
    let [proto, vip, list, verb, prefixes @ ..] = rest else { return Err(usage(FORM)) };
    let protocol = if protocol_flag(proto)? == "-t" { Protocol::Tcp } else { Protocol::Udp };
    let (vip, port) = parse_addr_port(vip, false)?;
    let deny = match list.as_str() {
        "allow" => false,
        "deny" => true,
        other => return Err(usage(format!("{other:?}: allow or deny ({FORM})"))),
    };
    let parsed = prefixes
        .iter()
        .map(|p| {
            // A bare address is its host prefix.
            let p = if p.contains('/') {
                p.clone()
            } else if p.contains(':') {
                format!("{p}/128")
            } else {
                format!("{p}/32")
            };
            p.parse::<config::InterfaceAddr>().map_err(|e| usage(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if parsed.is_empty() {
        return Err(usage(FORM));
    }
    let (add, remove) = match verb.as_str() {
        "add" => (parsed, Vec::new()),
        "del" | "delete" => (Vec::new(), parsed),
        other => return Err(usage(format!("{other:?}: add or del ({FORM})"))),
    };
    Ok(Action::Change(Op::Sources { key: ServiceKey { protocol, vip, port }, deny, add, remove }))
}

/// `show [what]`.
fn show(what: &str) -> Result<Action, UsageError> {
    Ok(match what {
        "services" | "list" => list(ListKind::Services, false),
        "stats" => list(ListKind::Stats, true),
        "rate" => list(ListKind::Rate, true),
        "connections" | "sessions" => list(ListKind::Connections, false),
        "drops" => Action::Show(Show::Drops),
        "neighbors" | "neighbours" => Action::Show(Show::Neighbors),
        "health" => Action::Show(Show::Health),
        "config" => Action::Show(Show::Config),
        "ha" => Action::Show(Show::Ha),
        "node" => Action::Show(Show::Node),
        other => {
            return Err(usage(format!("show {other:?}: services, stats, rate, connections, drops, neighbors, health, config, ha or node")))
        }
    })
}

/// Global options, which may come before the command; returns the rest.
fn global_options<'a>(mut args: &'a [String], opts: &mut Options) -> Result<&'a [String], UsageError> {
    loop {
        match args.first().map(String::as_str) {
            Some("--socket") => {
                opts.socket = Some(args.get(1).cloned().ok_or("--socket needs a path")?);
                args = &args[2..];
            }
            Some("--json") => {
                opts.json = true;
                args = &args[1..];
            }
            _ => return Ok(args),
        }
    }
}

/// Parses a command line: readable subcommands or ipvsadm's syntax.
pub fn parse(args: &[String]) -> Result<(Action, Options), UsageError> {
    let mut opts = Options::default();
    let args = global_options(args, &mut opts)?;
    let Some(first) = args.first() else {
        return Ok((list(ListKind::Services, false), opts));
    };
    if first.starts_with('-') {
        return parse_ipvsadm(args, &mut opts).map(|a| (a, opts));
    }
    let rest = &args[1..];
    let action = match (first.as_str(), rest.first().map(String::as_str)) {
        (noun @ ("service" | "server"), Some(verb @ ("add" | "edit" | "del" | "delete"))) => {
            service_or_server(noun, verb, rest, &mut opts)?
        }
        ("server", Some(verb @ ("maint" | "ready"))) => {
            let [_, proto, vip, rs] = rest else {
                return Err(usage("usage: rvsadm server maint|ready tcp|udp VIP:port RS[:port]"));
            };
            let (vip, port) = parse_addr_port(vip, false)?;
            let protocol = if protocol_flag(proto)? == "-t" { Protocol::Tcp } else { Protocol::Udp };
            let (address, rs_port) = parse_addr_port(rs, true)?;
            Action::Maint { key: ServiceKey { protocol, vip, port }, address, port: rs_port, maint: verb == "maint" }
        }
        ("explain", _) => {
            let [proto, client, vip] = rest else {
                return Err(usage("usage: rvsadm explain tcp|udp CLIENT:PORT VIP:PORT"));
            };
            let protocol = if protocol_flag(proto)? == "-t" { Protocol::Tcp } else { Protocol::Udp };
            Action::Explain { protocol, client: parse_addr_port(client, false)?, vip: parse_addr_port(vip, false)? }
        }
        ("show", what) => show(what.unwrap_or("services"))?,
        ("stats", _) => list(ListKind::Stats, true),
        ("reload", None) => Action::Reload { force: false },
        ("reload", Some("--force")) if rest.len() == 1 => Action::Reload { force: true },
        ("reload", Some(_)) => return Err(usage("usage: rvsadm reload [--force]")),
        ("save-config", _) if rest.len() <= 1 => Action::SaveConfig(rest.first().cloned()),
        ("save-config", _) => return Err(usage("usage: rvsadm save-config [FILE]")),
        ("version", _) => Action::Simple("version"),
        ("ping", _) => Action::Simple("ping"),
        ("zero", None) => Action::Zero(None),
        ("zero", Some(_)) => {
            let [proto, vip] = rest else {
                return Err(usage("usage: rvsadm zero [tcp|udp VIP:port]"));
            };
            let (vip, port) = parse_addr_port(vip, false)?;
            let protocol = if protocol_flag(proto)? == "-t" { Protocol::Tcp } else { Protocol::Udp };
            Action::Zero(Some(ServiceKey { protocol, vip, port }))
        }
        ("clear", _) => Action::Change(Op::Clear),
        ("save", _) => Action::Save,
        ("restore", _) => Action::Restore { replace: rest.iter().any(|a| a == "--replace") },
        ("choose", _) => {
            let [proto, vip, clients @ ..] = rest else {
                return Err(usage("usage: rvsadm choose tcp|udp VIP:port CLIENT:PORT..."));
            };
            let protocol = if protocol_flag(proto)? == "-t" { Protocol::Tcp } else { Protocol::Udp };
            let (vip, port) = parse_addr_port(vip, false)?;
            let clients = clients.iter().map(|c| parse_addr_port(c, false)).collect::<Result<Vec<_>, _>>()?;
            Action::Choose { key: ServiceKey { protocol, vip, port }, clients }
        }
        ("sources", _) => sources(rest)?,
        ("node", Some("drain")) => Action::Simple("node.drain"),
        ("node", Some("undrain")) => Action::Simple("node.undrain"),
        ("node", _) => return Err(usage("node drain|undrain")),
        ("help", _) => Action::Help,
        (other, _) => return Err(usage(format!("unknown command {other:?} (try rvsadm help)"))),
    };
    if rest.iter().any(|a| a == "--json") {
        opts.json = true;
    }
    Ok((action, opts))
}

#[cfg(test)]
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
    fn scale_out_commands() {
        assert_eq!(p("node drain"), Action::Simple("node.drain"));
        assert_eq!(p("node undrain"), Action::Simple("node.undrain"));
        assert_eq!(p("show node"), Action::Show(Show::Node));
        assert!(parse(&"node sideways".split(' ').map(String::from).collect::<Vec<_>>()).is_err());
        assert_eq!(
            p("choose tcp 198.18.3.100:80 198.19.0.1:40000 [2001:db8::5]:1"),
            Action::Choose {
                key: key("198.18.3.100:80"),
                clients: vec![("198.19.0.1".parse().unwrap(), 40000), ("2001:db8::5".parse().unwrap(), 1)]
            }
        );
        match p("-A -t 198.18.3.100:80 -s mh --cluster") {
            Action::Change(Op::ServiceAdd { service }) => assert!(service.cluster),
            other => panic!("{other:?}"),
        }
        match p("-A -t 198.18.3.100:80 --synproxy --synproxy-invalid-ack drop") {
            Action::Change(Op::ServiceAdd { service }) => {
                assert!(service.synproxy);
                assert_eq!(service.synproxy_invalid_ack, InvalidAck::Drop);
            }
            other => panic!("{other:?}"),
        }
        assert!(parse(&"-A -t 198.18.3.100:80 --synproxy-invalid-ack never".split(' ').map(String::from).collect::<Vec<_>>()).is_err());
    }

    #[test]
    fn ipvsadm_servers() {
        assert_eq!(
            p("-a -t 198.18.0.100:80 -r 198.18.1.11:8080 -m -w 3"),
            Action::Change(Op::ServerAdd {
                key: key("198.18.0.100:80"),
                server: RealServer {
                    address: "198.18.1.11".parse().unwrap(),
                    port: 8080,
                    weight: 3,
                    forwarding: Some(Forwarding::Nat),
                    health_checks: Vec::new()
                }
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
            p("-a -t [2001:db8::100]:80 -r [2001:db8:1::11]:80 --fullnat"),
            Action::Change(Op::ServerAdd { server: RealServer { forwarding: Some(Forwarding::FullNat), .. }, .. })
        ));
        // ipvsadm's -b: scheduler flags, as an ipvsadm script or -S file has them.
        match p("-A -t 198.18.0.100:80 -s sh -b sh-fallback,sh-port") {
            Action::Change(Op::ServiceAdd { service }) => assert!(service.hash_fallback && service.hash_port),
            a => panic!("{a:?}"),
        }
        match p("-A -t 198.18.0.100:80 -s mh -bmh-port") {
            Action::Change(Op::ServiceAdd { service }) => assert!(!service.hash_fallback && service.hash_port),
            a => panic!("{a:?}"),
        }
    }

    #[test]
    fn ipvsadm_listing_flags_combine() {
        assert_eq!(p("-Ln"), Action::List { service: None, kind: ListKind::Services, exact: false, nosort: false, numeric: true });
        assert_eq!(
            p("-L -n --stats --exact"),
            Action::List { service: None, kind: ListKind::Stats, exact: true, nosort: false, numeric: true }
        );
        assert_eq!(p("-lnc"), Action::List { service: None, kind: ListKind::Connections, exact: false, nosort: false, numeric: true });
        assert_eq!(
            p("-L -t 198.18.0.100:80 --rate"),
            Action::List { service: Some(key("198.18.0.100:80")), kind: ListKind::Rate, exact: false, nosort: false, numeric: false }
        );
        assert_eq!(
            p("--list --numeric --nosort"),
            Action::List { service: None, kind: ListKind::Services, exact: false, nosort: true, numeric: true }
        );
        assert_eq!(
            p("-t198.18.0.100:80 -L"),
            Action::List { service: Some(key("198.18.0.100:80")), kind: ListKind::Services, exact: false, nosort: false, numeric: false }
        );
    }

    #[test]
    fn ipvsadm_misc_commands() {
        assert_eq!(p("-C"), Action::Change(Op::Clear));
        assert_eq!(p("-Z"), Action::Zero(None));
        let one = ServiceKey { protocol: Protocol::Tcp, vip: "198.18.0.100".parse().unwrap(), port: 80 };
        assert_eq!(
            p("explain tcp 198.18.0.10:40000 198.18.0.100:80"),
            Action::Explain {
                protocol: Protocol::Tcp,
                client: ("198.18.0.10".parse().unwrap(), 40000),
                vip: ("198.18.0.100".parse().unwrap(), 80)
            }
        );
        assert!(parse(&["explain".to_string(), "tcp".to_string(), "198.18.0.10".to_string()]).is_err());
        assert_eq!(
            p("server maint tcp 198.18.0.100:80 198.18.1.11:8080"),
            Action::Maint { key: one, address: "198.18.1.11".parse().unwrap(), port: 8080, maint: true }
        );
        assert_eq!(
            p("server ready tcp 198.18.0.100:80 198.18.1.11"),
            Action::Maint { key: one, address: "198.18.1.11".parse().unwrap(), port: 0, maint: false }
        );
        assert_eq!(p("-Z -t 198.18.0.100:80"), Action::Zero(Some(one)));
        assert_eq!(p("zero tcp 198.18.0.100:80"), Action::Zero(Some(one)));
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
            parse(&v).unwrap_err().to_string()
        };
        assert!(bad("-A -t 198.18.0.100").contains("port"));
        assert!(bad("-A -f 1").contains("firewall-mark"));
        assert!(bad("-A -t 198.18.0.100:80 -s fastest").contains("unknown scheduler"));
        assert!(bad("-A -D -t 198.18.0.100:80").contains("cannot be combined"));
        assert!(bad("-a -t 198.18.0.100:80").contains("-r"));
        assert!(bad("-L --bogus").contains("--bogus"));
        assert!(bad("frobnicate").contains("unknown command"));
        assert!(bad("--start-daemon primary").contains("master or backup"));
    }

    #[test]
    fn sync_daemon_options_map_to_the_pair() {
        assert_eq!(
            p("--start-daemon master --syncid 51 --mcast-interface rvsk"),
            Action::SyncDaemon(SyncDaemon { start: true, role: Some("master".into()), syncid: Some(51), interface: Some("rvsk".into()) })
        );
        assert_eq!(
            p("--stop-daemon backup"),
            Action::SyncDaemon(SyncDaemon { start: false, role: Some("backup".into()), ..Default::default() })
        );
        assert_eq!(p("--stop-daemon"), Action::SyncDaemon(SyncDaemon::default()));
        assert_eq!(p("-L --daemon"), Action::ListDaemon);
    }

    #[test]
    fn values_glued_or_apart_mean_the_same() {
        let apart = p("-a -t 198.18.0.100:80 -r 198.18.1.11:8080 -m -w 3");
        assert_eq!(p("-a -t198.18.0.100:80 -r198.18.1.11:8080 -mw3"), apart);
        assert_eq!(p("--add-server --tcp-service=198.18.0.100:80 --real-server 198.18.1.11:8080 --masquerading --weight=3"), apart);
        assert_eq!(p("-A -t 198.18.0.100:80 -p600"), p("-A -t 198.18.0.100:80 --persistent=600"));
        assert_eq!(p("-A -t 198.18.0.100:80 -p"), p("-A -t 198.18.0.100:80 -p 360"));
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
