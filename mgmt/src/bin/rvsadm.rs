//! rvsadm: the rvs control client, ipvsadm-compatible (see `mgmt::cli`).
use config::ServiceKey;
use mgmt::cli::{self, Action, ListKind, Show};
use mgmt::control::Client;
use mgmt::ipvsadm::{self, Format, Options};
use mgmt::report::Report;
use serde_json::{json, Value};
use std::io::Read;
use std::path::PathBuf;
use std::process::exit;

const USAGE: &str = "rvsadm - control rvsd (ipvsadm-compatible)

ipvsadm syntax:
  rvsadm -A|-E -t|-u VIP:port [-s rr|wrr|lc|wlc|sed|nq|sh|dh|mh] [-p [timeout]] [-M netmask]
         [--sched-flags fallback,port] [--mh-size N] [--on-remove reset|keep]
         [--when-full refuse|stateless] [--sloppy-tcp] [--cluster] [--timeouts EST,SYN,FIN,CLOSE,UDP]
         [--synproxy [--synproxy-invalid-ack reset|drop]]
  rvsadm -D -t|-u VIP:port
  rvsadm -a|-e -t|-u VIP:port -r RS[:port] [-g|-i|-m|--fullnat] [-w weight]
  rvsadm -d -t|-u VIP:port -r RS[:port]
  rvsadm -L|-l [-t|-u VIP:port] [-n] [--stats|--rate|-c] [--exact] [--nosort]
  rvsadm -C | -Z | -S [-n] | -R [--replace] < rules | --set tcp tcpfin udp | --timeout
  rvsadm --start-daemon master|backup [--syncid N] [--mcast-interface IF] | --stop-daemon | -L --daemon
         (in a pair ([ha] in rvs.toml) these resume and pause session sync; the role is elected)
         (-R applies the rules as one all-or-nothing change; --replace clears
          every service first in the same change)
  -g direct routing (default), -i IP-in-IP tunnel, -m NAT, --fullnat full NAT
  -b FLAGS is ipvsadm's --sched-flags (sh-fallback,sh-port,mh-fallback,mh-port)

readable syntax:
  rvsadm service add|edit|del tcp|udp VIP:port [--scheduler S] [--persistent T] ...
  rvsadm server add|edit|del tcp|udp VIP:port RS[:port] [--weight W] [--forwarding nat|dr|tunnel|fullnat]
  rvsadm show [services|stats|rate|connections|drops|neighbors|health|config|ha|node]
  rvsadm node drain|undrain      (scale-out: withdraw / announce again every VIP)
  rvsadm choose tcp|udp VIP:port CLIENT:PORT...   (the real server sh/dh/mh gives each new flow)
  rvsadm sources tcp|udp VIP:port allow|deny add|del PREFIX...   (source allow/deny lists)
  rvsadm server maint|ready tcp|udp VIP:port RS[:port]   (by hand: drained, checks cannot bring it back)
  rvsadm explain tcp|udp CLIENT:PORT VIP:PORT         what rvs does with that flow, and why
  rvsadm reload [--force] | save-config [FILE]   (unsaved runtime changes block a reload)
  rvsadm zero [tcp|udp VIP:port] | clear|save|restore|version|ping

global: --socket PATH (default /run/rvs/rvsd.sock, or $RVS_SOCKET), --json";

fn fail(msg: impl std::fmt::Display, code: i32) -> ! {
    eprintln!("rvsadm: {msg}");
    exit(code)
}

/// A connection to rvsd and how to print its answers.
struct Conn {
    client: Client,
    /// `--json`: print the raw reply instead of the table.
    json: bool,
}

impl Conn {
    fn call(&mut self, cmd: &str, args: Value) -> Value {
        match self.client.call(cmd, args) {
            Ok(r) if r.ok => r.result.unwrap_or(Value::Null),
            Ok(r) => {
                let e = r.error.map(|e| match e.field {
                    Some(f) if !e.message.contains(&f) => format!("{f}: {}", e.message),
                    _ => e.message,
                });
                fail(e.unwrap_or_else(|| "error".into()), 1)
            }
            Err(e) => fail(e, 1),
        }
    }

    fn report(&mut self) -> Report {
        serde_json::from_value(self.call("stats", Value::Null)).unwrap_or_else(|e| fail(format!("unexpected reply: {e}"), 1))
    }

    /// Prints `v` as JSON when asked to; says whether it did.
    fn printed_json(&self, v: impl FnOnce() -> Value) -> bool {
        if self.json {
            print_json(&v());
        }
        self.json
    }

    /// `-L -c`: the connection table, of one service or all.
    fn list_connections(&mut self, service: Option<ServiceKey>) {
        let v = self.call("sessions", Value::Null);
        if self.printed_json(|| v.clone()) {
            return;
        }
        let mut list = v["sessions"].as_array().cloned().unwrap_or_default();
        if let Some(k) = service {
            list.retain(|s| s["virtual"] == ipvsadm::addr_port(k.vip, k.port));
        }
        print!("{}", ipvsadm::connections(&list));
    }

    /// `-L`: services and real servers, with their counters or rates.
    fn list_services(&mut self, service: Option<ServiceKey>, kind: ListKind, exact: bool, nosort: bool, numeric: bool) {
        let mut r = self.report();
        if self.printed_json(|| serde_json::to_value(&r).unwrap_or_default()) {
            return;
        }
        let format = match kind {
            ListKind::Stats => Format::Stats,
            ListKind::Rate => Format::Rate,
            _ => Format::Plain,
        };
        let names = (!numeric).then(mgmt::names::Names::system);
        let o = Options { format, exact, nosort, names: names.as_ref() };
        match service {
            Some(k) => {
                r.services.retain(|s| s.protocol == k.protocol && s.vip == k.vip && s.port == k.port);
                let Some(s) = r.services.first() else { fail(format!("no service {k}"), 1) };
                let mut out = String::new();
                ipvsadm::title(&mut out, format);
                ipvsadm::service(&mut out, s, o);
                print!("{out}");
            }
            None => print!("{}", ipvsadm::list(&r, r.session_capacity, o)),
        }
    }

    /// `-R`: rules from stdin, applied as one transaction whatever their
    /// number: all of them or none.
    fn restore(&mut self, replace: bool) {
        let mut text = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut text) {
            fail(format!("reading rules from stdin: {e}"), 1);
        }
        let mut ops = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
            match cli::parse_ipvsadm(&words, &mut cli::Options::default()) {
                Ok(Action::Change(op)) => ops.push(op),
                Ok(other) => fail(format!("line {}: {line:?} is not a change ({other:?})", n + 1), 2),
                Err(e) => fail(format!("line {}: {e}", n + 1), 2),
            }
        }
        let d = match self.client.apply_all(&ops, replace) {
            Ok(r) if r.ok => r.result.unwrap_or(Value::Null),
            Ok(r) => fail(r.error.map_or_else(|| "error".into(), |e| e.message), 1),
            Err(e) => fail(e, 1),
        };
        self.printed_json(|| d);
    }

    /// `show drops|neighbors|health|config`.
    fn show(&mut self, what: Show) {
        if what == Show::Config {
            return print_json(&self.call("config.get", Value::Null));
        }
        if what == Show::Ha {
            let v = self.call("ha", Value::Null);
            if !self.printed_json(|| v.clone()) {
                print_ha(&v);
            }
            return;
        }
        if what == Show::Node {
            let v = self.call("node", Value::Null);
            if !self.printed_json(|| v.clone()) {
                print_node(&v);
            }
            return;
        }
        let r = self.report();
        if self.printed_json(|| serde_json::to_value(&r).unwrap_or_default()) {
            return;
        }
        match what {
            Show::Drops => print_drops(&r),
            Show::Neighbors => print_neighbors(&r),
            Show::Health => print_health(&r),
            Show::Config | Show::Ha | Show::Node => {}
        }
    }

    /// `reload [--force]`: prints what changed.
    fn reload(&mut self, force: bool) {
        let args = if force { json!({ "force": true }) } else { Value::Null };
        let v = self.call("reload", args);
        self.print_reload(&v);
    }

    /// `save-config [FILE]`: rvsd writes its own file; another FILE is
    /// written here, with this user's permissions.
    fn save_config(&mut self, file: Option<&str>) {
        let own = |v: &Value| v["path"].as_str().map(PathBuf::from);
        let got = self.call("config.toml", Value::Null);
        let target = file.map(PathBuf::from);
        let same = |a: &PathBuf, b: &PathBuf| a.canonicalize().ok().zip(b.canonicalize().ok()).is_some_and(|(x, y)| x == y);
        match (target, own(&got)) {
            (Some(t), Some(o)) if !same(&t, &o) => self.write_toml(&t, &got),
            (Some(t), None) => self.write_toml(&t, &got),
            _ => {
                let v = self.call("config.save", Value::Null);
                if !self.printed_json(|| v.clone()) {
                    println!("running configuration saved to {} (the previous file is kept as .bak)", v["path"].as_str().unwrap_or("?"));
                }
            }
        }
    }

    fn write_toml(&mut self, to: &std::path::Path, got: &Value) {
        let text = got["toml"].as_str().unwrap_or_default();
        if let Err(e) = std::fs::write(to, text) {
            fail(format!("writing {}: {e}", to.display()), 1);
        }
        if !self.printed_json(|| json!({ "path": to })) {
            println!("running configuration written to {}", to.display());
            if got["unsaved"].as_bool() == Some(true) {
                println!("(rvsd's own file still lacks the runtime changes: a reload stays refused until `rvsadm save-config` or `reload --force`)");
            }
        }
    }

    /// `reload` prints what changed; other raw commands their reply.
    fn simple(&mut self, cmd: &str) {
        let v = self.call(cmd, Value::Null);
        if !self.json && cmd.starts_with("node.") {
            return print_node(&v);
        }
        print_json(&v);
    }

    fn print_reload(&mut self, v: &Value) {
        if self.json {
            return print_json(v);
        }
        let d = &v["diff"];
        let mut any = false;
        for (k, label) in [
            ("services_added", "service added"),
            ("services_removed", "service removed"),
            ("services_changed", "service changed"),
            ("servers_added", "real server added"),
            ("servers_removed", "real server removed"),
            ("servers_changed", "real server changed"),
        ] {
            for x in d[k].as_array().cloned().unwrap_or_default() {
                println!("{label}: {}", x.as_str().unwrap_or(""));
                any = true;
            }
        }
        if !any {
            println!("no change");
        }
    }
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn print_drops(r: &Report) {
    println!("{:<24} {:>12}  description", "reason", "packets");
    for reason in rvs_core::DropReason::ALL {
        let n = r.drops.get(reason.name()).copied().unwrap_or(0);
        if n > 0 {
            println!("{:<24} {:>12}  {}", reason.name(), n, reason.help());
        }
    }
    println!("{:<24} {:>12}", "total", r.total_drops());
}

fn print_neighbors(r: &Report) {
    println!("{:<40} {:<10} {:<18} kind", "address", "port", "mac");
    for n in &r.neighbors {
        let kind = if n.is_static { "static" } else { "dynamic" };
        println!("{:<40} {:<10} {:<18} {kind}", n.address, n.port, n.mac.as_deref().unwrap_or("(unresolved)"));
    }
}

/// `show node`: what this balancer announces.
fn print_node(v: &Value) {
    let list = |k: &str| v[k].as_array().cloned().unwrap_or_default();
    let state = if v["stopping"] == true {
        "stopping (withdrawn)"
    } else if v["drained"] == true {
        "drained"
    } else {
        "in service"
    };
    println!("node      {state}; routes in table {} via {}", v["table"], v["interface"].as_str().unwrap_or("?"));
    let announced: Vec<String> = list("announced").iter().filter_map(|a| a.as_str().map(str::to_string)).collect();
    println!("announced {}", if announced.is_empty() { "(none)".to_string() } else { announced.join(" ") });
    for w in list("withheld") {
        println!("withheld  {} ({})", w[0].as_str().unwrap_or("?"), w[1].as_str().unwrap_or("?"));
    }
    if let Some(e) = v["last_error"].as_str() {
        println!("error     {e}");
    }
}

fn print_ha(v: &Value) {
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    let master = match (v["master"].as_str(), v["master_priority"].as_u64()) {
        (Some(m), Some(p)) => format!("{m} (priority {p})"),
        _ => "none heard".into(),
    };
    println!(
        "state     {} since {:.1} s ({} transitions)",
        v["state"].as_str().unwrap_or("?"),
        v["since_s"].as_f64().unwrap_or(0.0),
        n("transitions")
    );
    println!("vrid      {}, priority {}", n("vrid"), n("priority"));
    println!("master    {master}");
    println!("adverts   sent {}, received {}, dropped {}", n("adverts_sent"), n("adverts_received"), v["advert_drops"]);
    if v["sync"].as_bool() == Some(true) {
        println!(
            "sync      records sent {}, received {}, applied {}, rejected {}, lost {}; lag {} ms; {}",
            n("sync_sent"),
            n("sync_received"),
            n("sync_applied"),
            v["sync_rejected"],
            n("sync_lost"),
            n("sync_lag_ms"),
            if v["synced"].as_bool() == Some(true) { "synced" } else { "waiting for the master's sessions" }
        );
        println!(
            "          datagrams dropped {}; bulk transfers served {}, received {}",
            v["sync_drops"],
            n("bulk_served"),
            n("bulk_received")
        );
    } else {
        println!("sync      off");
    }
}

fn print_health(r: &Report) {
    println!("{:<30} {:<28} {:<6} {:>6}  last check", "service", "real server", "state", "weight");
    for s in &r.services {
        for rs in &s.real_servers {
            println!(
                "{:<30} {:<28} {:<6} {:>6}  {}",
                format!("{} {}", s.protocol, ipvsadm::addr_port(s.vip, s.port)),
                ipvsadm::addr_port(rs.address, rs.port),
                if rs.maint {
                    "maint"
                } else if rs.up {
                    "up"
                } else {
                    "down"
                },
                rs.effective_weight,
                rs.health.as_ref().map_or("no check".to_string(), |h| h.summary())
            );
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (action, opts) = cli::parse(&args).unwrap_or_else(|e| fail(format!("{e}\n\n{USAGE}"), 2));
    if action == Action::Help {
        println!("{USAGE}");
        return;
    }
    let socket = opts.socket.clone().or_else(|| std::env::var("RVS_SOCKET").ok()).unwrap_or_else(|| "/run/rvs/rvsd.sock".into());
    let client = Client::connect(&PathBuf::from(&socket)).unwrap_or_else(|e| fail(format!("cannot connect to rvsd at {socket}: {e}"), 1));
    let mut c = Conn { client, json: opts.json };
    match action {
        Action::List { service, kind: ListKind::Connections, .. } => c.list_connections(service),
        Action::List { service, kind, exact, nosort, numeric } => c.list_services(service, kind, exact, nosort, numeric),
        Action::Change(op) => {
            let d = c.call("batch", json!({ "ops": [op] }));
            c.printed_json(|| d);
        }
        Action::Reload { force } => c.reload(force),
        Action::Explain { protocol, client, vip } => {
            let v = c.call(
                "explain",
                json!({ "protocol": protocol, "client": ipvsadm::addr_port(client.0, client.1), "vip": ipvsadm::addr_port(vip.0, vip.1) }),
            );
            if !c.printed_json(|| v.clone()) {
                print!("{}", v["text"].as_str().unwrap_or_default());
            }
        }
        Action::Maint { key, address, port, maint } => {
            let v = c.call("server.maint", json!({ "key": key, "address": address, "port": port, "maint": maint }));
            c.printed_json(|| v);
        }
        Action::SaveConfig(file) => c.save_config(file.as_deref()),
        Action::Zero(None) => {
            c.call("zero", Value::Null);
        }
        Action::Zero(Some(key)) => {
            c.call("zero", json!({ "key": key }));
        }
        Action::Save => {
            let cfg: config::Config =
                serde_json::from_value(c.call("config.get", Value::Null)).unwrap_or_else(|e| fail(format!("unexpected reply: {e}"), 1));
            print!("{}", ipvsadm::save(&cfg));
        }
        Action::Restore { replace } => c.restore(replace),
        Action::ShowTimeouts => {
            let t = c.call("timeouts.get", Value::Null);
            if !c.printed_json(|| t.clone()) {
                println!("Timeout (tcp tcpfin udp): {} {} {}", t["tcp"], t["tcpfin"], t["udp"]);
            }
        }
        Action::Show(what) => c.show(what),
        Action::Simple(cmd) => c.simple(cmd),
        Action::SyncDaemon(d) => {
            let cmd = if d.start { "sync.start" } else { "sync.stop" };
            let v = c.call(cmd, json!({ "role": d.role, "syncid": d.syncid, "interface": d.interface }));
            c.printed_json(|| v);
        }
        Action::ListDaemon => {
            let v = c.call("ha", Value::Null);
            if !c.printed_json(|| v.clone()) && v["sync"] == true && v["sync_paused"] != true {
                // ipvsadm's line, with the role the election gave.
                let role = v["state"].as_str().unwrap_or("backup").to_lowercase();
                println!("{role} sync daemon (mcast={}, syncid={})", v["interface"].as_str().unwrap_or(""), v["sync_id"]);
            }
        }
        Action::Choose { key, clients } => {
            let v = c.call("choose", json!({ "key": key, "clients": clients }));
            if !c.printed_json(|| v.clone()) {
                for ((a, p), s) in clients.iter().zip(v["servers"].as_array().cloned().unwrap_or_default()) {
                    println!("{} -> {}", ipvsadm::addr_port(*a, *p), s.as_str().unwrap_or("(none)"));
                }
            }
        }
        Action::Help => {}
    }
}
