//! The control protocol: one JSON object per line, in both directions.
//!
//! Request:  `{"v":1,"id":7,"cmd":"stats","args":{...}}`
//! Response: `{"v":1,"id":7,"ok":true,"result":{...}}`
//!       or: `{"v":1,"id":7,"ok":false,"error":{"code":"invalid","message":"...","field":"..."}}`
//!
//! `v` is the protocol version (1); `id` is echoed back unchanged so a client
//! may pipeline requests. A request line may be at most [`MAX_LINE`] bytes.
//! The commands are documented in the README ("Control protocol").
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Protocol version spoken by this build.
pub const VERSION: u32 = 1;
/// Longest request line accepted, in bytes.
pub const MAX_LINE: usize = 64 * 1024;

/// A request.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Protocol version.
    pub v: u32,
    /// Opaque request id, echoed in the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    /// Command name.
    pub cmd: String,
    /// Command arguments.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub args: Value,
}

/// Error codes.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The line is not JSON.
    BadJson,
    /// JSON, but not a valid request (missing or unknown fields, bad types).
    BadRequest,
    /// Unsupported protocol version.
    UnsupportedVersion,
    /// No such command.
    UnknownCommand,
    /// The line exceeds [`MAX_LINE`].
    TooLarge,
    /// The request was not completed in time.
    Timeout,
    /// The change would make the configuration invalid.
    Invalid,
    /// The named service or real server does not exist.
    NotFound,
    /// It already exists.
    Exists,
    /// The peer is not allowed.
    Forbidden,
    /// Too many connections (of this user, or in all): try again later.
    Busy,
    /// Something failed inside rvsd.
    Internal,
}

/// An error reply body.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ErrorBody {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// Human-readable message.
    pub message: String,
    /// The offending field, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// A response.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Response {
    /// Protocol version.
    pub v: u32,
    /// The request's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    /// Success.
    pub ok: bool,
    /// The result on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The error on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

impl Response {
    /// A success.
    pub fn ok(id: Option<Value>, result: Value) -> Response {
        Response { v: VERSION, id, ok: true, result: Some(result), error: None }
    }

    /// A failure.
    pub fn err(id: Option<Value>, code: ErrorCode, message: impl Into<String>, field: Option<String>) -> Response {
        Response { v: VERSION, id, ok: false, result: None, error: Some(ErrorBody { code, message: message.into(), field }) }
    }
}

/// A command failure, before it becomes a [`Response`].
#[derive(Clone, Debug, PartialEq)]
pub struct CmdError {
    /// Code.
    pub code: ErrorCode,
    /// Message.
    pub message: String,
    /// Field.
    pub field: Option<String>,
}

impl CmdError {
    /// An error with no field.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> CmdError {
        CmdError { code, message: message.into(), field: None }
    }

    /// An error about a field.
    pub fn field(code: ErrorCode, field: impl Into<String>, message: impl Into<String>) -> CmdError {
        CmdError { code, message: message.into(), field: Some(field.into()) }
    }
}

impl From<config::ConfigErrors> for CmdError {
    fn from(e: config::ConfigErrors) -> Self {
        let field = e.first().map(|f| f.field.clone()).filter(|f| !f.is_empty());
        CmdError { code: ErrorCode::Invalid, message: e.to_string(), field }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrips() {
        let r: Request = serde_json::from_str(r#"{"v":1,"id":"a","cmd":"stats"}"#).unwrap();
        assert_eq!(r.cmd, "stats");
        assert!(r.args.is_null());
        assert!(serde_json::from_str::<Request>(r#"{"v":1,"cmd":"x","bogus":1}"#).is_err());
        let s = serde_json::to_string(&Response::err(None, ErrorCode::UnknownCommand, "no", None)).unwrap();
        assert_eq!(s, r#"{"v":1,"ok":false,"error":{"code":"unknown_command","message":"no"}}"#);
    }
}
