//! What a WebAssembly binary is, read from its 8-byte header: the magic
//! `\0asm`, a 16-bit version and a 16-bit layer. Layer 0 is a core module
//! (`wasm32-wasip1`), layer 1 a component (`wasm32-wasip2`).

/// The first bytes of every WebAssembly binary, modules and components.
pub const MAGIC: &[u8; 4] = b"\0asm";

/// The two kinds of WebAssembly binary the grid runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A core module, run through its `_start` with WASI preview 1.
    Module,
    /// A component, run through `wasi:cli/run` with WASI preview 2.
    Component,
}

impl Kind {
    /// `module` or `component`, as messages and logs say it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Module => "module",
            Kind::Component => "component",
        }
    }
}

/// The kind `bytes` declare in their header; `None` when they do not start
/// with a WebAssembly header of a known layer. The version is left to the
/// compiler, which names the one it expected.
pub fn kind(bytes: &[u8]) -> Option<Kind> {
    let header = bytes.get(..8)?;
    if !header.starts_with(MAGIC) {
        return None;
    }
    match u16::from_le_bytes([header[6], header[7]]) {
        0 => Some(Kind::Module),
        1 => Some(Kind::Component),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_layer() {
        assert_eq!(kind(b"\0asm\x01\0\0\0"), Some(Kind::Module));
        assert_eq!(kind(b"\0asm\x0d\0\x01\0rest"), Some(Kind::Component));
        assert_eq!(kind(b"\0asm\x01\0\x02\0"), None);
        assert_eq!(kind(b"\0asm\x01\0"), None);
        assert_eq!(kind(b"hello world"), None);
        assert_eq!(kind(b""), None);
    }
}
