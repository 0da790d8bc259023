//! The commands the control socket executes.
//!
//! | command | args | result |
//! |---------|------|--------|
//! | `ping` | - | `"pong"` |
//! | `version` | - | rvs, protocol and DPDK versions |
//! | `stats` | - | the statistics [`Report`](crate::report::Report) |
//! | `config.get` | - | the running configuration (as the TOML model, in JSON) |
//! | `reload` | - | re-reads the configuration file and applies the difference |
//! | `zero` | - | zeroes service and real-server counters (`ipvsadm -Z`) |
use crate::manager::Manager;
use crate::proto::{CmdError, ErrorCode};
use serde_json::{json, Value};

/// Executes `cmd` with `args` against the management state.
pub fn execute(m: &mut Manager, cmd: &str, args: &Value) -> Result<Value, CmdError> {
    let no_args = |args: &Value| -> Result<(), CmdError> {
        if args.is_null() || args.as_object().is_some_and(serde_json::Map::is_empty) {
            Ok(())
        } else {
            Err(CmdError::field(ErrorCode::BadRequest, "args", format!("{cmd} takes no arguments")))
        }
    };
    match cmd {
        "ping" => {
            no_args(args)?;
            Ok(json!("pong"))
        }
        "version" => {
            no_args(args)?;
            Ok(json!({
                "rvs": env!("CARGO_PKG_VERSION"),
                "protocol": crate::proto::VERSION,
                "dpdk": dataplane::dpdk::Eal::version(),
                "uptime_s": m.uptime(),
            }))
        }
        "stats" => {
            no_args(args)?;
            serde_json::to_value(m.report()).map_err(|e| CmdError::new(ErrorCode::Internal, e.to_string()))
        }
        "config.get" => {
            no_args(args)?;
            serde_json::to_value(m.config()).map_err(|e| CmdError::new(ErrorCode::Internal, e.to_string()))
        }
        "reload" => {
            no_args(args)?;
            m.reload()?;
            Ok(json!({"generation": m.shared().snapshot.load().generation}))
        }
        "zero" => {
            no_args(args)?;
            m.zero();
            Ok(json!({}))
        }
        other => Err(CmdError::field(ErrorCode::UnknownCommand, "cmd", format!("unknown command {other:?}"))),
    }
}
