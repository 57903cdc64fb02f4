//! The node's credential and whom it trusts: a credential given directly,
//! else the one saved in the cache dir as `node.token`, else a join token
//! to trade for one (`JoinGrid`) once, saved for every later start. The CA
//! learned through a join token's pin is saved beside it as `ca.pem`.

use grid_core::JoinToken;
use grid_core::connect::Trust;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The node credential's file in the cache dir (mode 0600).
pub const TOKEN_FILE: &str = "node.token";
/// The master's CA, learned through a join token's pin (mode 0644).
pub const CA_FILE: &str = "ca.pem";

/// Why a node without a credential cannot start.
pub const NO_CREDENTIAL: &str = "no credential: start with --join TOKEN (from `grid-cli admin node-token create`)";

/// How a node comes by its credential.
#[derive(Debug, PartialEq, Eq)]
pub enum Start {
    /// It has one: given, or saved by an earlier join.
    Credential(String),
    /// It trades this join token for one.
    Join(JoinToken),
}

/// How the node starts, from its `token`, its cache dir and its `join`, in
/// that order; an error, one line, when it has none or the join token is
/// malformed.
pub fn start(token: Option<&str>, cache_dir: &Path, join: Option<&str>) -> Result<Start, String> {
    if let Some(token) = token.map(str::trim).filter(|t| !t.is_empty()) {
        return Ok(Start::Credential(token.to_owned()));
    }
    let path = cache_dir.join(TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok(Start::Credential(text.trim().to_owned())),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read the node's credential `{}`: {e}", path.display())),
    }
    match join {
        Some(join) => parse_join(join).map(Start::Join),
        None => Err(NO_CREDENTIAL.to_owned()),
    }
}

/// Reads a join token, saying what is wrong with one that is not.
pub fn parse_join(s: &str) -> Result<JoinToken, String> {
    if let Some(join) = JoinToken::parse(s) {
        return Ok(join);
    }
    if grid_core::Token::parse(s).is_some() {
        return Err("--join takes a join token (`gridjoin_...`), not a bearer token: make one with \
                    `grid-cli admin node-token create`"
            .to_owned());
    }
    Err("--join is not a join token: one reads `gridjoin_<16 hex>_<64 hex>_<64 hex or none>`, as \
         `grid-cli admin node-token create` prints it"
        .to_owned())
}

/// The trust a node starts with: the given one, else the CA it saved when
/// it joined.
pub fn trust(given: &Trust, cache_dir: &Path) -> Trust {
    let mut trust = given.clone();
    if trust.ca_pem.is_none() {
        trust.ca_pem = std::fs::read(cache_dir.join(CA_FILE)).ok().filter(|pem| !pem.is_empty());
    }
    trust
}

/// Saves the node credential as `node.token`, mode 0600 from its first
/// byte, written whole under another name and renamed into place.
pub fn save_token(cache_dir: &Path, token: &str) -> Result<PathBuf, String> {
    save(cache_dir, TOKEN_FILE, format!("{token}\n").as_bytes(), 0o600)
}

/// Saves the master's CA as `ca.pem`, mode 0644, the same way.
pub fn save_ca(cache_dir: &Path, pem: &[u8]) -> Result<PathBuf, String> {
    save(cache_dir, CA_FILE, pem, 0o644)
}

fn save(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    let failed = |e: std::io::Error| format!("failed to save `{}`: {e}", path.display());
    std::fs::create_dir_all(dir).map_err(failed)?;
    // A temp file is made 0600, so the secret is never readable by others.
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(failed)?;
    file.write_all(bytes).and_then(|()| file.as_file().sync_all()).map_err(failed)?;
    file.as_file().set_permissions(std::fs::Permissions::from_mode(mode)).map_err(failed)?;
    file.persist(&path).map_err(|e| failed(e.error))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const JOIN: &str =
        "gridjoin_0123456789abcdef_0000000000000000000000000000000000000000000000000000000000000000_none";

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_given_credential_comes_first_then_the_saved_one_then_the_join_token() {
        let dir = tempfile::tempdir().unwrap();
        let join = JoinToken::parse(JOIN).unwrap();
        assert_eq!(start(None, dir.path(), Some(JOIN)), Ok(Start::Join(join)));
        save_token(dir.path(), "grid_saved").unwrap();
        assert_eq!(start(None, dir.path(), Some(JOIN)), Ok(Start::Credential("grid_saved".into())));
        assert_eq!(start(Some("grid_given"), dir.path(), Some(JOIN)), Ok(Start::Credential("grid_given".into())));
    }

    #[test]
    fn no_credential_and_no_join_token_says_how_to_join() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(start(None, dir.path(), None), Err(NO_CREDENTIAL.to_owned()));
        assert_eq!(start(Some("  "), dir.path(), None), Err(NO_CREDENTIAL.to_owned()));
    }

    #[test]
    fn a_malformed_join_token_is_refused_with_what_one_looks_like() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["", "gridjoin_", "gridjoin_0123_abcd_none", &JOIN.replace("none", "nope"), &format!("{JOIN}_x")] {
            let why = start(None, dir.path(), Some(bad)).unwrap_err();
            assert!(why.contains("is not a join token"), "{bad}: {why}");
            assert!(!why.contains('\n'));
        }
        let bearer = grid_core::Token::generate().to_string();
        let why = start(None, dir.path(), Some(&bearer)).unwrap_err();
        assert!(why.contains("not a bearer token"), "{why}");
    }

    #[test]
    fn the_credential_is_saved_owner_only_and_the_ca_readable() {
        let dir = tempfile::tempdir().unwrap();
        let token = save_token(&dir.path().join("cache"), "grid_secret").unwrap();
        assert_eq!(mode(&token), 0o600);
        assert_eq!(std::fs::read_to_string(&token).unwrap(), "grid_secret\n");
        save_token(&dir.path().join("cache"), "grid_other").unwrap();
        assert_eq!(mode(&token), 0o600);
        let ca = save_ca(&dir.path().join("cache"), b"PEM").unwrap();
        assert_eq!(mode(&ca), 0o644);
        // Nothing else is left behind.
        assert_eq!(std::fs::read_dir(dir.path().join("cache")).unwrap().count(), 2);
    }

    #[test]
    fn the_saved_ca_is_trusted_unless_one_is_given() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(trust(&Trust::default(), dir.path()).ca_pem, None);
        save_ca(dir.path(), b"SAVED").unwrap();
        assert_eq!(trust(&Trust::default(), dir.path()).ca_pem.as_deref(), Some(&b"SAVED"[..]));
        let given = Trust { ca_pem: Some(b"GIVEN".to_vec()), ca_pin: None };
        assert_eq!(trust(&given, dir.path()).ca_pem.as_deref(), Some(&b"GIVEN"[..]));
    }
}
