//! The rvs configuration: one TOML file, validated before anything starts.
//!
//! * [`model`] is the typed configuration every other crate consumes (and
//!   the control protocol serialises). It holds parsed addresses and enums,
//!   never strings to interpret later.
//! * [`load`] reads a TOML file into the model. Every key keeps its source
//!   span, so a refusal names the file, line, column and field path:
//!   `rvs.toml:14:11: services[0].real_servers[1].address: "198.18.1.x" is not an IP address`.
//! * [`model::Config::validate`] holds the checks that span fields (a VIP
//!   without real servers, duplicate services, a real server unreachable from
//!   every port). It runs for files and for control-socket changes alike.
//! * [`error`]: a refusal with its file, line, column and field.
//! * `fixtures` (feature `fixtures`): the configurations tests share.
#![forbid(unsafe_code)]
pub mod error;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
mod load;
pub mod model;

pub use error::{ConfigError, ConfigErrors};
pub use load::{from_file, from_file_with, from_str, from_str_with, ExtraCheck};
pub use model::*;
