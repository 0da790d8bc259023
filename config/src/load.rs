//! Reading a TOML file into the [`Config`] model, with positions in errors.
//!
//! The text is parsed twice: once into toml's spanned document, which gives
//! the source span of every key, and once by serde into the model. Any error
//! (syntax, unknown key, wrong type, an address that does not parse, or a
//! semantic check from [`Config::validate`]) is mapped back to the field
//! path and the line and column where that field is written.
use crate::error::{ConfigError, ConfigErrors};
use crate::model::{Config, SourceLine, Strictness};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// A check beyond [`Config::validate`] (rvsd adds the memory budget);
/// its errors name fields, which the loader turns into positions.
pub type ExtraCheck<'a> = &'a dyn Fn(&Config) -> Result<(), ConfigErrors>;

/// Reads and validates a configuration file.
pub fn from_file(path: &Path) -> Result<Config, ConfigErrors> {
    from_file_with(path, &|_| Ok(()))
}

/// Reads a configuration file and validates it, `extra` included.
pub fn from_file_with(path: &Path, extra: ExtraCheck<'_>) -> Result<Config, ConfigErrors> {
    let name = path.display().to_string();
    let whole = |message: String| ConfigError { file: Some(name.clone()), line: None, column: None, field: String::new(), message };
    let bytes = std::fs::read(path).map_err(|e| whole(format!("cannot read: {e}")))?;
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            // Say where: the line and column of the first invalid byte.
            let at = e.utf8_error().valid_up_to();
            let valid = String::from_utf8_lossy(e.as_bytes().get(..at).unwrap_or(&[])).into_owned();
            let (line, column) = line_col(&valid, valid.len());
            return Err(ConfigError {
                file: Some(name),
                line: Some(line),
                column: Some(column),
                field: String::new(),
                message: format!("invalid UTF-8 at byte {at} (the file must be UTF-8 text)"),
            }
            .into());
        }
    };
    from_str_with(&text, &name, extra)
}

/// Parses and validates configuration text; `file` names it in errors.
pub fn from_str(text: &str, file: &str) -> Result<Config, ConfigErrors> {
    from_str_with(text, file, &|_| Ok(()))
}

/// Parses and validates configuration text, `extra` included.
pub fn from_str_with(text: &str, file: &str, extra: ExtraCheck<'_>) -> Result<Config, ConfigErrors> {
    let locate = |span: Option<Range<usize>>, field: String, message: String| {
        let (line, column) = match span {
            Some(s) => {
                let (l, c) = line_col(text, s.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        ConfigError { file: Some(file.to_string()), line, column, field, message }
    };

    let doc = DeTable::parse(text).map_err(|e| locate(e.span(), String::new(), e.message().trim().to_string()))?;
    let mut index = Index::new();
    walk_table(doc.get_ref(), "", &mut index);

    let mut cfg: Config = toml::from_str(text).map_err(|e| {
        let span = e.span();
        let field = span.as_ref().map(|s| innermost(&index, s)).unwrap_or_default();
        locate(span, field, e.message().trim().to_string())
    })?;

    // A timeout a service does not set is the [defaults] one.
    let defaults = cfg.defaults.timeouts;
    for (i, s) in cfg.services.iter_mut().enumerate() {
        for ((k, v), (_, d)) in s.timeouts.fields_mut().into_iter().zip(defaults.fields()) {
            if !index.contains_key(&format!("services[{i}].timeouts.{k}")) {
                *v = d;
            }
        }
    }
    for (i, p) in cfg.ports.iter_mut().enumerate() {
        p.device_line = SourceLine(index.get(&format!("ports[{i}].device")).map(|(s, _)| line_col(text, s.start).0));
    }

    cfg.validate(Strictness::File).and_then(|()| extra(&cfg)).map_err(|errs| {
        ConfigErrors(
            errs.0
                .into_iter()
                .map(|e| {
                    let span = lookup(&index, &e.field);
                    locate(span, e.field, e.message)
                })
                .collect(),
        )
    })?;
    Ok(cfg)
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(before.len(), |nl| before.len() - nl - 1) + 1;
    (line, col)
}

/// Field path -> (where to report it, the whole extent of key and value).
type Index = BTreeMap<String, (Range<usize>, Range<usize>)>;

/// Records the spans of every key and array element under `prefix`.
fn walk_table(t: &DeTable<'_>, prefix: &str, index: &mut Index) {
    for (k, v) in t.iter() {
        let path = if prefix.is_empty() { k.get_ref().to_string() } else { format!("{prefix}.{}", k.get_ref()) };
        // Report scalars at their value, tables and arrays at their key
        // (where an operator looks); match errors against the whole extent.
        let report = match v.get_ref() {
            DeValue::Table(_) | DeValue::Array(_) => k.span(),
            _ => v.span(),
        };
        let whole = k.span().start.min(v.span().start)..k.span().end.max(v.span().end);
        index.insert(path.clone(), (report, whole));
        walk_value(v, &path, index);
    }
}

fn walk_value(v: &Spanned<DeValue<'_>>, path: &str, index: &mut Index) {
    match v.get_ref() {
        DeValue::Table(t) => walk_table(t, path, index),
        DeValue::Array(a) => {
            for (i, item) in a.iter().enumerate() {
                let p = format!("{path}[{i}]");
                index.insert(p.clone(), (item.span(), item.span()));
                walk_value(item, &p, index);
            }
        }
        _ => {}
    }
}

/// The deepest recorded path whose extent contains `span`.
fn innermost(index: &Index, span: &Range<usize>) -> String {
    index
        .iter()
        .filter(|(_, (_, w))| w.start <= span.start && span.start < w.end.max(w.start + 1))
        .max_by_key(|(p, (_, w))| (p.matches(['.', '[']).count(), usize::MAX - (w.end - w.start)))
        .map(|(p, _)| p.clone())
        .unwrap_or_default()
}

/// The report span of `field`, or of its nearest written ancestor (a
/// missing key is reported at the table that lacks it).
fn lookup(index: &Index, field: &str) -> Option<Range<usize>> {
    let mut f = field.to_string();
    loop {
        if let Some((s, _)) = index.get(&f) {
            return Some(s.clone());
        }
        let cut = f.rfind(['.', '['])?;
        f.truncate(cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    use crate::fixtures::{line_of, two_port_nat};

    fn good() -> String {
        format!("[dataplane]\nworkers = 1\nidle_backoff_us = 200\n\n{}", two_port_nat())
    }

    fn refuse(text: &str) -> ConfigError {
        from_str(text, "rvs.toml").expect_err("config should be refused").0.remove(0)
    }

    #[test]
    fn accepts_a_good_file() {
        let c = from_str(&good(), "rvs.toml").unwrap();
        assert_eq!(c.ports.len(), 2);
        assert_eq!(c.ports[0].device_line.0, Some(line_of(&good(), "device = \"net_null0\"")));
        let s = &c.services[0];
        assert_eq!(s.scheduler, SchedulerKind::Wrr);
        assert_eq!(s.real_servers[0].weight, 2);
        assert_eq!(s.real_servers[1].weight, 1);
        assert_eq!(c.dataplane.idle_backoff_us, 200);
        assert_eq!(c.egress_for("198.18.1.11".parse().unwrap()), Some((1, "198.18.1.11".parse().unwrap())));
    }

    #[test]
    fn the_example_file_is_valid() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../rvs.example.toml");
        let c = from_file(Path::new(path)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.services.len(), 2);
        assert_eq!(c.services[0].real_servers.len(), 3);
        // The server behind the gateway is reached through the static route.
        assert_eq!(c.egress_for("198.19.5.7".parse().unwrap()), Some((1, "198.18.1.254".parse().unwrap())));
    }

    #[test]
    fn syntax_error_has_line() {
        let e = refuse("[dataplane\nworkers = 1\n");
        assert_eq!(e.line, Some(1));
        assert_eq!(e.file.as_deref(), Some("rvs.toml"));
    }

    #[test]
    fn unknown_field_is_named_with_line() {
        let text = good().replace("weight = 2", "wieght = 2");
        let e = refuse(&text);
        assert!(e.message.contains("wieght"), "{e}");
        assert_eq!(e.line, Some(line_of(&text, "wieght")), "{e}");
        assert!(e.field.starts_with("services[0].real_servers[0]"), "{e}");
    }

    #[test]
    fn bad_address_names_the_field() {
        let text = good().replace("198.18.1.12", "198.18.1.x");
        let e = refuse(&text);
        assert_eq!(e.field, "services[0].real_servers[1].address", "{e}");
        let line = line_of(&text, "198.18.1.x");
        assert_eq!(e.line, Some(line), "{e}");
        let s = e.to_string();
        assert!(s.starts_with(&format!("rvs.toml:{line}:")), "{s}");
    }

    #[test]
    fn service_without_real_servers_is_refused() {
        let good = good();
        let cut = good.find("[[services.real_servers]]").unwrap();
        let e = refuse(&good[..cut]);
        assert_eq!(e.field, "services[0].real_servers");
        assert!(e.message.contains("no real servers"), "{e}");
        assert_eq!(e.line, Some(line_of(&good, "[[services]]")), "{e}"); // reported at the service's header
    }

    #[test]
    fn semantic_errors_have_lines() {
        let text = good().replace("address = \"198.18.1.11\"", "address = \"203.0.113.5\"");
        let e = refuse(&text);
        assert_eq!(e.field, "services[0].real_servers[0].address");
        assert!(e.message.contains("not reachable"), "{e}");
        assert_eq!(e.line, Some(line_of(&text, "203.0.113.5")), "{e}");

        let text = good().replace("scheduler = \"wrr\"", "scheduler = \"fastest\"");
        let e = refuse(&text);
        assert_eq!(e.field, "services[0].scheduler", "{e}");
        assert_eq!(e.line, Some(line_of(&text, "fastest")));

        let text = good().replace("\"198.18.1.1/24\"", "\"198.18.1.1/40\"");
        let e = refuse(&text);
        assert!(e.field.starts_with("ports[1].addresses"), "{e}");
        assert_eq!(e.line, Some(line_of(&text, "/40")));
    }

    #[test]
    fn neighbor_on_missing_port() {
        let text = format!("{}\n[[neighbors]]\naddress = \"198.18.1.11\"\nmac = \"02:00:00:00:00:0b\"\nport = \"nope\"\n", good());
        let e = refuse(&text);
        assert_eq!(e.field, "neighbors[0].port");
        assert!(e.message.contains("no port named"));
    }

    #[test]
    fn dr_cannot_change_port_and_families_must_match() {
        let text = good().replace("forwarding = \"nat\"", "forwarding = \"dr\"");
        let e = refuse(&text);
        assert_eq!(e.field, "services[0].real_servers[0].port", "{e}");
        let text = good().replace("address = \"198.18.1.11\"", "address = \"2001:db8::11\"");
        let e = refuse(&text);
        assert!(e.message.contains("family"), "{e}");
    }

    #[test]
    fn every_error_is_reported() {
        let text = good().replace("weight = 2", "weight = 70000").replace("port = 80\n", "port = 0\n");
        let errs = from_str(&text, "rvs.toml").unwrap_err();
        assert!(errs.0.len() >= 2, "{errs}");
    }
}

#[cfg(test)]
mod refusals {
    //! Fault 9 of issue 10: configurations that validated but could not
    //! work are refused, each with its field and line.
    use super::*;

    use crate::fixtures::{line_of, service, two_ports};

    /// The two ports and a NAT service with one real server, 198.18.1.11:8080.
    fn base() -> String {
        format!("{}{}", two_ports(), service("wlc", "nat", 8080, &[1]))
    }

    fn refuse(text: &str) -> ConfigError {
        from_str(text, "rvs.toml").expect_err("config should be refused").0.remove(0)
    }

    #[test]
    fn the_base_is_valid() {
        from_str(&base(), "rvs.toml").unwrap();
    }

    #[test]
    fn quorum_hysteresis_and_hooks_are_checked() {
        let e = refuse(&base().replacen("[[services.real_servers]]", "quorum = 2\nhysteresis = 3\n[[services.real_servers]]", 1));
        assert_eq!(e.field, "services[0].hysteresis", "{e}");
        let text = base().replacen("[[services.real_servers]]", "quorum_down = [\"\"]\n[[services.real_servers]]", 1);
        assert_eq!(refuse(&text).field, "services[0].quorum_down");
    }

    #[test]
    fn defaults_fill_the_timeouts_a_service_does_not_set() {
        let text = format!(
            "[defaults.timeouts]\ntcp_established = 3600\nudp = 30\n{}\n{}[services.timeouts]\nudp = 5\n",
            two_ports(),
            service("wlc", "nat", 8080, &[1])
        );
        let c = from_str(&text, "rvs.toml").unwrap();
        let t = c.services[0].timeouts;
        assert_eq!((t.tcp_established, t.udp, t.tcp_fin), (3600, 5, 120), "default, own, built-in");
        assert_eq!(c.defaults.timeouts.udp, 30);
        let errs = from_str(&base().replacen("[[ports]]", "[defaults.timeouts]\ntcp_fin = 0\n\n[[ports]]", 1), "rvs.toml").unwrap_err().0;
        assert!(errs.iter().any(|e| e.field == "defaults.timeouts.tcp_fin" && e.line == Some(2)), "{errs:?}");
    }

    #[test]
    fn a_real_server_cannot_be_the_balancer() {
        for (addr, what) in [("198.18.0.100", "a VIP"), ("198.18.1.1", "port address")] {
            let text = base().replace("address = \"198.18.1.11\"", &format!("address = \"{addr}\""));
            let e = refuse(&text);
            assert_eq!(e.field, "services[0].real_servers[0].address", "{e}");
            assert!(e.message.contains(what), "{e}");
            assert_eq!(e.line, Some(line_of(&text, &format!("address = \"{addr}\""))), "{e}");
        }
        // The VIP of another service counts too.
        let text = format!(
            "{}\n[[services]]\nvip = \"198.18.0.101\"\nport = 80\nprotocol = \"tcp\"\nforwarding = \"nat\"\n[[services.real_servers]]\naddress = \"198.18.0.100\"\nport = 8080\n",
            base()
        );
        let e = refuse(&text);
        assert_eq!(e.field, "services[1].real_servers[0].address", "{e}");
    }

    #[test]
    fn a_vip_must_be_unicast() {
        for vip in ["255.255.255.255", "0.1.2.3", "240.0.0.1", "224.0.0.18", "::ffff:198.18.0.100", "ff02::12"] {
            let text = base().replace("vip = \"198.18.0.100\"", &format!("vip = \"{vip}\""));
            let e = refuse(&text);
            assert_eq!(e.field, "services[0].vip", "{vip}: {e}");
            assert_eq!(e.line, Some(line_of(&text, "vip = ")), "{e}");
        }
    }

    #[test]
    fn a_health_check_needs_a_kernel_path_to_the_servers() {
        let text = format!("{}[services.health_check]\nkind = \"tcp\"\n", base());
        let e = refuse(&text);
        assert_eq!(e.field, "services[0].health_check", "{e}");
        assert!(e.message.contains("kernel_interface") && e.message.contains("\"server\""), "{e}");
        assert!(e.line.is_some(), "{e}");
        // With the kernel interface on the servers' port, it passes; a
        // command check needs none.
        let with_k = text.replace("\"2001:db8:1::1/64\"]", "\"2001:db8:1::1/64\"]\nkernel_interface = \"rvsk\"");
        from_str(&with_k, "rvs.toml").unwrap();
        from_str(&format!("{}[services.health_check]\nkind = \"command\"\ncommand = [\"true\"]\n", base()), "rvs.toml").unwrap();
        let fb = format!("{}[services.feedback]\nport = 9999\n", base());
        assert_eq!(refuse(&fb).field, "services[0].feedback");
    }

    #[test]
    fn per_server_and_multiple_checks_are_checked_field_by_field() {
        let k = |t: String| t.replace("\"2001:db8:1::1/64\"]", "\"2001:db8:1::1/64\"]\nkernel_interface = \"rvsk\"");
        let good = k(format!(
            "{}[[services.real_servers.health_checks]]\nkind = \"http\"\nalpha = true\n[[services.real_servers.health_checks]]\nkind = \"tcp\"\nport = 22\n",
            base()
        ));
        let cfg = from_str(&good, "rvs.toml").unwrap();
        let (s, r) = (&cfg.services[0], &cfg.services[0].real_servers[0]);
        assert_eq!(s.checks_of(r).iter().map(|h| h.port).collect::<Vec<_>>(), [None, Some(22)]);
        assert!(s.main_check_of(r).is_some_and(|h| h.alpha) && s.is_checked());
        // A later check may not set what belongs to the server.
        let text = good.replace("port = 22\n", "port = 22\nnotify_down = [\"/bin/true\"]\n");
        let e = refuse(&text);
        assert_eq!(e.field, "services[0].real_servers[0].health_checks[1].notify_down", "{e}");
        assert_eq!(e.line, Some(line_of(&text, "notify_down = ")), "{e}");
        // Each check is validated where it is.
        let text = good.replace("port = 22\n", "port = 22\ninterval = 0\n");
        let e = refuse(&text);
        assert_eq!(e.field, "services[0].real_servers[0].health_checks[1].interval", "{e}");
        assert_eq!(e.line, Some(line_of(&text, "interval = 0")), "{e}");
        // The service's further checks: after `health_check`, only checks.
        let text = k(format!(
            "{}[services.health_check]\nkind = \"tcp\"\n[[services.health_checks]]\nkind = \"tcp\"\nport = 22\nalpha = true\n",
            base()
        ));
        let e = refuse(&text);
        assert_eq!(e.field, "services[0].health_checks[0].alpha", "{e}");
        let cfg = from_str(&text.replace("alpha = true\n", ""), "rvs.toml").unwrap();
        let s = &cfg.services[0];
        assert_eq!(s.checks_of(&s.real_servers[0]).len(), 2);
        // Per-server checks need the kernel's path too.
        let text = format!("{}[[services.real_servers.health_checks]]\nkind = \"tcp\"\n", base());
        assert_eq!(refuse(&text).field, "services[0].real_servers[0].health_checks[0]");
    }

    #[test]
    fn a_pair_is_refused_field_by_field() {
        let with_k = base().replace("\"2001:db8::1/64\"]", "\"2001:db8::1/64\"]\nkernel_interface = \"rvsk\"");
        let ok = format!("{with_k}\n[ha]\nport = \"client\"\nvrid = 51\nvirtual_addresses = [\"198.18.1.254\"]\n");
        let c = from_str(&ok, "rvs.toml").unwrap();
        let h = c.ha.unwrap();
        assert_eq!((h.priority, h.advert_interval_ms, h.sync_port, h.sync_id(), h.garp_count), (100, 100, 8848, 51, 5));
        for (text, field) in [
            (format!("{}\n[ha]\nport = \"client\"\nvrid = 51\n", base()), "ha.port"),
            (ok.replace("vrid = 51", "vrid = 0"), "ha.vrid"),
            (ok.replace("vrid = 51", "vrid = 51\nadvert_interval_ms = 105"), "ha.advert_interval_ms"),
            (ok.replace("198.18.1.254", "203.0.113.1"), "ha.virtual_addresses[0]"),
            (ok.replace("198.18.1.254", "198.18.1.1"), "ha.virtual_addresses[0]"),
            (ok.replace("vrid = 51", "vrid = 51\npeers = [\"198.18.0.1\"]"), "ha.peers[0]"),
            (ok.replace("vrid = 51", "vrid = 51\npeers = [\"2001:db8::7\"]"), "ha.peers[0]"),
            (ok.replace("vrid = 51", "vrid = 51\nfamily = \"ipv6\"\npeers = [\"2001:db8::7\"]"), "ha.peers[0]"),
            (ok.replace("vrid = 51", "vrid = 51\nauth_key_file = \"/nonexistent/key\""), "ha.auth_key_file"),
            (ok.replace("forwarding = \"nat\"", "forwarding = \"fullnat\""), "services[0].local_addresses"),
        ] {
            let e = refuse(&text);
            assert_eq!(e.field, field, "{e}");
        }
    }

    #[test]
    fn cluster_services_and_announce_are_refused_field_by_field() {
        let with_k = base().replace("\"2001:db8::1/64\"]", "\"2001:db8::1/64\"]\nkernel_interface = \"rvsk\"");
        let dr = with_k
            .replace("port = 8080", "port = 80")
            .replace("forwarding = \"nat\"", "forwarding = \"dr\"")
            .replace("scheduler = \"wlc\"", "scheduler = \"mh\"");
        let ok = format!("{}\n[announce]\nport = \"client\"\n", dr.replace("forwarding = \"dr\"", "forwarding = \"dr\"\ncluster = true"));
        let c = from_str(&ok, "rvs.toml").unwrap_or_else(|e| panic!("{e}"));
        assert!(c.services[0].cluster);
        assert_eq!(c.announce.as_ref().map(|a| (a.table, a.drain_ms)), Some((100, 2000)));
        for (text, field) in [
            (ok.replace("scheduler = \"mh\"", "scheduler = \"wlc\""), "services[0].cluster"),
            (ok.replace("forwarding = \"dr\"", "forwarding = \"nat\""), "services[0].forwarding"),
            (ok.replace("cluster = true", "cluster = true\npersistence = { timeout = 60 }"), "services[0].cluster"),
            (ok.replace("port = \"client\"\n", "port = \"server\"\n"), "announce.port"),
            (ok.replace("port = \"client\"\n", "port = \"client\"\ntable = 254\n"), "announce.table"),
            (format!("{ok}\n[ha]\nport = \"client\"\nvrid = 51\n"), "announce"),
            (ok.replace("cluster = true", "cluster = true\ndeny_sources = [\"198.18.0.7/24\"]"), "services[0].deny_sources[0]"),
        ] {
            let e = refuse(&text);
            assert_eq!(e.field, field, "{e}");
        }
    }

    #[test]
    fn synproxy_services_are_refused_field_by_field() {
        let ok = base().replace("forwarding = \"nat\"", "forwarding = \"nat\"\nsynproxy = true\nsynproxy_invalid_ack = \"drop\"");
        let c = from_str(&ok, "rvs.toml").unwrap_or_else(|e| panic!("{e}"));
        assert!(c.services[0].synproxy);
        assert_eq!(c.services[0].synproxy_invalid_ack, crate::model::InvalidAck::Drop);
        for (text, field) in [
            (ok.replace("forwarding = \"nat\"", "forwarding = \"dr\""), "services[0].forwarding"),
            (ok.replace("forwarding = \"nat\"", "forwarding = \"tunnel\""), "services[0].forwarding"),
            (ok.replace("synproxy = true", "synproxy = true\nsloppy_tcp = true"), "services[0].synproxy"),
            (ok.replace("synproxy = true", "synproxy = true\nwhen_full = \"stateless\""), "services[0].when_full"),
            (ok.replace("\"drop\"", "\"maybe\""), "services[0].synproxy_invalid_ack"),
        ] {
            let e = refuse(&text);
            assert_eq!(e.field, field, "{e}");
        }
    }

    #[test]
    fn refusals_without_a_line_say_whole_file() {
        let e = refuse("[dataplane]\nworkers = 1\n");
        assert_eq!(e.field, "ports");
        assert!(e.to_string().starts_with("rvs.toml: (whole file): ports:"), "{e}");
    }

    #[test]
    fn invalid_utf8_names_line_and_column() {
        let dir = std::env::temp_dir().join(format!("rvs-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.toml");
        let base = base();
        let mut bytes = base.as_bytes().to_vec();
        let at = base.find("tcp").unwrap();
        bytes.splice(at..at, [0xffu8, 0xfe]);
        std::fs::write(&path, &bytes).unwrap();
        let e = from_file(&path).unwrap_err().0.remove(0);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!((e.line, e.column), (Some(line_of(&base, "protocol = \"tcp\"")), Some(13)), "{e}");
        assert!(e.message.contains("UTF-8"), "{e}");
    }

    #[test]
    fn extra_checks_are_located() {
        let extra = |_: &Config| -> Result<(), ConfigErrors> { Err(ConfigError::new("services[0].port", "too costly").into()) };
        let e = from_str_with(&base(), "rvs.toml", &extra).unwrap_err().0.remove(0);
        assert_eq!((e.field.as_str(), e.line), ("services[0].port", Some(line_of(&base(), "port = 80"))));
    }
}
