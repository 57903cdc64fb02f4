//! Reading the module a person names: binary `.wasm`, or text `.wat`; a
//! core module or a component, either way.

use crate::exit::{CANNOT_RUN, Failure, USAGE};
use std::path::Path;

/// The module's binary bytes. A file that cannot be read is a usage error:
/// the person named it.
pub fn load(path: &Path) -> anyhow::Result<Vec<u8>> {
    let shown = path.display();
    let bytes =
        std::fs::read(path).map_err(|e| Failure::with(USAGE, format!("failed to read module `{shown}`: {e}")))?;
    if bytes.starts_with(grid_core::wasm::MAGIC) {
        return Ok(bytes);
    }
    let named_text = matches!(path.extension().and_then(|e| e.to_str()), Some("wat" | "wast"));
    let not_binary =
        || Failure::with(CANNOT_RUN, format!("invalid module `{shown}`: not a WebAssembly binary (bad magic number)"));
    if !named_text && std::str::from_utf8(&bytes).is_err() {
        return Err(not_binary());
    }
    wat::parse_bytes(&bytes).map(|b| b.into_owned()).map_err(|e| {
        // Any text is tried as WAT, but a file not named as text that is
        // not WAT either is most likely not WebAssembly at all.
        if !named_text && !bytes.trim_ascii_start().starts_with(b"(") {
            return not_binary();
        }
        let why = e.to_string().lines().next().unwrap_or_default().to_owned();
        Failure::with(CANNOT_RUN, format!("invalid module `{shown}`: {why}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use grid_core::wasm::{Kind, kind};

    fn load_file(name: &str, contents: &[u8]) -> anyhow::Result<Vec<u8>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        load(&path)
    }

    #[test]
    fn reads_modules_and_components_binary_or_text() {
        let module = load_file("m.wat", br#"(module (func (export "_start")))"#).unwrap();
        assert_eq!(kind(&module), Some(Kind::Module));
        let component = load_file("c.wat", b"(component)").unwrap();
        assert_eq!(kind(&component), Some(Kind::Component));
        assert_eq!(load_file("c.wasm", &component).unwrap(), component);
    }

    #[test]
    fn garbage_is_an_invalid_module() {
        for (name, contents) in [
            ("x.wasm", &[0xff, 0xfe, 0x00, 0x01][..]),
            ("notes.wasm", b"#!/bin/sh\necho not wasm\n"),
            ("empty.wasm", b""),
        ] {
            let err = load_file(name, contents).unwrap_err();
            assert!(err.to_string().ends_with("not a WebAssembly binary (bad magic number)"), "{name}: {err}");
        }
        // Text that looks like WAT, or is named so, gets the parser's reason.
        let err = load_file("broken.wasm", b"(module (func $f (bogus)))").unwrap_err();
        assert!(err.to_string().contains("unknown operator"), "{err}");
        let err = load_file("notes.wat", b"hello").unwrap_err();
        assert!(err.to_string().contains("expected `(`"), "{err}");
    }
}
