//! Manual pages and shell completions shipped by the Debian package
//! (`scripts/package.sh`), generated from the sources that define them so
//! they cannot drift:
//!
//! * `rvsd(8)`: the option list from rvsd's own clap command
//!   ([`clap_mangen`]), followed by the sections clap knows nothing of
//!   (signals, systemd, exit status, files).
//! * `rvs.toml(5)`: rendered from `rvs.example.toml`, the file that
//!   documents every field (its comment blocks become paragraphs, every
//!   field, commented out or not, a tagged entry with its example value).
//! * bash and zsh completions for rvsd ([`clap_complete`]).
//!
//! `rvsadm(8)` and rvsadm's completions are written by hand
//! (`mgmt/man/rvsadm.8`, `mgmt/completions/`): its command line is
//! ipvsadm's, parsed by hand, not by clap.

/// The annotated example configuration (also installed as
/// `/usr/share/doc/rvs/rvs.example.toml`).
pub const EXAMPLE: &str = include_str!("../../rvs.example.toml");

/// Escapes text for roff: backslashes, and a leading `.` or `'` (which
/// would start a request).
fn roff(s: &str) -> String {
    let s = s.replace('\\', "\\e");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

/// `key = value` (with any trailing comment) when `line` is a TOML
/// assignment, checked by parsing it: prose that merely contains " = " is
/// not one.
fn assignment(line: &str) -> Option<(String, String, String)> {
    let t = line.trim();
    let (key, _) = t.split_once(" = ")?;
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        return None;
    }
    let parsed: toml::Table = toml::from_str(t).ok()?;
    let value = parsed.get(key)?.to_string();
    // The trailing comment, if any: after the value's own text.
    let rest = t[key.len() + 3..].trim_start();
    let value_text = value.as_str();
    let comment = rest
        .find(" #")
        .filter(|&i| toml::from_str::<toml::Table>(&format!("{key} = {}", &rest[..i])).is_ok())
        .map(|i| rest[i + 2..].trim().to_string())
        .unwrap_or_default();
    Some((key.to_string(), value_text.to_string(), comment))
}

/// A table header (`[daemon]`, `[[services.real_servers]]`).
fn header(line: &str) -> Option<&str> {
    let t = line.trim();
    (t.starts_with('[') && t.ends_with(']') && !t.contains(' ') && !t.contains('=')).then_some(t)
}

/// rvs.toml(5), rendered from the annotated example.
pub fn toml_man(version: &str) -> String {
    let mut out = format!(
        ".TH RVS.TOML 5 \"\" \"rvs {version}\" \"File Formats Manual\"\n.SH NAME\nrvs.toml \\- configuration file of rvsd\n\
         .SH SYNOPSIS\n/etc/rvs/rvs.toml\n.SH DESCRIPTION\n"
    );
    let mut lines = EXAMPLE.lines().peekable();
    // The opening comment block is the description.
    while let Some(l) = lines.next_if(|l| l.starts_with('#')) {
        let text = l.trim_start_matches('#').trim();
        out.push_str(&if text.is_empty() { ".PP\n".to_string() } else { format!("{}\n", roff(text)) });
    }
    out.push_str(
        ".SH FIELDS\nEach entry gives a field with the example's value; a field shown commented out in the example is optional.\n",
    );
    let mut para: Vec<String> = Vec::new();
    let flush = |para: &mut Vec<String>, out: &mut String| {
        if !para.is_empty() {
            out.push_str(".PP\n");
            for p in para.drain(..) {
                out.push_str(&roff(&p));
                out.push('\n');
            }
        }
    };
    for l in lines {
        let t = l.trim();
        let uncommented = t.trim_start_matches('#').trim();
        if t.is_empty() {
            flush(&mut para, &mut out);
            continue;
        }
        if let Some(h) = header(uncommented) {
            flush(&mut para, &mut out);
            out.push_str(&format!(".SS {}\n", roff(h)));
            continue;
        }
        if let Some(title) = uncommented.strip_prefix("---") {
            flush(&mut para, &mut out);
            out.push_str(&format!(".SS {}\n", roff(title.trim_matches(|c| c == '-' || c == ' '))));
            continue;
        }
        if let Some((key, value, comment)) = assignment(uncommented) {
            flush(&mut para, &mut out);
            let optional = if t.starts_with('#') { " (optional)" } else { "" };
            out.push_str(&format!(".TP\n\\fB{key}\\fR = {}{optional}\n", roff(&value)));
            if !comment.is_empty() {
                out.push_str(&format!("{}\n", roff(&comment)));
            }
            continue;
        }
        if t.starts_with('#') {
            para.push(uncommented.to_string());
        }
    }
    flush(&mut para, &mut out);
    out.push_str(
        ".SH FILES\n/etc/rvs/rvs.toml\n.br\n/usr/share/doc/rvs/rvs.example.toml (this page's source, every field annotated)\n\
         .SH SEE ALSO\n\\fBrvsd\\fR(8), \\fBrvsadm\\fR(8)\n",
    );
    out
}

/// What clap cannot say about rvsd.
const RVSD_EXTRA: &str = r#".SH SIGNALS
.TP
\fBSIGHUP\fR
Re-read the configuration file and apply the difference. An invalid file is refused (logged with file, line and field) and the running configuration stays.
.TP
\fBSIGTERM\fR, \fBSIGINT\fR
Stop: withdraw announced VIPs (and forward \fIdrain_ms\fR more), send a pair's priority 0 advert when master, stop the workers, print the final counters.
.SH SYSTEMD
Under systemd (\fBrvsd.service\fR, \fIType=notify\fR) rvsd sends READY=1 once its ports are up and its workers forward, RELOADING=1 and READY=1 around a SIGHUP reload, STOPPING=1 on shutdown, and, when the unit sets \fIWatchdogSec\fR, WATCHDOG=1 at half that period only while every worker makes progress: a stuck worker gets the service restarted. Logs then go to journald with priorities; otherwise to standard error with UTC timestamps (level: \fIlog_level\fR in rvs.toml).
.PP
Hugepages are reserved before rvsd starts by \fBrvs-hugepages.service\fR from \fI/etc/default/rvs\fR.
.SH EXIT STATUS
.TP
0
Stopped cleanly.
.TP
2
The configuration was refused (each error printed as file:line:column: field: message), or the control socket could not be served.
.TP
3
DPDK failed to start (EAL, ports or memory).
.SH ENVIRONMENT
.TP
\fBNOTIFY_SOCKET\fR, \fBWATCHDOG_USEC\fR, \fBWATCHDOG_PID\fR
Set by systemd: the notify protocol above. Without \fBNOTIFY_SOCKET\fR nothing is sent.
.SH FILES
.TP
/etc/rvs/rvs.toml
The configuration (\fBrvs.toml\fR(5)).
.TP
/run/rvs/rvsd.sock
The control socket \fBrvsadm\fR(8) talks to (default \fIcontrol_socket\fR).
.TP
/etc/default/rvs
Hugepages reserved at boot.
.SH SEE ALSO
\fBrvsadm\fR(8), \fBrvs.toml\fR(5), \fBsystemd.service\fR(5), \fBipvsadm\fR(8)
"#;

/// rvsd(8): `cmd` is rvsd's clap command.
pub fn rvsd_man(cmd: clap::Command) -> std::io::Result<String> {
    let man = clap_mangen::Man::new(cmd).section("8").manual("System Manager's Manual");
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    out.extend_from_slice(RVSD_EXTRA.as_bytes());
    man.render_version_section(&mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// A completion script for `shell` ("bash" or "zsh") of rvsd's command.
pub fn completion(mut cmd: clap::Command, shell: &str) -> Option<String> {
    let shell = match shell {
        "bash" => clap_complete::Shell::Bash,
        "zsh" => clap_complete::Shell::Zsh,
        _ => return None,
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "rvsd", &mut out);
    Some(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_of_the_example_is_in_rvs_toml_5() {
        let page = toml_man("0.0");
        let mut fields = 0;
        for l in EXAMPLE.lines() {
            let t = l.trim().trim_start_matches('#').trim();
            if let Some((key, _, _)) = assignment(t) {
                fields += 1;
                assert!(page.contains(&format!("\\fB{key}\\fR = ")), "{key} missing from rvs.toml(5)");
            }
        }
        assert!(fields > 100, "{fields} fields found in the example");
        for section in ["[daemon]", "[dataplane]", "[[ports]]", "[[services]]", "[services.health_check]", "[ha]", "[announce]"] {
            assert!(page.contains(&format!(".SS {section}\n")), "{section} missing");
        }
        // No line starts a roff request by accident.
        for l in page.lines() {
            if let Some(r) = l.strip_prefix('.') {
                let req = r.split(' ').next().unwrap_or_default();
                assert!(["TH", "SH", "SS", "PP", "TP", "br"].contains(&req), "stray request: {l:?}");
            }
        }
    }

    #[test]
    fn prose_is_not_taken_for_a_field() {
        assert_eq!(assignment("quiescent = yes); \"remove\" takes it out"), None);
        assert_eq!(assignment("with socket_mode = \"0660\"."), None);
        assert_eq!(
            assignment("vrid = 51                    # virtual router id"),
            Some(("vrid".into(), "51".into(), "virtual router id".into()))
        );
        assert_eq!(assignment("send = \"PING\\r\\n\"  # what to send").map(|a| a.2), Some("what to send".into()));
        assert_eq!(
            assignment("mac = \"02:00:00:00:00:01\"   # override the device's MAC").map(|a| a.2),
            Some("override the device's MAC".into())
        );
    }
}
