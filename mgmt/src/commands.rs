//! The commands the control socket executes.
//!
//! | command | args | result |
//! |---------|------|--------|
//! | `ping` | - | `"pong"` |
//! | `version` | - | rvs, protocol and DPDK versions, uptime |
//! | `stats` | - | the statistics [`Report`](crate::report::Report) |
//! | `config.get` | - | the running configuration (the TOML model, as JSON) |
//! | `reload` | - | re-reads the configuration file, applies the difference; returns it |
//! | `zero` | - | zeroes service and real-server counters (`ipvsadm -Z`) |
//! | `service.add` | `{service}` | `ipvsadm -A` |
//! | `service.edit` | `{key, patch}` | `ipvsadm -E` |
//! | `service.del` | `{key}` | `ipvsadm -D` |
//! | `server.add` | `{key, server}` | `ipvsadm -a` |
//! | `server.edit` | `{key, server}` | `ipvsadm -e` |
//! | `server.del` | `{key, address, port}` | `ipvsadm -d` |
//! | `clear` | - | `ipvsadm -C` |
//! | `timeouts.set` | `{tcp, tcpfin, udp}` | `ipvsadm --set` (every service, and the defaults of later ones) |
//! | `timeouts.get` | - | `ipvsadm --timeout` (the defaults) |
//! | `batch` | `{ops: [Op]}` | several changes, all or none (`rvsadm -R`) |
//! | `sessions` | `{limit}` | the sessions of every worker (`ipvsadm -c`) |
//!
//! A `key` is `{"protocol": "tcp", "vip": "198.18.0.100", "port": 80}`; a
//! `service` and a `server` are the TOML model's `[[services]]` and
//! `[[services.real_servers]]` objects. Changes return the difference
//! applied (`services_added`, `servers_removed`, ...).
use crate::manager::Manager;
use crate::ops::{Op, ServicePatch};
use crate::proto::{CmdError, ErrorCode};
use config::{RealServer, Service, ServiceKey};
use dataplane::worker::Shared;
use rvs_core::fwd::SessionInfo;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn args<T: DeserializeOwned>(cmd: &str, v: &Value) -> Result<T, CmdError> {
    serde_json::from_value(v.clone()).map_err(|e| CmdError::field(ErrorCode::BadRequest, "args", format!("{cmd}: {e}")))
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value, CmdError> {
    serde_json::to_value(v).map_err(|e| CmdError::new(ErrorCode::Internal, e.to_string()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReloadArgs {
    #[serde(default)]
    force: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyArgs {
    key: ServiceKey,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceArgs {
    service: Service,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EditArgs {
    key: ServiceKey,
    patch: ServicePatch,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerArgs {
    key: ServiceKey,
    server: RealServer,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MaintArgs {
    key: ServiceKey,
    address: IpAddr,
    #[serde(default)]
    port: u16,
    maint: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerDelArgs {
    key: ServiceKey,
    address: IpAddr,
    #[serde(default)]
    port: u16,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TimeoutArgs {
    tcp: u32,
    tcpfin: u32,
    udp: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchArgs {
    ops: Vec<Op>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChooseArgs {
    key: ServiceKey,
    /// Client address and port of each flow.
    clients: Vec<(IpAddr, u16)>,
}

/// Most flows one `choose` request may ask about.
const CHOOSE_MAX: usize = 100_000;

/// The `choose` command: the real server a hashing scheduler gives each
/// of the clients' new flows (`rvsadm show choice`), as the workers would.
fn choose(m: &Manager, a: &Value) -> Result<Value, CmdError> {
    let x: ChooseArgs = args("choose", a)?;
    if x.clients.len() > CHOOSE_MAX {
        return Err(CmdError::field(ErrorCode::BadRequest, "args.clients", format!("at most {CHOOSE_MAX} flows per request")));
    }
    let snap = m.shared().snapshot.load();
    let svc = m.config().services.iter().find(|s| s.key() == x.key);
    match svc {
        None => return Err(CmdError::field(ErrorCode::NotFound, "args.key", format!("no service {}", x.key))),
        Some(s) if !matches!(s.scheduler, config::SchedulerKind::Sh | config::SchedulerKind::Dh | config::SchedulerKind::Mh) => {
            return Err(CmdError::field(
                ErrorCode::BadRequest,
                "args.key",
                format!("service {} schedules by {:?}: only sh, dh and mh choose by the flow alone", x.key, s.scheduler),
            ))
        }
        Some(_) => {}
    }
    let servers: Vec<Value> = x
        .clients
        .iter()
        .map(|&(c, p)| snap.hashed_choice(&x.key, c, p).map_or(Value::Null, |(a, p)| json!(crate::ipvsadm::addr_port(a, p))))
        .collect();
    Ok(json!({ "servers": servers }))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SessionArgs {
    #[serde(default)]
    limit: Option<usize>,
}

/// Asks every worker for its sessions and waits (up to `timeout`) for the
/// answers; returns the sessions and whether every worker answered. Runs
/// without the management lock: it only needs the workers' shared state.
pub fn dump_sessions(shared: &Shared, timeout: Duration) -> (Vec<SessionInfo>, bool) {
    let req = shared.dump_request.fetch_add(1, Ordering::Relaxed) + 1;
    let deadline = Instant::now() + timeout;
    loop {
        let done = shared.dumps.iter().all(|d| d.lock().map(|d| d.request == req && d.done).unwrap_or(true));
        if done || Instant::now() > deadline {
            let mut out = Vec::new();
            for d in &shared.dumps {
                if let Ok(mut d) = d.lock() {
                    if d.request == req {
                        out.append(&mut d.sessions);
                    }
                }
            }
            return (out, done);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The `sessions` command.
pub fn sessions(shared: &Shared, a: &Value) -> Result<Value, CmdError> {
    let x: SessionArgs = if a.is_null() { SessionArgs::default() } else { args("sessions", a)? };
    let (mut list, complete) = dump_sessions(shared, Duration::from_secs(5));
    let limit = x.limit.unwrap_or(usize::MAX);
    let truncated = list.len() > limit || !complete;
    list.truncate(limit);
    let items: Vec<Value> = list
        .iter()
        .map(|s| {
            json!({
                "protocol": match s.proto { 6 => "tcp", 17 => "udp", _ => "other" },
                "client": crate::ipvsadm::addr_port(s.client.0, s.client.1),
                "virtual": crate::ipvsadm::addr_port(s.vip.0, s.vip.1),
                "server": crate::ipvsadm::addr_port(s.server.0, s.server.1),
                "local": s.local.map(|(a, p)| crate::ipvsadm::addr_port(a, p)),
                "state": s.state,
                "expires_s": s.expires_ms / 1000,
                "forwarding": s.mode.map(|m| format!("{m:?}").to_lowercase()),
                "worker": s.core,
            })
        })
        .collect();
    Ok(json!({"sessions": items, "truncated": truncated}))
}

/// Executes `cmd` with `args` against the management state.
///
/// Long by design: one arm per protocol command, a few lines each, so the
/// whole command set reads as one table (the arms that grow call out to a
/// function of their own).
pub fn execute(m: &mut Manager, cmd: &str, a: &Value) -> Result<Value, CmdError> {
    let no_args = |a: &Value| -> Result<(), CmdError> {
        if a.is_null() || a.as_object().is_some_and(serde_json::Map::is_empty) {
            Ok(())
        } else {
            Err(CmdError::field(ErrorCode::BadRequest, "args", format!("{cmd} takes no arguments")))
        }
    };
    let change = |m: &mut Manager, ops: Vec<Op>| m.apply_ops(&ops).and_then(|d| to_value(&d));
    match cmd {
        "ping" => {
            no_args(a)?;
            Ok(json!("pong"))
        }
        "version" => {
            no_args(a)?;
            Ok(json!({
                "rvs": env!("CARGO_PKG_VERSION"),
                "protocol": crate::proto::VERSION,
                "dpdk": rvs_dpdk::Eal::version(),
                "uptime_s": m.uptime(),
            }))
        }
        "stats" => {
            no_args(a)?;
            to_value(&m.report())
        }
        "config.get" => {
            no_args(a)?;
            to_value(m.config())
        }
        "sync.start" | "sync.stop" => {
            let syncid = match a.get("syncid") {
                None | Some(Value::Null) => None,
                Some(v) => Some(
                    v.as_u64()
                        .and_then(|n| u8::try_from(n).ok())
                        .ok_or_else(|| CmdError::field(ErrorCode::BadRequest, "args.syncid", "a sync id is 0..=255"))?,
                ),
            };
            let interface = a.get("interface").and_then(Value::as_str);
            m.sync_daemon(cmd == "sync.start", syncid, interface)
        }
        "choose" => choose(m, a),
        "node" => {
            no_args(a)?;
            m.node_report().map_or_else(
                || Err(CmdError::field(ErrorCode::NotFound, "announce", "this balancer announces nothing (no [announce] section)")),
                |r| to_value(&r),
            )
        }
        "node.drain" | "node.undrain" => {
            no_args(a)?;
            m.drain_node(cmd == "node.drain").and_then(|r| to_value(&r))
        }
        "ha" => {
            no_args(a)?;
            match m.ha_report() {
                Some(r) => to_value(&r),
                None => Err(CmdError::field(ErrorCode::NotFound, "ha", "this balancer is not one of a pair (no [ha] section)")),
            }
        }
        // Debug builds only: the containment tests inject a fault into a
        // management task (see crate::fault).
        // Debug builds only: a worker stalls (the watchdog test).
        "debug.stall" if cfg!(debug_assertions) => {
            let ms = a.get("ms").and_then(Value::as_u64).unwrap_or(1000).min(60_000);
            m.shared().stall_ms.store(ms, Ordering::Relaxed);
            Ok(json!({ "stall_ms": ms }))
        }
        "debug.fault" if cfg!(debug_assertions) => {
            let name = a.get("task").and_then(Value::as_str).unwrap_or("");
            let task = crate::fault::Task::from_name(name).ok_or_else(|| {
                CmdError::field(ErrorCode::BadRequest, "args.task", format!("no task {name:?} (control, probe, management, metrics)"))
            })?;
            crate::fault::inject(task);
            if task == crate::fault::Task::Control {
                crate::fault::injection_point(task);
            }
            Ok(json!({ "armed": name }))
        }
        "reload" => {
            // {"force": true}: discard unsaved runtime changes.
            let force = if a.is_null() { false } else { args::<ReloadArgs>(cmd, a)?.force };
            let d = m.reload(force)?;
            Ok(json!({"generation": m.shared().snapshot.load().generation, "diff": d}))
        }
        "config.toml" => {
            no_args(a)?;
            Ok(json!({"toml": m.config_toml()?, "unsaved": m.unsaved(), "path": m.config_path()}))
        }
        "config.save" => {
            no_args(a)?;
            let path = m.save_config()?;
            Ok(json!({"path": path}))
        }
        "zero" => {
            // No arguments: every service; {"key": ...}: that service.
            let only = if a.is_null() { None } else { Some(args::<KeyArgs>(cmd, a)?.key) };
            let zeroed = m.zero(only)?;
            Ok(json!({ "services": zeroed }))
        }
        "service.add" => {
            let x: ServiceArgs = args(cmd, a)?;
            change(m, vec![Op::ServiceAdd { service: x.service }])
        }
        "service.edit" => {
            let x: EditArgs = args(cmd, a)?;
            change(m, vec![Op::ServiceEdit { key: x.key, patch: x.patch }])
        }
        "service.del" => {
            let x: KeyArgs = args(cmd, a)?;
            change(m, vec![Op::ServiceDel { key: x.key }])
        }
        "server.add" => {
            let x: ServerArgs = args(cmd, a)?;
            change(m, vec![Op::ServerAdd { key: x.key, server: x.server }])
        }
        "server.edit" => {
            let x: ServerArgs = args(cmd, a)?;
            change(m, vec![Op::ServerEdit { key: x.key, server: x.server }])
        }
        "server.maint" => {
            let x: MaintArgs = args(cmd, a)?;
            let changed = m.set_maint(x.key, x.address, x.port, x.maint)?;
            Ok(json!({ "changed": changed }))
        }
        "server.del" => {
            let x: ServerDelArgs = args(cmd, a)?;
            change(m, vec![Op::ServerDel { key: x.key, address: x.address, port: x.port }])
        }
        "clear" => {
            no_args(a)?;
            change(m, vec![Op::Clear])
        }
        "timeouts.set" => {
            let x: TimeoutArgs = args(cmd, a)?;
            change(m, vec![Op::SetTimeouts { tcp: x.tcp, tcpfin: x.tcpfin, udp: x.udp }])
        }
        "timeouts.get" => {
            no_args(a)?;
            let t = m.config().defaults.timeouts;
            Ok(json!({"tcp": t.tcp_established, "tcpfin": t.tcp_fin, "udp": t.udp}))
        }
        "batch" => {
            let x: BatchArgs = args(cmd, a)?;
            change(m, x.ops)
        }
        other => Err(CmdError::field(ErrorCode::UnknownCommand, "cmd", format!("unknown command {other:?}"))),
    }
}
