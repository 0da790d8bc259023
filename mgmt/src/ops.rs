//! Configuration changes, as the control protocol carries them.
//!
//! Every change is an [`Op`] applied to a copy of the running
//! configuration; a request (or a `batch` of them, as `rvsadm -R` sends) is
//! validated as a whole and published at once, or refused whole with the
//! running configuration untouched.
use crate::proto::{CmdError, ErrorCode};
use config::{Config, Forwarding, OnRemove, Persistence, RealServer, SchedulerKind, Service, ServiceKey, Timeouts, WhenFull};
use serde::{Deserialize, Deserializer, Serialize};
use std::net::IpAddr;

/// Changes to a service's attributes; absent fields are left as they are.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicePatch {
    /// Scheduler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<SchedulerKind>,
    /// Persistence: `null` removes it, an object sets it.
    #[serde(default, deserialize_with = "double_option", skip_serializing_if = "Option::is_none")]
    pub persistence: Option<Option<Persistence>>,
    /// Maglev table size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mh_table_size: Option<u32>,
    /// Hash fallback (sh/dh/mh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_fallback: Option<bool>,
    /// Hash the source port (sh/mh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_port: Option<bool>,
    /// Default forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarding: Option<Forwarding>,
    /// Timeouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,
    /// Full-table behaviour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when_full: Option<WhenFull>,
    /// Removal policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_remove: Option<OnRemove>,
    /// sloppy_tcp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sloppy_tcp: Option<bool>,
    /// Cluster mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<bool>,
    /// SYN proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synproxy: Option<bool>,
    /// What the SYN proxy does with an ACK of no valid cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synproxy_invalid_ack: Option<config::InvalidAck>,
}

fn double_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<Persistence>>, D::Error> {
    Option::<Persistence>::deserialize(d).map(Some)
}

/// One change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[expect(clippy::large_enum_variant, reason = "control-plane values, not a hot path")]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// `ipvsadm -A`: a new service (with or without real servers).
    ServiceAdd {
        /// The service.
        service: Service,
    },
    /// `ipvsadm -E`: change a service's attributes.
    ServiceEdit {
        /// Which service.
        key: ServiceKey,
        /// The changes.
        patch: ServicePatch,
    },
    /// `ipvsadm -D`.
    ServiceDel {
        /// Which service.
        key: ServiceKey,
    },
    /// `ipvsadm -a`.
    ServerAdd {
        /// Which service.
        key: ServiceKey,
        /// The real server.
        server: RealServer,
    },
    /// `ipvsadm -e`: weight and forwarding of an existing real server.
    ServerEdit {
        /// Which service.
        key: ServiceKey,
        /// The real server (address and port identify it).
        server: RealServer,
    },
    /// `ipvsadm -d`.
    ServerDel {
        /// Which service.
        key: ServiceKey,
        /// Its address.
        address: IpAddr,
        /// Its port (0: the service's).
        #[serde(default)]
        port: u16,
    },
    /// Source lists: prefixes added to and removed from a service's
    /// `allow_sources` or `deny_sources` (`rvsadm sources ...`).
    Sources {
        /// Which service.
        key: ServiceKey,
        /// The deny list (else the allow list).
        deny: bool,
        /// Prefixes to add (already listed: kept once).
        #[serde(default)]
        add: Vec<config::InterfaceAddr>,
        /// Prefixes to remove (not listed: refused).
        #[serde(default)]
        remove: Vec<config::InterfaceAddr>,
    },
    /// `ipvsadm -C`: remove every service.
    Clear,
    /// `ipvsadm --set tcp tcpfin udp`: timeouts of every service.
    SetTimeouts {
        /// Established TCP, seconds (0: unchanged).
        tcp: u32,
        /// TCP after FIN, seconds (0: unchanged).
        tcpfin: u32,
        /// UDP, seconds (0: unchanged).
        udp: u32,
    },
}

fn not_found(key: &ServiceKey) -> CmdError {
    CmdError::field(ErrorCode::NotFound, "key", format!("no service {key}"))
}

/// Applies one change to `cfg`.
///
/// Long by design: one arm per kind of change, so every change and its
/// refusals read as one table.
pub fn apply(cfg: &mut Config, op: &Op) -> Result<(), CmdError> {
    match op {
        Op::ServiceAdd { service } => {
            if cfg.service(&service.key()).is_some() {
                return Err(CmdError::field(ErrorCode::Exists, "service", format!("service {} already exists", service.key())));
            }
            let mut service = service.clone();
            // A service added without timeouts of its own (the built-in
            // ones) takes the defaults, as one in the file does.
            if service.timeouts == Timeouts::default() {
                service.timeouts = cfg.defaults.timeouts;
            }
            cfg.services.push(service);
        }
        Op::ServiceEdit { key, patch } => {
            let s = cfg.service_mut(key).ok_or_else(|| not_found(key))?;
            edit_service(s, patch);
        }
        Op::Sources { key, deny, add, remove } => {
            let s = cfg.service_mut(key).ok_or_else(|| not_found(key))?;
            let (list, name) = if *deny { (&mut s.deny_sources, "deny_sources") } else { (&mut s.allow_sources, "allow_sources") };
            for p in remove {
                let before = list.len();
                list.retain(|x| x != p);
                if list.len() == before {
                    return Err(CmdError::field(ErrorCode::NotFound, "remove", format!("{p} is not in {key}'s {name}")));
                }
            }
            let mut seen: std::collections::HashSet<config::InterfaceAddr> = list.iter().copied().collect();
            for p in add {
                if seen.insert(*p) {
                    list.push(*p);
                }
            }
        }
        Op::ServiceDel { key } => {
            let before = cfg.services.len();
            cfg.services.retain(|s| s.key() != *key);
            if cfg.services.len() == before {
                return Err(not_found(key));
            }
        }
        Op::ServerAdd { key, server } => {
            let s = cfg.service_mut(key).ok_or_else(|| not_found(key))?;
            let port = s.port_of(server);
            if s.real_servers.iter().any(|r| r.address == server.address && s.port_of(r) == port) {
                return Err(CmdError::field(
                    ErrorCode::Exists,
                    "server",
                    format!("{} is already in {key}", crate::ipvsadm::addr_port(server.address, port)),
                ));
            }
            s.real_servers.push(server.clone());
        }
        Op::ServerEdit { key, server } => {
            let s = cfg.service_mut(key).ok_or_else(|| not_found(key))?;
            let port = s.port_of(server);
            let svc_port = s.port;
            let r = s
                .real_servers
                .iter_mut()
                .find(|r| r.address == server.address && (if r.port == 0 { svc_port } else { r.port }) == port)
                .ok_or_else(|| {
                    CmdError::field(
                        ErrorCode::NotFound,
                        "server",
                        format!("{} is not in {key}", crate::ipvsadm::addr_port(server.address, port)),
                    )
                })?;
            r.weight = server.weight;
            if server.forwarding.is_some() {
                r.forwarding = server.forwarding;
            }
        }
        Op::ServerDel { key, address, port } => {
            let s = cfg.service_mut(key).ok_or_else(|| not_found(key))?;
            let port = if *port == 0 { s.port } else { *port };
            let svc_port = s.port;
            let before = s.real_servers.len();
            s.real_servers.retain(|r| !(r.address == *address && (if r.port == 0 { svc_port } else { r.port }) == port));
            if s.real_servers.len() == before {
                return Err(CmdError::field(
                    ErrorCode::NotFound,
                    "server",
                    format!("{} is not in {key}", crate::ipvsadm::addr_port(*address, port)),
                ));
            }
        }
        Op::Clear => cfg.services.clear(),
        Op::SetTimeouts { tcp, tcpfin, udp } => {
            // ipvsadm's --set is global: the defaults for services added
            // later, and every service now.
            let d = &mut cfg.defaults.timeouts;
            for (v, new) in [(&mut d.tcp_established, *tcp), (&mut d.tcp_fin, *tcpfin), (&mut d.udp, *udp)] {
                if new > 0 {
                    *v = new;
                }
            }
            for s in &mut cfg.services {
                if *tcp > 0 {
                    s.timeouts.tcp_established = *tcp;
                }
                if *tcpfin > 0 {
                    s.timeouts.tcp_fin = *tcpfin;
                }
                if *udp > 0 {
                    s.timeouts.udp = *udp;
                }
            }
        }
    }
    Ok(())
}

fn edit_service(s: &mut Service, p: &ServicePatch) {
    if let Some(v) = p.scheduler {
        s.scheduler = v;
    }
    if let Some(v) = p.persistence {
        s.persistence = v;
    }
    if let Some(v) = p.mh_table_size {
        s.mh_table_size = v;
    }
    if let Some(v) = p.hash_fallback {
        s.hash_fallback = v;
    }
    if let Some(v) = p.hash_port {
        s.hash_port = v;
    }
    if let Some(v) = p.forwarding {
        s.forwarding = v;
    }
    if let Some(v) = p.timeouts {
        s.timeouts = v;
    }
    if let Some(v) = p.when_full {
        s.when_full = Some(v);
    }
    if let Some(v) = p.on_remove {
        s.on_remove = v;
    }
    if let Some(v) = p.sloppy_tcp {
        s.sloppy_tcp = v;
    }
    if let Some(v) = p.cluster {
        s.cluster = v;
    }
    if let Some(v) = p.synproxy {
        s.synproxy = v;
    }
    if let Some(v) = p.synproxy_invalid_ack {
        s.synproxy_invalid_ack = v;
    }
}

/// What changed between two configurations (for reload replies and logs).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diff {
    /// Services added.
    pub services_added: Vec<String>,
    /// Services removed.
    pub services_removed: Vec<String>,
    /// Services whose attributes changed.
    pub services_changed: Vec<String>,
    /// Real servers added ("service -> server").
    pub servers_added: Vec<String>,
    /// Real servers removed.
    pub servers_removed: Vec<String>,
    /// Real servers whose weight or forwarding changed.
    pub servers_changed: Vec<String>,
}

impl Diff {
    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        *self == Diff::default()
    }
}

/// The difference from `old` to `new` in services and real servers.
pub fn diff(old: &Config, new: &Config) -> Diff {
    let mut d = Diff::default();
    let rs_key = |s: &Service, r: &RealServer| (r.address, s.port_of(r));
    for s in &new.services {
        match old.service(&s.key()) {
            None => d.services_added.push(s.key().to_string()),
            Some(o) => {
                let mut a = o.clone();
                let mut b = s.clone();
                a.real_servers.clear();
                b.real_servers.clear();
                if a != b {
                    d.services_changed.push(s.key().to_string());
                }
                for r in &s.real_servers {
                    let name = format!("{} -> {}", s.key(), crate::ipvsadm::addr_port(r.address, s.port_of(r)));
                    match o.real_servers.iter().find(|x| rs_key(o, x) == rs_key(s, r)) {
                        None => d.servers_added.push(name),
                        Some(x) if x.weight != r.weight || o.forwarding_of(x) != s.forwarding_of(r) => d.servers_changed.push(name),
                        Some(_) => {}
                    }
                }
                for r in &o.real_servers {
                    if !s.real_servers.iter().any(|x| rs_key(s, x) == rs_key(o, r)) {
                        d.servers_removed.push(format!("{} -> {}", s.key(), crate::ipvsadm::addr_port(r.address, o.port_of(r))));
                    }
                }
            }
        }
    }
    for s in &old.services {
        if new.service(&s.key()).is_none() {
            d.services_removed.push(s.key().to_string());
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use config::Protocol;

    fn key() -> ServiceKey {
        ServiceKey { protocol: Protocol::Tcp, vip: "198.18.0.100".parse().unwrap(), port: 80 }
    }

    fn rs(a: &str, w: u32) -> RealServer {
        RealServer { address: a.parse().unwrap(), port: 8080, weight: w, forwarding: Some(Forwarding::Nat), health_checks: Vec::new() }
    }

    #[test]
    fn ops_apply_and_refuse() {
        let mut c = Config::default();
        let svc = Service::new(Protocol::Tcp, "198.18.0.100".parse().unwrap(), 80);
        apply(&mut c, &Op::ServiceAdd { service: svc.clone() }).unwrap();
        assert_eq!(apply(&mut c, &Op::ServiceAdd { service: svc }).unwrap_err().code, ErrorCode::Exists);
        apply(&mut c, &Op::ServerAdd { key: key(), server: rs("198.18.1.11", 1) }).unwrap();
        assert_eq!(apply(&mut c, &Op::ServerAdd { key: key(), server: rs("198.18.1.11", 1) }).unwrap_err().code, ErrorCode::Exists);
        apply(&mut c, &Op::ServerEdit { key: key(), server: rs("198.18.1.11", 5) }).unwrap();
        assert_eq!(c.services[0].real_servers[0].weight, 5);
        let patch = ServicePatch {
            scheduler: Some(SchedulerKind::Rr),
            persistence: Some(Some(Persistence { timeout: 60, netmask: None })),
            ..Default::default()
        };
        apply(&mut c, &Op::ServiceEdit { key: key(), patch }).unwrap();
        assert_eq!(c.services[0].scheduler, SchedulerKind::Rr);
        assert!(c.services[0].persistence.is_some());
        let patch: ServicePatch = serde_json::from_str(r#"{"persistence": null}"#).unwrap();
        apply(&mut c, &Op::ServiceEdit { key: key(), patch }).unwrap();
        assert!(c.services[0].persistence.is_none());
        apply(&mut c, &Op::ServerDel { key: key(), address: "198.18.1.11".parse().unwrap(), port: 8080 }).unwrap();
        assert_eq!(
            apply(&mut c, &Op::ServerDel { key: key(), address: "198.18.1.11".parse().unwrap(), port: 8080 }).unwrap_err().code,
            ErrorCode::NotFound
        );
        apply(&mut c, &Op::ServiceDel { key: key() }).unwrap();
        assert!(c.services.is_empty());
    }

    #[test]
    fn ops_roundtrip_as_json() {
        let op = Op::ServerDel { key: key(), address: "2001:db8::1".parse().unwrap(), port: 0 };
        let j = serde_json::to_string(&op).unwrap();
        assert!(j.contains(r#""op":"server_del""#), "{j}");
        assert_eq!(serde_json::from_str::<Op>(&j).unwrap(), op);
    }

    #[test]
    fn diff_names_what_changed() {
        let mut a = Config::default();
        let mut s = Service::new(Protocol::Tcp, "198.18.0.100".parse().unwrap(), 80);
        s.real_servers = vec![rs("198.18.1.11", 1), rs("198.18.1.12", 1)];
        a.services.push(s);
        let mut b = a.clone();
        b.services[0].real_servers[0].weight = 3;
        b.services[0].real_servers.remove(1);
        b.services[0].real_servers.push(rs("198.18.1.13", 1));
        b.services[0].scheduler = SchedulerKind::Sh;
        let d = diff(&a, &b);
        assert_eq!(d.services_changed, ["TCP 198.18.0.100:80"]);
        assert_eq!(d.servers_changed, ["TCP 198.18.0.100:80 -> 198.18.1.11:8080"]);
        assert_eq!(d.servers_removed, ["TCP 198.18.0.100:80 -> 198.18.1.12:8080"]);
        assert_eq!(d.servers_added, ["TCP 198.18.0.100:80 -> 198.18.1.13:8080"]);
        assert!(diff(&a, &a).is_empty());
    }
}
