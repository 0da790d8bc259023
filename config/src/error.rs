//! Configuration errors that say where: file, line, column and field path.
use std::fmt;

/// One refusal: which field is wrong, where it is, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, when the configuration came from one.
    pub file: Option<String>,
    /// 1-based line of the offending value, when known.
    pub line: Option<usize>,
    /// 1-based column.
    pub column: Option<usize>,
    /// Field path, e.g. `services[0].real_servers[1].address`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    /// An error about `field` with no source position (control requests).
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError { file: None, line: None, column: None, field: field.into(), message: message.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}:")?;
            // A refusal that no single line holds (no `[[ports]]` at all, a
            // file that cannot be read) is about the whole file: say so.
            if self.line.is_none() {
                write!(f, " (whole file):")?;
            }
        }
        if let Some(line) = self.line {
            write!(f, "{line}:")?;
            if let Some(col) = self.column {
                write!(f, "{col}:")?;
            }
        }
        if self.file.is_some() || self.line.is_some() {
            write!(f, " ")?;
        }
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every refusal found in one configuration (at least one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The first error (there always is one).
    pub fn first(&self) -> Option<&ConfigError> {
        self.0.first()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_and_without_position() {
        let mut e = ConfigError::new("services[0].vip", "bad");
        assert_eq!(e.to_string(), "services[0].vip: bad");
        e.file = Some("rvs.toml".into());
        e.line = Some(3);
        e.column = Some(7);
        assert_eq!(e.to_string(), "rvs.toml:3:7: services[0].vip: bad");
        e.line = None;
        e.field = "ports".into();
        assert_eq!(e.to_string(), "rvs.toml: (whole file): ports: bad");
    }
}
