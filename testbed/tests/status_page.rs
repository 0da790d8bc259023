//! The status page in a real browser: headless Chromium (Debian's) loads
//! `/` from a running rvsd in the test bed; the rendered DOM shows every
//! service and real server with its right state (up, down by its check, in
//! maintenance), the drops and workers tables and the rate charts; the
//! page's own script refreshed it in the browser; a screenshot is saved as
//! a test artifact.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test: a failed step fails the test with its message")]
mod common;
use common::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn services() -> String {
    let mut s = format!(
        "[[services]]\nname = \"web <frontend>\"\nvip = \"{VIP}\"\nport = 80\nprotocol = \"tcp\"\nscheduler = \"rr\"\nforwarding = \"nat\"\n\
         [services.health_check]\nkind = \"tcp\"\ninterval = 0.3\ntimeout = 0.5\nrise = 2\nfall = 3\n"
    );
    for i in 0..3 {
        s.push_str(&format!("[[services.real_servers]]\naddress = \"198.18.1.{}\"\nport = 8080\n", 11 + i));
    }
    s.push_str(&format!("\n[[services]]\nvip = \"{VIP}\"\nport = 53\nprotocol = \"udp\"\nscheduler = \"wrr\"\nforwarding = \"nat\"\n"));
    for i in 0..2 {
        s.push_str(&format!("[[services.real_servers]]\naddress = \"198.18.1.{}\"\nport = 9000\n", 11 + i));
    }
    s
}

/// Runs Debian's chromium headless in rvsd's namespace (where the metrics
/// listener is) with a fresh profile; its standard output.
fn chromium(bed: &testbed::Bed, profile: &std::path::Path, extra: &[&str]) -> String {
    let dir = format!("--user-data-dir={}", profile.display());
    let mut cmd = vec![
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        &dir,
    ];
    cmd.extend_from_slice(extra);
    cmd.push("http://127.0.0.1:9580/");
    bed.lb().sh_timeout(&cmd, Duration::from_secs(90)).unwrap_or_else(|e| panic!("chromium: {e}"))
}

/// (server, state) of each row of the service section `key` in the DOM.
fn rows(dom: &str, key: &str) -> Vec<(String, String)> {
    let start = dom.find(&format!("data-service=\"{key}\"")).unwrap_or_else(|| panic!("no section for {key}:\n{dom}"));
    let section = &dom[start..];
    let section = &section[..section.find("</section>").unwrap()];
    section
        .split("<tr class=\"rs\" data-server=\"")
        .skip(1)
        .map(|r| {
            let server = r[..r.find('"').unwrap()].to_string();
            let st = &r[r.find("data-state=\"").unwrap() + 12..];
            (server, st[..st.find('"').unwrap()].to_string())
        })
        .collect()
}

#[test]
fn the_status_page_in_headless_chromium() {
    let (mut bed, cl, _sv) = nat_bed_opts("status", 1, 3, "workers = 2", &services(), true, &|_| Vec::new());
    let t = Instant::now();
    while !bed.stats().unwrap().services[0].real_servers.iter().all(|r| r.up) {
        assert!(t.elapsed() < Duration::from_secs(5), "servers not up: {:?}", bed.stats().unwrap().services[0].real_servers);
        std::thread::sleep(Duration::from_millis(50));
    }
    rvsadm_ok(&bed, &["server", "maint", "tcp", &format!("{VIP}:80"), "198.18.1.12:8080"]);
    let v = kit(&bed, cl[0], &["http", "--url", &format!("http://{VIP}/"), "--count", "40"], 60);
    assert_eq!(testbed::tally(&v).0, 40, "{v}");
    kit(&bed, cl[0], &["udp", "--target", &format!("{VIP}:53"), "--count", "20"], 60);
    // rs3 dies: down by its check.
    bed.proc(2).stop(Duration::from_secs(1));
    let t = Instant::now();
    while bed.stats().unwrap().services[0].real_servers[2].up {
        assert!(t.elapsed() < Duration::from_secs(10), "rs3 not down");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Traffic over a few rate periods, for the charts.
    let v = kit(&bed, cl[0], &["http", "--url", &format!("http://{VIP}/"), "--count", "150", "--gap-ms", "30"], 60);
    assert_eq!(testbed::tally(&v).0, 150, "{v}");
    let profile = bed.dir.join("chromium-profile");
    // The page's script fetches the live part every 2 s: 7 s of virtual
    // time lets it run (and waits for its fetches).
    let dom = chromium(&bed, &profile, &["--virtual-time-budget=7000", "--dump-dom"]);
    assert!(dom.contains("<title>rvs status</title>"), "{dom}");
    assert_eq!(
        rows(&dom, &format!("TCP {VIP}:80")),
        [
            ("198.18.1.11:8080".to_string(), "up".to_string()),
            ("198.18.1.12:8080".to_string(), "maint".to_string()),
            ("198.18.1.13:8080".to_string(), "down".to_string())
        ]
    );
    assert_eq!(rows(&dom, &format!("UDP {VIP}:53")).iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>(), ["up", "up"]);
    // The service's name is escaped, health detail shown, charts drawn.
    assert!(dom.contains("web &lt;frontend&gt;"), "{dom}");
    assert!(dom.contains("checks, ") && dom.contains("down for"), "health detail: {dom}");
    assert!(dom.matches("<svg class=\"chart\"").count() >= 2 && dom.contains("<polyline class=\"cps\" points=\""), "{dom}");
    assert!(dom.contains("id=\"drops\"") && dom.matches("<tr data-worker=").count() == 2, "{dom}");
    // Refreshed by its own script, in the browser.
    let at = dom.find("data-refreshes=\"").unwrap() + 16;
    let n: u32 = dom[at..at + dom[at..].find('"').unwrap()].parse().unwrap();
    assert!(n >= 1, "the page's script did not refresh it: {dom}");
    assert!(!dom.contains("data-error="), "{dom}");
    // The screenshot, kept as an artifact.
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    let png = dir.join("status-page.png");
    let _ = std::fs::remove_file(&png);
    let shot = format!("--screenshot={}", png.display());
    chromium(&bed, &profile, &["--virtual-time-budget=3000", "--window-size=1280,1100", "--hide-scrollbars", &shot]);
    let b = std::fs::read(&png).unwrap_or_else(|e| panic!("no screenshot at {}: {e}", png.display()));
    assert!(b.starts_with(b"\x89PNG") && b.len() > 20_000, "{} bytes", b.len());
    println!("status page: {n} refreshes in the browser; screenshot {} ({} bytes)", png.canonicalize().unwrap().display(), b.len());
}
