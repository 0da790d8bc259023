//! rvsd's log, behind the `log` facade: one line per event on stderr.
//!
//! Under systemd (`$JOURNAL_STREAM` names rvsd's stderr) each line starts
//! with the syslog priority `<N>` that journald turns into the entry's
//! level (sd-daemon(3)) and carries no timestamp (journald adds its own);
//! otherwise a line is an RFC 3339 UTC timestamp, the level and the
//! message. `[daemon] log_level` (error, warn, info, debug) sets what is
//! written. Workers never log: the per-packet path has no logging.
use std::io::Write;

/// The logger (installed once by [`init`]).
#[derive(Debug)]
struct Logger {
    journald: bool,
}

/// True when stderr is the journal stream systemd connected.
fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(want) = std::env::var_os("JOURNAL_STREAM") else { return false };
    let Ok(m) = std::fs::metadata("/proc/self/fd/2") else { return false };
    want.to_string_lossy() == format!("{}:{}", m.dev(), m.ino())
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for a time since the epoch (UTC).
pub fn rfc3339(since_epoch: std::time::Duration) -> String {
    let secs = since_epoch.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", rest / 3600, rest % 3600 / 60, rest % 60, since_epoch.subsec_millis())
}

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &log::Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let line = if self.journald {
            let prio = match r.level() {
                log::Level::Error => 3,
                log::Level::Warn => 4,
                log::Level::Info => 6,
                log::Level::Debug | log::Level::Trace => 7,
            };
            format!("<{prio}>rvsd: {}\n", r.args())
        } else {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            format!("{} {:<5} rvsd: {}\n", rfc3339(now), r.level(), r.args())
        };
        // One write per line, so lines of different threads never mix.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// The `log` level of a configured one.
pub fn level_of(l: config::LogLevel) -> log::LevelFilter {
    match l {
        config::LogLevel::Error => log::LevelFilter::Error,
        config::LogLevel::Warn => log::LevelFilter::Warn,
        config::LogLevel::Info => log::LevelFilter::Info,
        config::LogLevel::Debug => log::LevelFilter::Debug,
    }
}

/// Installs the logger at `level` (once; later calls only change the
/// level).
pub fn init(level: log::LevelFilter) {
    static LOGGER: std::sync::OnceLock<Logger> = std::sync::OnceLock::new();
    let logger = LOGGER.get_or_init(|| Logger { journald: stderr_is_journal() });
    let _ = log::set_logger(logger);
    log::set_max_level(level);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(Duration::from_millis(0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(Duration::from_millis(951_782_400_123)), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(Duration::from_secs(1_796_194_200)), "2026-12-02T06:50:00.000Z");
    }
}
