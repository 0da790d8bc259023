//! The live status page at the metrics listener's `/` (HAProxy's stats page
//! for rvs): services and real servers with state, weights, connections,
//! rates with a chart of the last minutes, health detail, drops by reason,
//! per-worker load, and the pair's and the announcements' state.
//!
//! Read-only, served by the metrics listener (so it has `/metrics`' access
//! rule: whoever can reach `daemon.metrics_listen`). The page is rendered
//! here in full - a browser without JavaScript sees everything - and a few
//! lines of script fetch `/?part=main` every two seconds and swap it in,
//! so it stays live without reloading. Every value from the configuration
//! or a real server is HTML-escaped.
use crate::ipvsadm::addr_port;
use crate::report::Report;
use std::collections::VecDeque;
use std::fmt::Write;

/// Samples kept: five minutes at one per two seconds.
const SAMPLES: usize = 150;

/// One sample of every service's rates.
#[derive(Clone, Debug)]
struct Sample {
    /// Per service (by its key as text): connections per second and
    /// packets per second in.
    rates: Vec<(String, f64, f64)>,
}

/// The rates of the last minutes, for the charts.
#[derive(Clone, Debug, Default)]
pub struct History {
    samples: VecDeque<Sample>,
}

impl History {
    /// Records the rates of `r` (called every rate period).
    pub fn record(&mut self, r: &Report) {
        let rates = r.services.iter().map(|s| (key_of(s), s.rates.cps, s.rates.inpps)).collect();
        self.samples.push_back(Sample { rates });
        while self.samples.len() > SAMPLES {
            self.samples.pop_front();
        }
    }

    fn series(&self, key: &str) -> Vec<(f64, f64)> {
        self.samples.iter().map(|s| s.rates.iter().find(|(k, _, _)| k == key).map_or((0.0, 0.0), |(_, c, p)| (*c, *p))).collect()
    }
}

fn key_of(s: &crate::report::ServiceReport) -> String {
    format!("{} {}", s.protocol, addr_port(s.vip, s.port))
}

/// HTML-escapes text and attribute values.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A rate for people: 1234567 -> "1.23 M".
fn human(v: f64) -> String {
    if v >= 1e9 {
        format!("{:.2} G", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// A value with an SI prefix to put before a unit: "0 ", "12.3 k".
fn prefix(v: f64) -> String {
    let h = human(v);
    if h.ends_with(|c: char| c.is_ascii_digit()) {
        h + " "
    } else {
        h
    }
}

/// A small SVG chart of connections/s (solid) and packets/s in (dashed).
fn chart(series: &[(f64, f64)]) -> String {
    let (w, h) = (300.0, 48.0);
    let max_c = series.iter().map(|x| x.0).fold(0.0f64, f64::max).max(1.0);
    let max_p = series.iter().map(|x| x.1).fold(0.0f64, f64::max).max(1.0);
    #[expect(clippy::cast_precision_loss, reason = "a chart's x axis")]
    let n = (SAMPLES - 1) as f64;
    let off = SAMPLES.saturating_sub(series.len());
    let line = |f: &dyn Fn(&(f64, f64)) -> f64, max: f64| -> String {
        series
            .iter()
            .enumerate()
            .map(|(i, x)| {
                #[expect(clippy::cast_precision_loss, reason = "a chart's x axis")]
                let px = (i + off) as f64 / n * w;
                format!("{px:.1},{:.1}", h - f(x) / max * (h - 2.0) - 1.0)
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        "<svg class=\"chart\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"rates, last 5 minutes\">\
         <rect width=\"{w}\" height=\"{h}\" class=\"bg\"/>\
         <polyline class=\"pps\" points=\"{}\"/><polyline class=\"cps\" points=\"{}\"/>\
         <text x=\"4\" y=\"11\">{} conn/s max</text><text x=\"4\" y=\"{}\">{} pkt/s max</text></svg>",
        line(&|x| x.1, max_p),
        line(&|x| x.0, max_c),
        human(max_c),
        h - 4.0,
        human(max_p)
    )
}

const STYLE: &str = "body{font:13px/1.35 'DejaVu Sans',sans-serif;margin:0;background:#f4f5f7;color:#1d2330}\
header{background:#1d2330;color:#fff;padding:8px 16px;display:flex;gap:24px;align-items:baseline}\
header h1{font-size:17px;margin:0}main{padding:8px 16px}h2{font-size:15px;margin:16px 0 6px}\
section.service{background:#fff;border:1px solid #d5d9e0;border-radius:4px;margin:10px 0;padding:8px 10px}\
.svc-head{display:flex;gap:18px;align-items:center;flex-wrap:wrap}.svc-head h3{margin:0;font-size:14px}\
table{border-collapse:collapse;width:100%;margin-top:6px}th,td{text-align:left;padding:3px 8px;border-bottom:1px solid #e6e8ec}\
th{background:#eef0f4;font-weight:600}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}\
tr.rs[data-state=up] td.state{background:#c9f0d1}tr.rs[data-state=down] td.state{background:#f7c6c6}\
tr.rs[data-state=maint] td.state{background:#fbe3a6}tr.rs[data-state=drained] td.state{background:#dfe3ea}\
.chart .bg{fill:#f7f8fa;stroke:#d5d9e0}.chart .cps{fill:none;stroke:#2d6cdf;stroke-width:1.5}\
.chart .pps{fill:none;stroke:#8a94a6;stroke-dasharray:3 2}.chart text{font-size:9px;fill:#5a6375}\
.muted{color:#6b7385}.grid{display:grid;grid-template-columns:1fr 1fr;gap:0 24px}";

const SCRIPT: &str = "(function(){var n=0;function tick(){fetch('/?part=main',{cache:'no-store'}).then(function(r){\
if(!r.ok)throw new Error(r.status);return r.text()}).then(function(t){var m=document.getElementById('main');\
m.innerHTML=t;n+=1;var u=document.getElementById('refreshes');u.setAttribute('data-refreshes',String(n));\
u.textContent=String(n)}).catch(function(e){document.getElementById('refreshes').setAttribute('data-error',String(e))})}\
setInterval(tick,2000)})();";

/// The whole page.
pub fn page(r: &Report, h: &History, version: &str, uptime_s: u64) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>rvs status</title><style>{STYLE}</style></head><body>\
         <header><h1>rvs {}</h1><span>up {}</span><span>{} workers</span><span>live: refreshed <span id=\"refreshes\" data-refreshes=\"0\">0</span> times</span></header>\
         <main id=\"main\">{}</main><script>{SCRIPT}</script></body></html>",
        esc(version),
        uptime(uptime_s),
        r.workers,
        main(r, h)
    );
    o
}

fn uptime(s: u64) -> String {
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// What `/?part=main` returns: the page's live part.
#[expect(clippy::too_many_lines, reason = "the page, section by section")]
pub fn main(r: &Report, h: &History) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<p class=\"muted\" id=\"summary\" data-generation=\"{}\">sessions {} IPv4 + {} IPv6 of {} per worker; created {}; frames received {}, forwarded {}; configuration generation {}</p>",
        r.generation, r.sessions.v4, r.sessions.v6, r.session_capacity, r.sessions.created, r.frames.received, r.frames.forwarded, r.generation
    );
    if let Some(ha) = &r.ha {
        let _ = write!(
            o,
            "<p id=\"ha\" data-ha-state=\"{}\">pair: <b>{}</b>, priority {}, VRID {}; master {}; {} transitions; in this state {:.0} s</p>",
            esc(&ha.state),
            esc(&ha.state),
            ha.priority,
            ha.vrid,
            esc(ha.master.as_deref().unwrap_or("-")),
            ha.transitions,
            ha.since_s
        );
    }
    if let Some(n) = &r.node {
        let ann: Vec<String> = n.announced.iter().map(ToString::to_string).collect();
        let wh: Vec<String> = n.withheld.iter().map(|(a, why)| format!("{a} ({})", esc(why))).collect();
        let _ = write!(
            o,
            "<p id=\"announce\" data-drained=\"{}\">announced: {}; withheld: {}{}</p>",
            n.drained,
            esc(&ann.join(", ")),
            if wh.is_empty() { "none".to_string() } else { wh.join(", ") },
            if n.drained { "; <b>drained</b>" } else { "" }
        );
    }
    let _ = write!(o, "<h2>Services</h2>");
    for s in &r.services {
        let key = key_of(s);
        let name = s.name.as_deref().map(|n| format!(" <span class=\"muted\">{}</span>", esc(n))).unwrap_or_default();
        let _ = write!(
            o,
            "<section class=\"service\" data-service=\"{}\"><div class=\"svc-head\"><h3>{}{name}</h3><span>{}</span>\
             <span>{} connections</span><span>{} conn/s</span><span>{} pkt/s in, {} out</span><span>{}bit/s in</span>{}</div>",
            esc(&key),
            esc(&key),
            esc(&format!("{:?}", s.scheduler).to_lowercase()),
            s.totals.conns,
            human(s.rates.cps),
            human(s.rates.inpps),
            human(s.rates.outpps),
            prefix(s.rates.inbps * 8.0),
            chart(&h.series(&key))
        );
        let _ = write!(
            o,
            "<table><thead><tr><th>real server</th><th>forwarding</th><th>state</th><th class=\"n\">weight</th><th class=\"n\">effective</th>\
             <th class=\"n\">active</th><th class=\"n\">inactive</th><th class=\"n\">connections</th><th class=\"n\">conn/s</th><th class=\"n\">pkt/s in</th><th>health</th></tr></thead><tbody>"
        );
        for rs in &s.real_servers {
            let state = if rs.maint {
                "maint"
            } else if !rs.up {
                "down"
            } else if rs.effective_weight == 0 {
                "drained"
            } else {
                "up"
            };
            let health = rs.health.as_ref().map_or("no check".to_string(), |h| h.summary());
            let _ = write!(
                o,
                "<tr class=\"rs\" data-server=\"{}\" data-state=\"{state}\"><td>{}</td><td>{}</td><td class=\"state\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
                 <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"muted\">{}</td></tr>",
                esc(&addr_port(rs.address, rs.port)),
                esc(&addr_port(rs.address, rs.port)),
                esc(&format!("{:?}", rs.forwarding).to_lowercase()),
                state.to_uppercase(),
                rs.weight,
                rs.effective_weight,
                rs.active,
                rs.inactive,
                rs.totals.conns,
                human(rs.rates.cps),
                human(rs.rates.inpps),
                esc(&health)
            );
        }
        if s.fallback_conns > 0 {
            let _ = write!(o, "<tr><td colspan=\"11\" class=\"muted\">sorry server: {} connections</td></tr>", s.fallback_conns);
        }
        let _ = write!(o, "</tbody></table></section>");
    }
    let _ = write!(o, "<div class=\"grid\"><div><h2>Drops by reason</h2><table id=\"drops\"><thead><tr><th>reason</th><th class=\"n\">frames</th></tr></thead><tbody>");
    let mut any = false;
    for (k, v) in r.drops.iter().filter(|(_, v)| **v > 0) {
        any = true;
        let _ = write!(o, "<tr data-reason=\"{}\"><td>{}</td><td class=\"n\">{v}</td></tr>", esc(k), esc(k));
    }
    if !any {
        let _ = write!(o, "<tr><td colspan=\"2\" class=\"muted\">none</td></tr>");
    }
    let _ = write!(
        o,
        "</tbody></table></div><div><h2>Workers</h2><table id=\"workers\"><thead><tr><th>worker</th><th class=\"n\">frames in</th>\
         <th class=\"n\">sessions created</th><th class=\"n\">handed out</th><th class=\"n\">handed in</th><th class=\"n\">busy</th></tr></thead><tbody>"
    );
    for (i, w) in r.per_worker.iter().enumerate() {
        #[expect(clippy::cast_precision_loss, reason = "a percentage for people")]
        let busy = if w.loops == 0 { 0.0 } else { 100.0 * (1.0 - w.idle_loops as f64 / w.loops as f64) };
        let _ = write!(
            o,
            "<tr data-worker=\"{i}\"><td>{i}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{busy:.1}%</td></tr>",
            w.rx_packets.iter().sum::<u64>(),
            w.sessions_created,
            w.handover_out,
            w.handover_in
        );
    }
    let _ = write!(o, "</tbody></table><h2>Ports</h2><table id=\"ports\"><thead><tr><th>port</th><th class=\"n\">rx pkts</th><th class=\"n\">tx pkts</th><th class=\"n\">missed</th></tr></thead><tbody>");
    for p in &r.ports {
        let _ = write!(
            o,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&p.name),
            p.rx_packets,
            p.tx_packets,
            p.rx_missed
        );
    }
    let _ = write!(o, "</tbody></table></div></div>");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_it_is_given() {
        assert_eq!(esc("<b a=\"x\">&'"), "&lt;b a=&quot;x&quot;&gt;&amp;&#39;");
        let mut r = Report::default();
        r.services.push(crate::report::ServiceReport {
            protocol: config::Protocol::Tcp,
            vip: "198.18.0.100".parse().unwrap(),
            port: 80,
            name: Some("<script>alert(1)</script>".into()),
            scheduler: config::SchedulerKind::Rr,
            persistence: None,
            totals: crate::report::Totals::default(),
            rates: crate::report::Rates::default(),
            fallback_conns: 0,
            real_servers: Vec::new(),
        });
        let p = page(&r, &History::default(), "1<2", 5);
        assert!(!p.contains("<script>alert") && p.contains("&lt;script&gt;alert(1)"), "{p}");
        assert!(p.contains("rvs 1&lt;2"));
        let mut h = History::default();
        for _ in 0..200 {
            h.record(&r);
        }
        assert_eq!(h.samples.len(), SAMPLES);
    }

    #[test]
    fn the_page_carries_everything_without_its_script() {
        let mut r = Report::default();
        r.services.push(crate::report::ServiceReport {
            protocol: config::Protocol::Tcp,
            vip: "198.18.0.100".parse().unwrap(),
            port: 80,
            name: None,
            scheduler: config::SchedulerKind::Wrr,
            persistence: None,
            totals: crate::report::Totals::default(),
            rates: crate::report::Rates { cps: 1500.0, ..crate::report::Rates::default() },
            fallback_conns: 0,
            real_servers: Vec::new(),
        });
        r.ha = Some(crate::ha::HaReport { state: "master".into(), priority: 150, vrid: 51, ..crate::ha::HaReport::default() });
        r.node = Some(crate::announce::NodeReport {
            announced: vec!["198.18.0.100".parse().unwrap()],
            withheld: vec![("198.18.0.101".parse().unwrap(), "no server up".into())],
            drained: true,
            stopping: false,
            table: 254,
            interface: "rvsk".into(),
            changes: 2,
            last_error: None,
        });
        r.drops.insert("no_service".into(), 5);
        let mut h = History::default();
        h.record(&r);
        // Server-rendered: the script only refreshes what is already there.
        let main = main(&r, &h);
        let p = page(&r, &h, "0.1.0", 5);
        let body = &p[..p.find("<script>").unwrap()];
        assert!(body.contains(&main), "the live part is in the page itself");
        for want in [
            "data-service=\"TCP 198.18.0.100:80\"",
            "data-ha-state=\"master\"",
            "priority 150, VRID 51",
            "announced: 198.18.0.100; withheld: 198.18.0.101 (no server up); <b>drained</b>",
            "data-reason=\"no_service\"",
            "1.5 k conn/s",
            "<polyline class=\"cps\"",
        ] {
            assert!(main.contains(want), "{want}: {main}");
        }
    }
}
