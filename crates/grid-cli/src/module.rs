//! Reading the module a person names: binary `.wasm`, or text `.wat`.

use crate::exit::{CANNOT_RUN, Failure, GRID_ERROR};
use std::path::Path;

/// The module's binary bytes.
pub fn load(path: &Path) -> anyhow::Result<Vec<u8>> {
    let shown = path.display();
    let bytes =
        std::fs::read(path).map_err(|e| Failure::with(GRID_ERROR, format!("failed to read module `{shown}`: {e}")))?;
    if bytes.starts_with(b"\0asm") {
        return Ok(bytes);
    }
    let is_text = matches!(path.extension().and_then(|e| e.to_str()), Some("wat" | "wast"))
        || std::str::from_utf8(&bytes).is_ok();
    if !is_text {
        return Err(Failure::with(
            CANNOT_RUN,
            format!("invalid module `{shown}`: not a WebAssembly binary (bad magic number)"),
        ));
    }
    wat::parse_bytes(&bytes).map(|b| b.into_owned()).map_err(|e| {
        let why = e.to_string().lines().next().unwrap_or_default().to_owned();
        Failure::with(CANNOT_RUN, format!("invalid module `{shown}`: {why}"))
    })
}
