//! Reading the module a person names: binary `.wasm`, or text `.wat`; a
//! core module or a component, either way.

use crate::exit::{CANNOT_RUN, Failure, USAGE};
use grid_core::ModuleHash;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A module a person named, ready to hash and send: a binary file, read as
/// it goes and never whole, or text compiled to its binary in memory.
#[derive(Debug, Clone)]
pub enum Module {
    /// A binary file.
    File { path: PathBuf },
    /// Binary bytes compiled from text.
    Bytes(Arc<Vec<u8>>),
}

/// How much of a file is read at a time.
pub const CHUNK: usize = 1 << 20;

impl Module {
    /// Its hash.
    pub fn hash(&self) -> anyhow::Result<ModuleHash> {
        self.measure().map(|(hash, _)| hash)
    }

    /// Its hash and size as read through once: what an upload declares,
    /// and sends no more than.
    pub fn measure(&self) -> anyhow::Result<(ModuleHash, u64)> {
        match self {
            Module::Bytes(bytes) => Ok((ModuleHash::of(bytes), bytes.len() as u64)),
            Module::File { path } => {
                let mut file = std::fs::File::open(path).map_err(|e| read_failure(path, &e))?;
                let mut hasher = grid_core::hash::Hasher::default();
                let mut buf = vec![0; CHUNK];
                let mut size = 0;
                loop {
                    match file.read(&mut buf) {
                        Ok(0) => return Ok((hasher.finish(), size)),
                        Ok(n) => {
                            hasher.update(&buf[..n]);
                            size += n as u64;
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(read_failure(path, &e)),
                    }
                }
            }
        }
    }
}

fn read_failure(path: &Path, e: &std::io::Error) -> anyhow::Error {
    Failure::with(USAGE, format!("failed to read module `{}`: {e}", path.display()))
}

/// The module at `path`. A file that cannot be read is a usage error: the
/// person named it.
pub fn load(path: &Path) -> anyhow::Result<Module> {
    let shown = path.display();
    let mut file = std::fs::File::open(path).map_err(|e| read_failure(path, &e))?;
    let mut head = Vec::with_capacity(4);
    (&mut file).take(4).read_to_end(&mut head).map_err(|e| read_failure(path, &e))?;
    if head.starts_with(grid_core::wasm::MAGIC) {
        return Ok(Module::File { path: path.to_owned() });
    }
    // Text: read whole, as the parser needs it.
    let mut bytes = head;
    file.read_to_end(&mut bytes).map_err(|e| read_failure(path, &e))?;
    let named_text = matches!(path.extension().and_then(|e| e.to_str()), Some("wat" | "wast"));
    let not_binary =
        || Failure::with(CANNOT_RUN, format!("invalid module `{shown}`: not a WebAssembly binary (bad magic number)"));
    if !named_text && std::str::from_utf8(&bytes).is_err() {
        return Err(not_binary());
    }
    let binary = wat::parse_bytes(&bytes).map(|b| b.into_owned()).map_err(|e| {
        // Any text is tried as WAT, but a file not named as text that is
        // not WAT either is most likely not WebAssembly at all.
        if !named_text && !bytes.trim_ascii_start().starts_with(b"(") {
            return not_binary();
        }
        let why = e.to_string().lines().next().unwrap_or_default().to_owned();
        Failure::with(CANNOT_RUN, format!("invalid module `{shown}`: {why}"))
    })?;
    Ok(Module::Bytes(Arc::new(binary)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use grid_core::wasm::{Kind, kind};

    fn load_file(name: &str, contents: &[u8]) -> anyhow::Result<Vec<u8>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        let module = load(&path)?;
        let (hash, size) = module.measure()?;
        let bytes = match module {
            Module::File { path } => std::fs::read(path).unwrap(),
            Module::Bytes(bytes) => bytes.to_vec(),
        };
        assert_eq!((hash, size), (ModuleHash::of(&bytes), bytes.len() as u64));
        Ok(bytes)
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
