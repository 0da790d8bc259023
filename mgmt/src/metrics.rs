//! Prometheus text exposition (format 0.0.4) over HTTP: `GET /metrics`.
//!
//! Served by its own thread on `daemon.metrics_listen` (127.0.0.1:9580 by
//! default; `""` disables it); each scrape takes the management lock only
//! to build the report, and each connection has read/write timeouts so a
//! slow scraper cannot hold anything up. Counter names end in `_total`;
//! every value comes from the same report as `rvsadm --json stats`.
use crate::manager::Manager;
use crate::report::Report;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Escapes a label value.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }
    fn sample(&mut self, name: &str, labels: &[(&str, String)], v: impl std::fmt::Display) {
        if labels.is_empty() {
            let _ = writeln!(self.out, "{name} {v}");
        } else {
            let l: Vec<String> = labels.iter().map(|(k, x)| format!("{k}=\"{}\"", esc(x))).collect();
            let _ = writeln!(self.out, "{name}{{{}}} {v}", l.join(","));
        }
    }
}

/// Renders a report in the text exposition format.
pub fn render(r: &Report, version: &str) -> String {
    let mut out = String::with_capacity(8192);
    let mut f = Family { out: &mut out };
    info(&mut f, r, version);
    services(&mut f, r);
    real_servers(&mut f, r);
    frames(&mut f, r);
    ports(&mut f, r);
    sessions(&mut f, r);
    workers(&mut f, r);
    neighbors(&mut f, r);
    ha(&mut f, r);
    node(&mut f, r);
    out
}

/// Scale-out: what this node announces (only with `[announce]`).
fn node(f: &mut Family<'_>, r: &Report) {
    let Some(n) = &r.node else { return };
    f.head("rvs_node_announced_vips", "gauge", "VIPs this node announces now.");
    f.sample("rvs_node_announced_vips", &[], n.announced.len());
    f.head("rvs_node_drained", "gauge", "1 while the operator has drained this node.");
    f.sample("rvs_node_drained", &[], u64::from(n.drained));
    f.head("rvs_vip_announced", "gauge", "1 for a VIP announced by this node, 0 for one withheld.");
    for a in &n.announced {
        f.sample("rvs_vip_announced", &[("vip", a.to_string())], 1);
    }
    for (a, _) in &n.withheld {
        f.sample("rvs_vip_announced", &[("vip", a.to_string())], 0);
    }
}

/// The pair: state, adverts, sync (only on a node of a pair).
fn ha(f: &mut Family<'_>, r: &Report) {
    let Some(h) = &r.ha else { return };
    f.head("rvs_ha_state", "gauge", "VRRP state: 0 init, 1 backup, 2 master, 3 fault.");
    let n = match h.state.as_str() {
        "BACKUP" => 1,
        "MASTER" => 2,
        "FAULT" => 3,
        _ => 0,
    };
    f.sample("rvs_ha_state", &[("vrid", h.vrid.to_string())], n);
    f.head("rvs_ha_priority", "gauge", "This node's VRRP priority.");
    f.sample("rvs_ha_priority", &[], h.priority);
    for (name, help, v) in [
        ("rvs_ha_transitions_total", "VRRP state changes.", h.transitions),
        ("rvs_ha_adverts_sent_total", "VRRP advertisements sent.", h.adverts_sent),
        ("rvs_ha_adverts_received_total", "VRRP advertisements accepted.", h.adverts_received),
        ("rvs_sync_records_sent_total", "Session sync records sent.", h.sync_sent),
        ("rvs_sync_records_received_total", "Session sync records received.", h.sync_received),
        ("rvs_sync_records_applied_total", "Session sync records installed by the workers.", h.sync_applied),
        ("rvs_sync_records_lost_total", "Session sync records lost to full queues.", h.sync_lost),
        ("rvs_sync_bulk_served_total", "Bulk transfers of the whole table sent to a joining peer.", h.bulk_served),
        ("rvs_sync_bulk_received_total", "Bulk transfers received complete.", h.bulk_received),
    ] {
        f.head(name, "counter", help);
        f.sample(name, &[], v);
    }
    for (name, help, by) in [
        ("rvs_ha_advert_drops_total", "VRRP advertisements dropped, by reason.", &h.advert_drops),
        ("rvs_sync_records_rejected_total", "Session sync records the workers refused, by reason.", &h.sync_rejected),
        ("rvs_sync_drops_total", "Session sync datagrams dropped, by reason.", &h.sync_drops),
    ] {
        f.head(name, "counter", help);
        for (reason, v) in by {
            f.sample(name, &[("reason", reason.clone())], v);
        }
    }
    f.head("rvs_sync_lag_ms", "gauge", "How long the last batch of sync records waited before it was sent.");
    f.sample("rvs_sync_lag_ms", &[], h.sync_lag_ms);
    f.head("rvs_sync_synced", "gauge", "1 when this node has the master's sessions (it may preempt).");
    f.sample("rvs_sync_synced", &[], u8::from(h.synced));
}

fn service_labels(s: &crate::report::ServiceReport) -> Vec<(&'static str, String)> {
    vec![("protocol", format!("{}", s.protocol).to_lowercase()), ("vip", s.vip.to_string()), ("port", s.port.to_string())]
}

/// Version, configuration generation, workers.
fn info(f: &mut Family<'_>, r: &Report, version: &str) {
    f.head("rvs_info", "gauge", "rvs version and configuration generation.");
    f.sample("rvs_info", &[("version", version.to_string())], 1);
    f.head("rvs_config_generation", "gauge", "Generation of the configuration the workers run.");
    f.sample("rvs_config_generation", &[], r.generation);
    f.head("rvs_workers", "gauge", "Worker cores.");
    f.sample("rvs_workers", &[], r.workers);
}

/// Per-service counters.
fn services(f: &mut Family<'_>, r: &Report) {
    type SvcGet = fn(&crate::report::ServiceReport) -> u64;
    let svc_counters: [(&str, &str, SvcGet); 6] = [
        ("rvs_service_connections_total", "Connections (sessions) created.", |s| s.totals.conns),
        ("rvs_service_packets_in_total", "Packets from clients.", |s| s.totals.pkts_in),
        ("rvs_service_packets_out_total", "Packets to clients (NAT and full NAT).", |s| s.totals.pkts_out),
        ("rvs_service_bytes_in_total", "Bytes from clients.", |s| s.totals.bytes_in),
        ("rvs_service_bytes_out_total", "Bytes to clients (NAT and full NAT).", |s| s.totals.bytes_out),
        ("rvs_service_fallback_connections_total", "Connections sent to the fallback server.", |s| s.fallback_conns),
    ];
    for (name, help, get) in svc_counters {
        f.head(name, "counter", help);
        for s in &r.services {
            f.sample(name, &service_labels(s), get(s));
        }
    }
}

/// Per-real-server counters, gauges and health checks.
fn real_servers(f: &mut Family<'_>, r: &Report) {
    type RsGet = fn(&crate::report::RealServerReport) -> f64;
    #[expect(clippy::cast_precision_loss, reason = "exposition values are floats")]
    let rs_metrics: [(&str, &str, &str, RsGet); 12] = [
        ("rvs_real_server_connections_total", "counter", "Connections created.", |x| x.totals.conns as f64),
        ("rvs_real_server_packets_in_total", "counter", "Packets to the real server.", |x| x.totals.pkts_in as f64),
        ("rvs_real_server_packets_out_total", "counter", "Packets from the real server (NAT and full NAT).", |x| x.totals.pkts_out as f64),
        ("rvs_real_server_bytes_in_total", "counter", "Bytes to the real server.", |x| x.totals.bytes_in as f64),
        ("rvs_real_server_bytes_out_total", "counter", "Bytes from the real server.", |x| x.totals.bytes_out as f64),
        ("rvs_real_server_active_connections", "gauge", "Established TCP connections.", |x| x.active as f64),
        ("rvs_real_server_inactive_connections", "gauge", "Other connections.", |x| x.inactive as f64),
        ("rvs_real_server_weight", "gauge", "Configured weight.", |x| f64::from(x.weight)),
        ("rvs_real_server_effective_weight", "gauge", "Weight used for scheduling (0 when down or drained).", |x| {
            f64::from(x.effective_weight)
        }),
        ("rvs_real_server_up", "gauge", "1 unless a health check marked it down.", |x| if x.up { 1.0 } else { 0.0 }),
        ("rvs_real_server_health_checks_total", "counter", "Health checks run.", |x| x.health.as_ref().map_or(0.0, |h| h.checks as f64)),
        ("rvs_real_server_health_check_failures_total", "counter", "Health checks failed.", |x| {
            x.health.as_ref().map_or(0.0, |h| h.failures as f64)
        }),
    ];
    for (name, kind, help, get) in rs_metrics {
        f.head(name, kind, help);
        for s in &r.services {
            for x in &s.real_servers {
                let mut l = service_labels(s);
                l.push(("server", crate::ipvsadm::addr_port(x.address, x.port)));
                f.sample(name, &l, get(x));
            }
        }
    }
}

/// Drops by reason, frames by verdict, announcements, contained faults.
fn frames(f: &mut Family<'_>, r: &Report) {
    f.head("rvs_drops_total", "counter", "Packets not forwarded, by reason.");
    for (reason, n) in &r.drops {
        f.sample("rvs_drops_total", &[("reason", reason.clone())], n);
    }
    f.head("rvs_frames_total", "counter", "Received frames by verdict (dropped: drops of class verdict; lost: dropped after the verdict).");
    let fr = &r.frames;
    for (verdict, n) in [
        ("forwarded", fr.forwarded),
        ("answered", fr.answered),
        ("consumed", fr.consumed),
        ("to_kernel", fr.to_kernel),
        ("handed_over", fr.handed_over),
        ("held", fr.held),
        ("dropped", fr.dropped),
        ("lost", fr.lost),
    ] {
        f.sample("rvs_frames_total", &[("verdict", verdict.to_string())], n);
    }
    f.head("rvs_announcements_total", "counter", "Gratuitous ARPs and unsolicited neighbour advertisements sent.");
    f.sample("rvs_announcements_total", &[], r.announcements);
    f.head(
        "rvs_management_faults_total",
        "counter",
        "Faults contained in management tasks (each cost one request or check, never forwarding).",
    );
    for (task, n) in &r.faults {
        f.sample("rvs_management_faults_total", &[("task", task.clone())], n);
    }
}

/// Per-port device counters.
fn ports(f: &mut Family<'_>, r: &Report) {
    type PortGet = fn(&crate::report::PortReport) -> u64;
    let port_counters: [(&str, &str, PortGet); 5] = [
        ("rvs_port_rx_packets_total", "Packets received.", |p| p.rx_packets),
        ("rvs_port_rx_bytes_total", "Bytes received.", |p| p.rx_bytes),
        ("rvs_port_tx_packets_total", "Packets sent.", |p| p.tx_packets),
        ("rvs_port_tx_bytes_total", "Bytes sent.", |p| p.tx_bytes),
        ("rvs_port_rx_missed_total", "Packets the device dropped (no descriptor or buffer).", |p| p.rx_missed),
    ];
    for (name, help, get) in port_counters {
        f.head(name, "counter", help);
        for p in &r.ports {
            f.sample(name, &[("port", p.name.clone())], get(p));
        }
    }
}

/// Session tables, hand-over, ICMP and neighbour counters.
fn sessions(f: &mut Family<'_>, r: &Report) {
    f.head("rvs_sessions", "gauge", "Sessions in the tables.");
    f.sample("rvs_sessions", &[("family", "ipv4".into())], r.sessions.v4);
    f.sample("rvs_sessions", &[("family", "ipv6".into())], r.sessions.v6);
    for (name, help, v) in [
        ("rvs_sessions_created_total", "Sessions created.", r.sessions.created),
        ("rvs_sessions_expired_total", "Sessions ended.", r.sessions.expired),
        ("rvs_sessions_reused_total", "Closing sessions replaced by a new SYN.", r.sessions.reused),
        ("rvs_handover_out_total", "Packets handed to the core that owns their session.", r.handover_out),
        ("rvs_handover_in_total", "Packets received from other cores.", r.handover_in),
        ("rvs_icmp_errors_sent_total", "ICMP errors generated (time exceeded, too big).", r.icmp_errors_sent),
        ("rvs_icmp_errors_forwarded_total", "ICMP errors forwarded along sessions.", r.icmp_errors_forwarded),
        ("rvs_neighbor_answers_total", "ARP replies and neighbour advertisements sent.", r.neigh_answers),
        ("rvs_neighbor_probes_total", "ARP requests and neighbour solicitations sent.", r.neigh_probes),
        ("rvs_neighbor_held_total", "Frames held until their next hop's MAC resolved.", r.neigh_held),
        ("rvs_synproxy_syns_total", "SYNs the SYN proxy answered with a cookie.", r.synproxy.syns),
        (
            "rvs_synproxy_cookies_valid_total",
            "ACKs with a valid SYN cookie (connections opened to a real server).",
            r.synproxy.cookies_valid,
        ),
        ("rvs_synproxy_cookies_invalid_total", "ACKs to a SYN-proxied service with no valid cookie.", r.synproxy.cookies_invalid),
        (
            "rvs_synproxy_syns_resent_total",
            "SYNs the SYN proxy sent a real server again (the client probed, or a second passed, before the server answered).",
            r.synproxy.syns_resent,
        ),
        (
            "rvs_synproxy_resend_ring_full_total",
            "Real servers' handshakes the SYN proxy's resend timer could not follow (its ring per worker was full).",
            r.synproxy.resend_ring_full,
        ),
        ("rvs_synproxy_window_updates_total", "Window updates the SYN proxy sent once a real server answered.", r.synproxy.window_updates),
        (
            "rvs_synproxy_sack_translated_total",
            "Segments of spliced connections whose SACK blocks were translated.",
            r.synproxy.sack_translated,
        ),
    ] {
        f.head(name, "counter", help);
        f.sample(name, &[], v);
    }
}

/// Per-worker counters.
fn workers(f: &mut Family<'_>, r: &Report) {
    f.head("rvs_worker_rx_packets_total", "counter", "Packets received from a port's queue of one worker.");
    for (w, x) in r.per_worker.iter().enumerate() {
        for (p, n) in r.ports.iter().zip(&x.rx_packets) {
            f.sample("rvs_worker_rx_packets_total", &[("worker", w.to_string()), ("port", p.name.clone())], *n);
        }
    }
    type WorkerGet = fn(&crate::report::WorkerReport) -> u64;
    let worker_counters: [(&str, &str, WorkerGet); 5] = [
        ("rvs_worker_sessions_created_total", "Sessions one worker created.", |x| x.sessions_created),
        ("rvs_worker_handover_out_total", "Packets one worker handed to the core owning their session.", |x| x.handover_out),
        ("rvs_worker_handover_in_total", "Packets other cores handed to one worker.", |x| x.handover_in),
        ("rvs_worker_loops_total", "Poll loop iterations of one worker.", |x| x.loops),
        ("rvs_worker_idle_loops_total", "Poll loop iterations that found no packet.", |x| x.idle_loops),
    ];
    for (name, help, get) in worker_counters {
        f.head(name, "counter", help);
        for (w, x) in r.per_worker.iter().enumerate() {
            f.sample(name, &[("worker", w.to_string())], get(x));
        }
    }
}

/// Neighbour resolution.
fn neighbors(f: &mut Family<'_>, r: &Report) {
    f.head("rvs_neighbor_resolved", "gauge", "1 when the next hop's MAC is known.");
    for n in &r.neighbors {
        f.sample("rvs_neighbor_resolved", &[("address", n.address.to_string()), ("port", n.port.clone())], u8::from(n.mac.is_some()));
    }
}

/// A running metrics listener.
#[derive(Debug)]
pub struct MetricsServer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The bound address.
    pub addr: SocketAddr,
}

fn serve(mut s: TcpStream, mgr: &Mutex<Manager>) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    let mut r = BufReader::new(match s.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    let mut line = String::new();
    if r.read_line(&mut line).is_err() {
        return;
    }
    // Skip the headers.
    loop {
        let mut h = String::new();
        match r.read_line(&mut h) {
            Ok(0) | Err(_) => break,
            Ok(_) if h.trim().is_empty() => break,
            Ok(_) => {}
        }
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/");
    let (status, ctype, body) = if !line.starts_with("GET ") {
        ("405 Method Not Allowed", "text/plain", "GET only\n".to_string())
    } else if path == "/metrics" || path.starts_with("/metrics?") {
        let report = crate::fault::lock(mgr).report();
        ("200 OK", "text/plain; version=0.0.4; charset=utf-8", render(&report, env!("CARGO_PKG_VERSION")))
    } else if path == "/" || path == "/index.html" || path == "/?part=main" {
        // The status page (mgmt/src/status.rs); its script asks for the
        // live part alone.
        let m = crate::fault::lock(mgr);
        let (report, history, up) = (m.report(), m.history().clone(), m.uptime());
        drop(m);
        let body = if path == "/?part=main" {
            crate::status::main(&report, &history)
        } else {
            crate::status::page(&report, &history, env!("CARGO_PKG_VERSION"), up)
        };
        ("200 OK", "text/html; charset=utf-8", body)
    } else {
        ("404 Not Found", "text/plain", "try / (the status page) or /metrics\n".to_string())
    };
    let _ = write!(
        s,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

impl MetricsServer {
    /// Binds and serves.
    pub fn start(addr: SocketAddr, mgr: Arc<Mutex<Manager>>) -> std::io::Result<MetricsServer> {
        let l = TcpListener::bind(addr)?;
        let addr = l.local_addr()?;
        l.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let busy = Arc::new(AtomicUsize::new(0));
        let thread = std::thread::Builder::new().name("rvs-metrics".into()).spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((s, _)) => {
                        let _ = s.set_nonblocking(false);
                        if busy.load(Ordering::Relaxed) >= 16 {
                            continue; // dropped: the scraper retries
                        }
                        busy.fetch_add(1, Ordering::Relaxed);
                        let (m, b) = (mgr.clone(), busy.clone());
                        let _ = std::thread::Builder::new().name("rvs-scrape".into()).spawn(move || {
                            let _ = crate::fault::contain(crate::fault::Task::Metrics, || {
                                crate::fault::injection_point(crate::fault::Task::Metrics);
                                serve(s, &m);
                            });
                            b.fetch_sub(1, Ordering::Relaxed);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        })?;
        Ok(MetricsServer { stop, thread: Some(thread), addr })
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families_and_escapes() {
        let mut r = Report::default();
        r.drops.insert("no_service".into(), 3);
        let text = render(&r, "1.0\"x");
        assert!(text.contains("# TYPE rvs_drops_total counter\nrvs_drops_total{reason=\"no_service\"} 3\n"), "{text}");
        assert!(text.contains("rvs_info{version=\"1.0\\\"x\"} 1"));
        // Every sample line belongs to a declared family.
        let families: std::collections::HashSet<&str> =
            text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).map(|l| l.split(' ').next().unwrap()).collect();
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap();
            assert!(families.contains(name), "{l}");
        }
    }
}
