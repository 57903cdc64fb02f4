//! The node's lasting identity: a random id kept in its data dir, made at
//! its first start. The master tells a node reconnecting under its name
//! from another node that took the same name by it.

use std::path::Path;

/// The file in the data dir that holds the identity.
pub const FILE: &str = "node-id";

/// The identity kept in `dir`, made (and kept) if there is none yet.
pub fn load_or_create(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join(FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let id = text.trim();
        if !id.is_empty() {
            return Ok(id.to_owned());
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("failed to create data dir `{}`: {e}", dir.display()))?;
    let id = format!("{:032x}", fastrand::u128(..));
    // Written whole under another name, then renamed: a crash leaves no half id.
    let tmp = dir.join(format!("{FILE}.{}", std::process::id()));
    std::fs::write(&tmp, format!("{id}\n"))
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| anyhow::anyhow!("failed to write the node's identity to `{}`: {e}", path.display()))?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(&dir.path().join("data")).unwrap();
        assert_eq!(first.len(), 32);
        assert_eq!(load_or_create(&dir.path().join("data")).unwrap(), first);
        let other = tempfile::tempdir().unwrap();
        assert_ne!(load_or_create(other.path()).unwrap(), first);
    }
}
