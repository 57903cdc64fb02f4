//! Module identity: the lowercase hex sha256 of a module's bytes.

use sha2::{Digest, Sha256};
use std::fmt;

/// A module's content address: the lowercase hex sha256 of its bytes.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModuleHash(String);

/// Why a string or a byte buffer is not the module it claims to be.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HashError {
    #[error("`{0}` is not a module hash: expected 64 lowercase hex digits")]
    Malformed(String),
    #[error("hash mismatch: expected `{expected}`, the bytes hash to `{actual}`")]
    Mismatch { expected: String, actual: String },
}

impl ModuleHash {
    /// The hash of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(hex::encode(Sha256::digest(bytes)))
    }

    /// Parses a hash as written on the wire or by a person.
    pub fn parse(s: &str) -> Result<Self, HashError> {
        let ok = s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok { Ok(Self(s.to_owned())) } else { Err(HashError::Malformed(s.to_owned())) }
    }

    /// Checks that `bytes` hash to `self`.
    pub fn verify(&self, bytes: &[u8]) -> Result<(), HashError> {
        let actual = Self::of(bytes);
        if actual == *self { Ok(()) } else { Err(HashError::Mismatch { expected: self.0.clone(), actual: actual.0 }) }
    }

    /// The full hex string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 hex digits, for people.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

/// A streaming hasher for modules that arrive in chunks.
#[derive(Default)]
pub struct Hasher(Sha256);

impl Hasher {
    /// Feeds more bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The hash of everything fed so far.
    pub fn finish(self) -> ModuleHash {
        ModuleHash(hex::encode(self.0.finalize()))
    }
}

impl fmt::Display for ModuleHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ModuleHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ModuleHash({})", self.short())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn hash_of_known_bytes() {
        assert_eq!(ModuleHash::of(b"").as_str(), EMPTY);
        let mut h = Hasher::default();
        h.update(b"ab");
        h.update(b"c");
        assert_eq!(h.finish(), ModuleHash::of(b"abc"));
    }

    #[test]
    fn verify_accepts_match_and_rejects_mismatch() {
        let h = ModuleHash::parse(EMPTY).unwrap();
        assert!(h.verify(b"").is_ok());
        let err = h.verify(b"x").unwrap_err();
        assert!(matches!(err, HashError::Mismatch { .. }));
        assert!(err.to_string().contains(EMPTY));
    }

    #[test]
    fn parse_rejects_malformed() {
        for bad in ["", "abc", &EMPTY.to_uppercase(), &format!("{EMPTY}0"), &EMPTY.replace('e', "g")] {
            assert!(ModuleHash::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
