//! One error type for guests: a message and an exit code.

use std::fmt;

/// A guest's error: what went wrong, and the exit code it ends with.
#[derive(Debug)]
pub struct Error {
    message: String,
    code: i32,
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with `message` and exit code 1.
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), code: 1 }
    }

    /// The same error, ending the program with `code` instead.
    pub fn with_code(mut self, code: i32) -> Self {
        self.code = code;
        self
    }

    /// The exit code this error ends the program with.
    pub fn code(&self) -> i32 {
        self.code
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: std::error::Error> From<E> for Error {
    fn from(e: E) -> Self {
        Error::new(e.to_string())
    }
}

/// Adds what was being done to an error: `read("a.txt").context("reading input")?`
/// fails with `reading input: <cause>`.
pub trait Context<T> {
    /// Prefixes the error with `what`.
    fn context(self, what: impl fmt::Display) -> Result<T>;
}

impl<T, E: fmt::Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| Error::new(format!("{what}: {e}")))
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, what: impl fmt::Display) -> Result<T> {
        self.ok_or_else(|| Error::new(what.to_string()))
    }
}

/// Returns early with an [`Error`] built like `format!`.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::Error::new(format!($($arg)*)))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_prefixes_and_codes_stick() {
        let r: Result<u32> = "x".parse::<u32>().context("reading the size");
        assert_eq!(r.unwrap_err().to_string(), "reading the size: invalid digit found in string");
        let e = Error::new("bad").with_code(3);
        assert_eq!(e.code(), 3);
        let none: Option<u8> = None;
        assert_eq!(none.context("no value").unwrap_err().to_string(), "no value");
    }

    fn fails() -> Result<()> {
        bail!("count was {}", 7);
    }

    #[test]
    fn bail_formats() {
        assert_eq!(fails().unwrap_err().to_string(), "count was 7");
    }
}
