//! `rvsadm explain tcp CLIENT:PORT VIP:PORT`: what rvs does with a flow
//! and why.
//!
//! Every worker answers from its own state ([`rvs_core::fwd::Explanation`]:
//! its session table, persistence templates, a copy of its scheduler);
//! management keeps the answer of the worker that holds the flow's
//! session, else of the flow's owner, and adds what only it knows: why a
//! real server takes no new flow (maintenance, its health check, its
//! agent, weight 0), the session's timeout, the rewritten addresses.
use crate::fault;
use crate::ipvsadm::addr_port;
use crate::manager::Manager;
use crate::proto::{CmdError, ErrorCode};
use dataplane::worker::Shared;
use rvs_core::fwd::{ExplainQuery, Explanation};
use rvs_core::table::Mode;
use serde::Deserialize;
use serde_json::{json, Value};
use std::fmt::Write;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExplainArgs {
    protocol: config::Protocol,
    client: String,
    vip: String,
}

fn endpoint(field: &str, s: &str) -> Result<(IpAddr, u16), CmdError> {
    crate::cli::parse_addr_port(s, false).map_err(|e| CmdError::field(ErrorCode::BadRequest, field, format!("{s:?}: {e}")))
}

/// Asks every worker to explain `q`; their answers (those that came within
/// `limit`).
fn ask(shared: &Shared, q: ExplainQuery, limit: Duration) -> Vec<Explanation> {
    let req = shared.explain_request.load(Ordering::Relaxed) + 1;
    for slot in &shared.explains {
        if let Ok(mut x) = slot.lock() {
            *x = dataplane::worker::ExplainSlot { request: req, query: Some(q), answer: None };
        }
    }
    shared.explain_request.store(req, Ordering::Relaxed);
    let deadline = Instant::now() + limit;
    loop {
        let done = shared.explains.iter().all(|s| s.lock().map(|x| x.answer.is_some()).unwrap_or(true));
        if done || Instant::now() > deadline {
            return shared.explains.iter().filter_map(|s| s.lock().ok().and_then(|mut x| x.answer.take())).collect();
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Nat => "nat",
        Mode::Dr => "dr",
        Mode::Tunnel => "tunnel",
        Mode::FullNat => "fullnat",
    }
}

/// The `explain` command (runs without the management lock while the
/// workers answer).
pub fn explain(mgr: &Mutex<Manager>, a: &Value) -> Result<Value, CmdError> {
    let x: ExplainArgs =
        serde_json::from_value(a.clone()).map_err(|e| CmdError::field(ErrorCode::BadRequest, "args", format!("explain: {e}")))?;
    let client = endpoint("args.client", &x.client)?;
    let vip = endpoint("args.vip", &x.vip)?;
    if client.0.is_ipv4() != vip.0.is_ipv4() {
        return Err(CmdError::field(ErrorCode::BadRequest, "args.client", "the client and the VIP must be of one family"));
    }
    let proto = match x.protocol {
        config::Protocol::Tcp => 6,
        config::Protocol::Udp => 17,
    };
    let shared = fault::lock(mgr).shared().clone();
    let answers = ask(&shared, ExplainQuery { proto, client, vip }, Duration::from_secs(2));
    let owner = answers.iter().find_map(|e| e.owner);
    let chosen = answers
        .iter()
        .find(|e| e.session.is_some())
        .or_else(|| answers.iter().find(|e| owner.is_none_or(|o| o == e.core)))
        .ok_or_else(|| CmdError::new(ErrorCode::Internal, "no worker answered within 2 s"))?;
    let m = fault::lock(mgr);
    Ok(describe(&m, &x.protocol, client, vip, chosen, owner))
}

#[expect(clippy::too_many_lines, reason = "one report, section by section")]
fn describe(
    m: &Manager,
    protocol: &config::Protocol,
    client: (IpAddr, u16),
    vip: (IpAddr, u16),
    e: &Explanation,
    owner: Option<u16>,
) -> Value {
    let proto_name = format!("{protocol:?}").to_lowercase();
    let mut t = String::new();
    let _ = writeln!(t, "{proto_name} {} -> {}", addr_port(client.0, client.1), addr_port(vip.0, vip.1));
    let key = config::ServiceKey { protocol: *protocol, vip: vip.0, port: vip.1 };
    let svc = m.config().service(&key);
    match svc {
        Some(s) => {
            let name = s.name.as_deref().map(|n| format!(" {n:?}")).unwrap_or_default();
            let _ = writeln!(
                t,
                "service{name} {key}: scheduler {}, forwarding {}",
                format!("{:?}", s.scheduler).to_lowercase(),
                format!("{:?}", s.forwarding).to_lowercase()
            );
        }
        None => {
            let _ = writeln!(t, "no service {key}");
        }
    }
    let session = e.session.as_ref().map(|s| {
        let timeout_s = e.session_timeout_ms.map(|ms| ms / 1000);
        let expires_s = f64::from(s.expires_ms) / 1000.0;
        let idle_s = timeout_s.map(|to| (f64::from(to) - expires_s).max(0.0));
        let _ = writeln!(
            t,
            "existing session on worker {}: -> {}, {}, expires in {expires_s:.0} s{}",
            s.core,
            addr_port(s.server.0, s.server.1),
            s.state,
            match (timeout_s, idle_s) {
                (Some(to), Some(idle)) => format!(" (its state's timeout {to} s; last packet {idle:.0} s ago)"),
                _ => String::new(),
            }
        );
        if let Some((a, p)) = s.local {
            let _ = writeln!(t, "  full NAT local address {}", addr_port(a, p));
        }
        json!({
            "server": addr_port(s.server.0, s.server.1),
            "state": s.state,
            "expires_s": expires_s,
            "timeout_s": timeout_s,
            "idle_s": idle_s,
            "worker": s.core,
            "forwarding": s.mode.map(mode_name),
            "local": s.local.map(|(a, p)| addr_port(a, p)),
        })
    });
    if e.session.is_none() {
        let _ = match owner {
            Some(o) => writeln!(t, "no session: a new flow, owned by worker {o} (its steering rule)"),
            None => writeln!(t, "no session: a new flow, on worker {}", e.core),
        };
    }
    let persistence = e.template.map(|((a, p), ms)| {
        let _ = writeln!(t, "persistence: the client's template names {} (expires in {:.0} s)", addr_port(a, p), f64::from(ms) / 1000.0);
        json!({ "server": addr_port(a, p), "expires_s": f64::from(ms) / 1000.0 })
    });
    if e.session.is_none() && e.template.is_none() && svc.is_some_and(|s| s.persistence.is_some()) {
        let _ = writeln!(t, "persistence: no live template for this client");
    }
    let candidates: Vec<Value> = e
        .candidates
        .iter()
        .map(|c| {
            let bk = (key, c.addr, c.port);
            let (maint, up, pct) = m.server_state(&bk);
            let skipped = if c.effective > 0 {
                None
            } else if c.fallback {
                Some("the sorry server: only while every real server is down".to_string())
            } else if maint {
                Some("in maintenance (rvsadm server maint)".to_string())
            } else if !up || !c.up {
                Some("down by its health check".to_string())
            } else if c.weight == 0 {
                Some("drained (weight 0)".to_string())
            } else if pct == Some(0) {
                Some("drained by its feedback agent (0%)".to_string())
            } else {
                Some("effective weight 0".to_string())
            };
            json!({
                "server": addr_port(c.addr, c.port),
                "weight": c.weight,
                "effective_weight": c.effective,
                "active": c.conns.0,
                "inactive": c.conns.1,
                "agent_percent": pct,
                "skipped": skipped,
            })
        })
        .collect();
    let decided = e.session.is_none() && e.template.is_none();
    if decided && !e.candidates.is_empty() {
        let s = svc.map_or_else(|| "?".to_string(), |s| format!("{:?}", s.scheduler).to_lowercase());
        let _ = writeln!(t, "scheduler {s} on worker {} (its state now; a copy picked, nothing changed):", e.core);
        for (i, (c, v)) in e.candidates.iter().zip(&candidates).enumerate() {
            let mark = if e.pick == Some(i) { "=>" } else { "  " };
            let why = v["skipped"].as_str().map(|w| format!("  skipped: {w}")).unwrap_or_default();
            let _ = writeln!(
                t,
                "  {mark} {:<28} weight {} (effective {}), active {}, inactive {}{why}",
                addr_port(c.addr, c.port),
                c.weight,
                c.effective,
                c.conns.0,
                c.conns.1
            );
        }
        if let Some(h) = e.hash {
            let entry = e.pick.and_then(|i| e.candidates.get(i)).map_or("no server".to_string(), |c| addr_port(c.addr, c.port));
            let _ = writeln!(t, "  the flow's hash lands on {} entry {} of {} -> {entry}", h.table, h.slot, h.size);
        }
    }
    let choice = if e.session.is_some() { None } else { e.pick.and_then(|i| e.candidates.get(i)).map(|c| (c.addr, c.port)) };
    let mut forwarding = Value::Null;
    if let (Some((a, p)), Some(mode)) =
        (e.session.as_ref().map(|s| s.server).or(choice), e.session.as_ref().and_then(|s| s.mode).or(e.mode))
    {
        let (c, v, r) = (addr_port(client.0, client.1), addr_port(vip.0, vip.1), addr_port(a, p));
        let rewrite = match mode {
            Mode::Nat => format!("NAT: {c} -> {v} leaves as {c} -> {r}; replies {r} -> {c} leave as {v} -> {c}"),
            Mode::FullNat => {
                let local = e.session.as_ref().and_then(|s| s.local).map(|(a, p)| addr_port(a, p)).unwrap_or_else(|| {
                    let l: Vec<String> = e.locals.iter().map(ToString::to_string).collect();
                    format!(
                        "{{{}}}:PORT (a local port of the owner's range, allocated then)",
                        if l.is_empty() { "the server port's address".into() } else { l.join(", ") }
                    )
                });
                format!("full NAT: {c} -> {v} leaves as {local} -> {r}; replies come back to it and leave as {v} -> {c}")
            }
            Mode::Dr => format!("DR: {c} -> {v} unchanged, sent to {r}'s MAC; it answers the client itself"),
            Mode::Tunnel => format!("tunnel: {c} -> {v} inside IP-in-IP to {r}; it answers the client itself"),
        };
        let _ = writeln!(t, "forwarding: {rewrite}");
        forwarding = json!({ "mode": mode_name(mode), "rewrite": rewrite });
    }
    if let Some(r) = e.refused.filter(|_| e.session.is_none()) {
        let _ = writeln!(t, "verdict: dropped as {} ({})", r.name(), r.help());
    } else if let Some((a, p)) = choice {
        let _ = writeln!(t, "verdict: a new session to {}", addr_port(a, p));
    }
    json!({
        "flow": format!("{proto_name} {} -> {}", addr_port(client.0, client.1), addr_port(vip.0, vip.1)),
        "service": svc.map(|s| s.key().to_string()),
        "worker": e.core,
        "owner": owner,
        "session": session,
        "persistence": persistence,
        "scheduler": svc.map(|s| format!("{:?}", s.scheduler).to_lowercase()),
        "candidates": if decided { Value::Array(candidates) } else { Value::Array(Vec::new()) },
        "hash": e.hash.filter(|_| decided).map(|h| json!({ "table": h.table, "slot": h.slot, "size": h.size })),
        "choice": choice.map(|(a, p)| addr_port(a, p)),
        "refused": e.refused.filter(|_| e.session.is_none()).map(|r| r.name()),
        "forwarding": forwarding,
        "text": t,
    })
}
