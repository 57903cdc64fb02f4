//! Which master the CLI talks to and with what credentials: `--master`,
//! `--token` and `--ca`, else `$GRID_MASTER`, `$GRID_TOKEN` and `$GRID_CA`,
//! else the login `grid-cli login` saved in the user's config dir
//! (`wasm-grid/config.json`, the directory 0700 and its files 0600, the CA
//! copied beside it as `ca.pem`).

use anyhow::{Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A named master and how to call it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// The master's URL, or several masters' separated by commas.
    pub url: String,
    /// The bearer token every call carries.
    pub token: Option<String>,
    /// The CA certificate (PEM) to trust the master by.
    pub ca: Option<PathBuf>,
}

/// What `grid-cli login` saves.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Saved {
    pub master: String,
    pub token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
}

/// The master to use, from the flags (or environment: clap merges them)
/// and then the saved login; `None` for an embedded grid. The saved token
/// and CA go only to the saved master: another master named by flag never
/// sees them.
pub fn resolve(master: Option<&str>, token: Option<&str>, ca: Option<&Path>, saved: Option<&Saved>) -> Option<Remote> {
    let saved_for = |url: &str| saved.filter(|s| same_masters(&s.master, url));
    let url = master.map(str::to_owned).or_else(|| saved.map(|s| s.master.clone()))?;
    let from_login = saved_for(&url);
    Some(Remote {
        token: token.map(str::to_owned).or_else(|| from_login.map(|s| s.token.clone())),
        ca: ca.map(Path::to_path_buf).or_else(|| from_login.and_then(|s| s.ca.clone())),
        url,
    })
}

/// Whether two lists of masters (a URL, or URLs separated by commas) name
/// the same masters in the same order, however each URL is written.
fn same_masters(a: &str, b: &str) -> bool {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.split(',').collect(), b.split(',').collect());
    a.len() == b.len() && a.iter().zip(&b).all(|(a, b)| grid_core::masters::same(a, b))
}

/// Where the login is saved: `wasm-grid` in the user's config dir.
pub fn dir() -> Result<PathBuf> {
    Ok(dirs::config_dir().context("this system names no config dir for the user")?.join("wasm-grid"))
}

const CONFIG: &str = "config.json";
const CA: &str = "ca.pem";

/// The login saved in `dir`, if any.
pub fn load(dir: &Path) -> Result<Option<Saved>> {
    let path = dir.join(CONFIG);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("failed to read the saved login `{}`", path.display())),
    };
    let saved = serde_json::from_str(&text).with_context(|| {
        format!("the saved login `{}` is damaged: log in again with `grid-cli login`", path.display())
    })?;
    Ok(Some(saved))
}

/// Saves a login in `dir` (made 0700): the master, the token and a copy
/// of the CA, each file 0600 from its first byte. Returns the config's path.
pub fn save(dir: &Path, master: &str, token: &str, ca_pem: Option<&[u8]>) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create `{}`", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("failed to make `{}` private", dir.display()))?;
    let ca = match ca_pem {
        Some(pem) => Some(write_private(dir, CA, pem)?),
        None => {
            remove(&dir.join(CA))?;
            None
        }
    };
    let saved = Saved { master: master.to_owned(), token: token.to_owned(), ca };
    write_private(dir, CONFIG, format!("{}\n", serde_json::to_string_pretty(&saved)?).as_bytes())
}

/// Removes the login saved in `dir`; returns the master it was for.
pub fn forget(dir: &Path) -> Result<Option<String>> {
    let saved = load(dir).ok().flatten();
    let existed = dir.join(CONFIG).exists();
    remove(&dir.join(CONFIG))?;
    remove(&dir.join(CA))?;
    Ok(if existed { Some(saved.map_or_else(|| "a master".to_owned(), |s| s.master)) } else { None })
}

fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("failed to remove `{}`", path.display()))
        }
        _ => Ok(()),
    }
}

/// Writes `name` in `dir` whole and 0600 (a temp file is made so), then
/// renames it into place.
fn write_private(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf> {
    let path = dir.join(name);
    let mut file =
        tempfile::NamedTempFile::new_in(dir).with_context(|| format!("failed to write in `{}`", dir.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.as_file().sync_all())
        .with_context(|| format!("failed to write `{}`", path.display()))?;
    file.persist(&path).with_context(|| format!("failed to write `{}`", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn saved() -> Saved {
        Saved {
            master: "https://grid.example:7070".into(),
            token: "grid_saved".into(),
            ca: Some("/saved/ca.pem".into()),
        }
    }

    #[test]
    fn flags_and_environment_come_before_the_saved_login() {
        let s = saved();
        // Nothing given: the saved login whole.
        let r = resolve(None, None, None, Some(&s)).unwrap();
        assert_eq!((r.url.as_str(), r.token.as_deref()), ("https://grid.example:7070", Some("grid_saved")));
        assert_eq!(r.ca.as_deref(), Some(Path::new("/saved/ca.pem")));
        // A token given: the saved master and CA with it.
        let r = resolve(None, Some("grid_flag"), None, Some(&s)).unwrap();
        assert_eq!((r.token.as_deref(), r.ca.as_deref()), (Some("grid_flag"), Some(Path::new("/saved/ca.pem"))));
        // The saved master named again, in another spelling.
        let r = resolve(Some("grid.example:7070"), None, Some(Path::new("/flag.pem")), Some(&s)).unwrap();
        assert_eq!((r.token.as_deref(), r.ca.as_deref()), (Some("grid_saved"), Some(Path::new("/flag.pem"))));
    }

    #[test]
    fn another_master_never_gets_the_saved_token() {
        for other in ["https://elsewhere:7070", "http://grid.example:7070", "grid.example:7071"] {
            let r = resolve(Some(other), None, None, Some(&saved())).unwrap();
            assert_eq!(r, Remote { url: other.into(), token: None, ca: None });
        }
    }

    #[test]
    fn no_master_and_no_login_is_the_embedded_grid() {
        assert_eq!(resolve(None, Some("grid_x"), None, None), None);
    }

    #[test]
    fn a_login_is_saved_private_and_forgotten() {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join("wasm-grid");
        assert_eq!(load(&dir).unwrap(), None);
        let path = save(&dir, "https://m:7070", "grid_t", Some(b"PEM")).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.join(CA)), 0o600);
        assert_eq!(std::fs::read(dir.join(CA)).unwrap(), b"PEM");
        let loaded = load(&dir).unwrap().unwrap();
        assert_eq!((loaded.master.as_str(), loaded.token.as_str()), ("https://m:7070", "grid_t"));
        assert_eq!(loaded.ca, Some(dir.join(CA)));
        // A later login without a CA drops the old copy.
        save(&dir, "https://m:7070", "grid_u", None).unwrap();
        assert!(!dir.join(CA).exists());
        assert_eq!(forget(&dir).unwrap().as_deref(), Some("https://m:7070"));
        assert_eq!(load(&dir).unwrap(), None);
        assert_eq!(forget(&dir).unwrap(), None);
    }

    #[test]
    fn a_damaged_login_says_how_to_mend_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG), "{not json").unwrap();
        let why = format!("{:#}", load(dir.path()).unwrap_err());
        assert!(why.contains("log in again"), "{why}");
    }
}
