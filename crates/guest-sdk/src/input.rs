//! Standard input: all at once, as text, or line by line.

use crate::error::{Context, Result};
use std::io::{BufRead, Read};

/// All of stdin as bytes.
pub fn stdin_bytes() -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    std::io::stdin().read_to_end(&mut buf).context("reading stdin")?;
    Ok(buf)
}

/// All of stdin as UTF-8 text.
pub fn stdin_string() -> Result<String> {
    let mut buf = String::new();
    std::io::stdin().read_to_string(&mut buf).context("reading stdin")?;
    Ok(buf)
}

/// Stdin line by line, without line endings.
pub fn stdin_lines() -> impl Iterator<Item = Result<String>> {
    std::io::stdin().lock().lines().map(|l| l.context("reading stdin"))
}
