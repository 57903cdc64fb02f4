//! The master's data directory: it holds tenants' job specs and outputs,
//! the token key and the admin token, so the master makes it readable by
//! its owner only. A directory the operator made is left as it is, with a
//! warning if others may read it.

use crate::error::{MasterError, Result};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// Makes `dir` (and any missing parent) with mode 0700 if it does not
/// exist. Returns a warning to log if it exists and others may read it.
pub fn prepare(dir: &Path) -> Result<Option<String>> {
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => {
            Err(MasterError::Internal(format!("data dir `{}` is not a directory", dir.display())))
        }
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            Ok((mode & 0o077 != 0).then(|| {
                format!(
                    "data dir `{}` is open to other users (mode {mode:04o}) but holds tenants' jobs and outputs: \
                     `chmod 700` it",
                    dir.display()
                )
            }))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(MasterError::io(dir))?;
            Ok(None)
        }
        Err(e) => Err(MasterError::io(dir)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(dir: &Path) -> u32 {
        std::fs::metadata(dir).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_data_dir_is_its_owner_s_alone_and_an_open_one_is_warned_of() {
        let root = tempfile::tempdir().unwrap();
        let made = root.path().join("a/grid");
        assert_eq!(prepare(&made).unwrap(), None);
        assert_eq!(mode(&made), 0o700);

        let open = root.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        let warning = prepare(&open).unwrap().expect("no warning");
        assert!(warning.contains("is open to other users (mode 0755)"), "{warning}");
        assert_eq!(mode(&open), 0o755, "the operator's dir was changed");
        assert_eq!(prepare(&made).unwrap(), None, "a dir of its own is not warned of");
    }
}
