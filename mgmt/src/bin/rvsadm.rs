//! rvsadm: the rvs control client, ipvsadm-compatible.
use mgmt::control::Client;
use mgmt::ipvsadm::{self, Format, Options};
use mgmt::report::Report;
use std::path::PathBuf;
use std::process::exit;

fn usage() -> ! {
    eprintln!(
        "usage: rvsadm [--socket PATH] -L|-l [-n] [--stats|--rate] [--exact] [--nosort] [--json]\n       rvsadm [--socket PATH] stats|config|version|ping [--json]"
    );
    exit(2)
}

fn main() {
    let mut socket = PathBuf::from("/run/rvs/rvsd.sock");
    let mut list = false;
    let mut format = Format::Plain;
    let mut exact = false;
    let mut nosort = false;
    let mut json = false;
    let mut verb: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--socket" | "-S" if verb.is_none() && !list => socket = args.next().map(PathBuf::from).unwrap_or_else(|| usage()),
            "--stats" => format = Format::Stats,
            "--rate" => format = Format::Rate,
            "--exact" => exact = true,
            "--nosort" => nosort = true,
            "--json" => json = true,
            "--numeric" => {}
            "stats" | "config" | "version" | "ping" => verb = Some(a.clone()),
            s if s.starts_with('-') && !s.starts_with("--") => {
                for c in s[1..].chars() {
                    match c {
                        'L' | 'l' => list = true,
                        'n' => {}
                        _ => usage(),
                    }
                }
            }
            _ => usage(),
        }
    }
    if let Ok(p) = std::env::var("RVS_SOCKET") {
        socket = PathBuf::from(p);
    }
    let mut c = match Client::connect(&socket) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rvsadm: cannot connect to rvsd at {}: {e}", socket.display());
            exit(1)
        }
    };
    let cmd = match (&verb, list) {
        (Some(v), _) if v == "config" => "config.get".to_string(),
        (Some(v), _) => v.clone(),
        (None, true) => "stats".to_string(),
        (None, false) => "stats".to_string(),
    };
    let resp = match c.call(&cmd, serde_json::Value::Null) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rvsadm: {e}");
            exit(1)
        }
    };
    if !resp.ok {
        let e = resp.error.map(|e| e.message).unwrap_or_default();
        eprintln!("rvsadm: {e}");
        exit(1);
    }
    let result = resp.result.unwrap_or_default();
    if json || verb.is_some() {
        println!("{}", serde_json::to_string_pretty(&result).unwrap_or_default());
        return;
    }
    let report: Report = match serde_json::from_value(result) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rvsadm: unexpected reply: {e}");
            exit(1)
        }
    };
    print!("{}", ipvsadm::list(&report, report.session_capacity, Options { format, exact, nosort }));
}
