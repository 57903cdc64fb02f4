//! The module store: module bytes on disk, keyed by their sha256.

use crate::error::{MasterError, Result};
use grid_core::ModuleHash;
use grid_core::hash::Hasher;
use grid_core::wasm::MAGIC;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Modules on disk under `DIR/<hash>.wasm`.
#[derive(Debug)]
pub struct ModuleStore {
    dir: PathBuf,
    max_size: u64,
    /// Hashes seen on disk: modules are never removed, so a submission of a
    /// known module costs no file system call.
    known: dashmap::DashSet<ModuleHash>,
}

/// A module arriving in chunks; nothing is visible in the store until
/// [`Upload::finish`] has checked the hash.
pub struct Upload<'a> {
    store: &'a ModuleStore,
    /// The hash the uploader claims; `None` takes whatever arrives.
    expected: Option<ModuleHash>,
    file: tempfile::NamedTempFile,
    hasher: Hasher,
    size: u64,
    head: Vec<u8>,
}

impl ModuleStore {
    /// Opens (creating it if needed) the store in `dir`.
    pub fn open(dir: &Path, max_size: u64) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(MasterError::io(dir))?;
        Ok(Self { dir: dir.to_owned(), max_size, known: dashmap::DashSet::new() })
    }

    /// The largest module the store accepts.
    pub fn max_size(&self) -> u64 {
        self.max_size
    }

    fn path(&self, hash: &ModuleHash) -> PathBuf {
        self.dir.join(format!("{hash}.wasm"))
    }

    /// Whether the store holds `hash`.
    pub fn contains(&self, hash: &ModuleHash) -> bool {
        if self.known.contains(hash) {
            return true;
        }
        let there = self.path(hash).is_file();
        if there {
            self.known.insert(hash.clone());
        }
        there
    }

    /// Reads a module's bytes.
    pub async fn read(&self, hash: &ModuleHash) -> Result<Vec<u8>> {
        let path = self.path(hash);
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(MasterError::ModuleNotFound(hash.clone())),
            Err(e) => Err(MasterError::Io { path, source: e }),
        }
    }

    /// Opens a module's file, to be read a chunk at a time.
    pub async fn open_module(&self, hash: &ModuleHash) -> Result<tokio::fs::File> {
        let path = self.path(hash);
        match tokio::fs::File::open(&path).await {
            Ok(file) => Ok(file),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(MasterError::ModuleNotFound(hash.clone())),
            Err(e) => Err(MasterError::Io { path, source: e }),
        }
    }

    /// Starts an upload of a module that claims to be `expected`, of
    /// `declared_size` bytes.
    pub fn begin(&self, expected: ModuleHash, declared_size: u64) -> Result<Upload<'_>> {
        if declared_size > self.max_size {
            return Err(MasterError::ModuleTooLarge { size: declared_size, limit: self.max_size });
        }
        self.start(Some(expected))
    }

    /// Starts an upload that names no hash: the module is stored under the
    /// hash of what arrives (the HTTP API's `PUT /api/v1/modules`).
    pub fn begin_any(&self) -> Result<Upload<'_>> {
        self.start(None)
    }

    fn start(&self, expected: Option<ModuleHash>) -> Result<Upload<'_>> {
        let file = tempfile::NamedTempFile::new_in(&self.dir).map_err(MasterError::io(&self.dir))?;
        Ok(Upload { store: self, expected, file, hasher: Hasher::default(), size: 0, head: Vec::new() })
    }
}

impl Upload<'_> {
    /// Appends a chunk.
    pub fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.size += chunk.len() as u64;
        if self.size > self.store.max_size {
            return Err(MasterError::ModuleTooLarge { size: self.size, limit: self.store.max_size });
        }
        if self.head.len() < 4 {
            let take = (4 - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        self.hasher.update(chunk);
        self.file.write_all(chunk).map_err(MasterError::io(self.file.path()))
    }

    /// Checks the hash and the wasm magic (which core modules and components
    /// share), then makes the module visible.
    pub fn finish(self) -> Result<(ModuleHash, u64)> {
        let actual = self.hasher.finish();
        if let Some(expected) = self.expected.filter(|e| *e != actual) {
            return Err(
                grid_core::HashError::Mismatch { expected: expected.to_string(), actual: actual.to_string() }.into()
            );
        }
        if self.head != MAGIC {
            return Err(MasterError::InvalidModule("not a WebAssembly binary (bad magic number)".into()));
        }
        let dest = self.store.path(&actual);
        self.file.persist(&dest).map_err(|e| MasterError::Io { path: dest, source: e.error })?;
        Ok((actual, self.size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODULE: &[u8] = b"\0asm\x01\0\0\0";
    const COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

    #[test]
    fn upload_verifies_hash_and_stores() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModuleStore::open(dir.path(), 1024).unwrap();
        let hash = ModuleHash::of(MODULE);
        assert!(!store.contains(&hash));
        let mut up = store.begin(hash.clone(), MODULE.len() as u64).unwrap();
        up.write(&MODULE[..3]).unwrap();
        up.write(&MODULE[3..]).unwrap();
        assert_eq!(up.finish().unwrap(), (hash.clone(), 8));
        assert!(store.contains(&hash));
    }

    #[test]
    fn upload_accepts_a_component() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModuleStore::open(dir.path(), 1024).unwrap();
        let hash = ModuleHash::of(COMPONENT);
        let mut up = store.begin(hash.clone(), COMPONENT.len() as u64).unwrap();
        up.write(COMPONENT).unwrap();
        assert_eq!(up.finish().unwrap(), (hash.clone(), 8));
        assert!(store.contains(&hash));
    }

    #[test]
    fn upload_refuses_wrong_hash_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModuleStore::open(dir.path(), 1024).unwrap();
        let claimed = ModuleHash::of(b"something else");
        let mut up = store.begin(claimed.clone(), 8).unwrap();
        up.write(MODULE).unwrap();
        let err = up.finish().unwrap_err();
        assert!(err.to_string().contains("hash mismatch"), "{err}");
        assert!(!store.contains(&claimed));
        assert!(!store.contains(&ModuleHash::of(MODULE)));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "temp file left behind");
    }

    #[test]
    fn upload_refuses_oversize_and_non_wasm() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModuleStore::open(dir.path(), 4).unwrap();
        assert!(matches!(store.begin(ModuleHash::of(MODULE), 8), Err(MasterError::ModuleTooLarge { .. })));
        let mut up = store.begin(ModuleHash::of(MODULE), 4).unwrap();
        assert!(matches!(up.write(MODULE), Err(MasterError::ModuleTooLarge { .. })));

        let store = ModuleStore::open(dir.path(), 1024).unwrap();
        let text = b"hello world";
        let mut up = store.begin(ModuleHash::of(text), 11).unwrap();
        up.write(text).unwrap();
        assert!(up.finish().unwrap_err().to_string().contains("not a WebAssembly binary"));
    }
}
