//! Files in mapped directories (`grid-cli run --dir HOST::GUEST`) and in the
//! output directory (`grid-cli run --output-dir DIR`), with errors that name
//! the path.
//!
//! ```no_run
//! use guest_sdk::fs::{self, Dir};
//!
//! # fn main() -> guest_sdk::Result<()> {
//! let data = Dir::open("/data")?; // grid-cli run --dir ./data::/data ...
//! let out = fs::output_dir()?; //    grid-cli run --output-dir ./results ...
//! for name in data.files()? {
//!     let text = data.read_to_string(&name)?;
//!     out.write(format!("upper/{name}"), text.to_uppercase())?;
//! }
//! # Ok(())
//! # }
//! ```

use crate::error::{Context, Result};
use std::path::{Path, PathBuf};

/// Where a guest finds its output directory: an empty directory, given with
/// `grid-cli run --output-dir DIR`, whose contents land in `DIR` on the
/// submitter's machine when the job ends. (Under `wasmtime run`, map one
/// with `--dir HOST::/out`.)
pub const OUTPUT_DIR: &str = "/out";

/// The output directory, [`OUTPUT_DIR`]; fails, saying how to map it, when
/// the job was run without one.
pub fn output_dir() -> Result<Dir> {
    if !Path::new(OUTPUT_DIR).is_dir() {
        crate::bail!("no output directory: `{OUTPUT_DIR}` is not mapped (run with `grid-cli run --output-dir DIR`)");
    }
    Ok(Dir { root: PathBuf::from(OUTPUT_DIR) })
}

/// A directory the job was given with `--dir`.
#[derive(Debug, Clone)]
pub struct Dir {
    root: PathBuf,
}

impl Dir {
    /// The mapped directory at `guest_path`; fails if it is not there.
    pub fn open(guest_path: impl AsRef<Path>) -> Result<Self> {
        let root = guest_path.as_ref().to_owned();
        let meta = std::fs::metadata(&root)
            .context(format_args!("`{0}` is not mapped (run with `grid-cli run --dir HOST::{0}`)", root.display()))?;
        if !meta.is_dir() {
            crate::bail!("`{}` is not a directory", root.display());
        }
        Ok(Self { root })
    }

    /// The directory's own path, as the guest sees it.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The full path of `name` inside the directory.
    pub fn path(&self, name: impl AsRef<Path>) -> PathBuf {
        self.root.join(name)
    }

    /// Reads a file as bytes.
    pub fn read(&self, name: impl AsRef<Path>) -> Result<Vec<u8>> {
        let path = self.path(name);
        std::fs::read(&path).context(format_args!("reading `{}`", path.display()))
    }

    /// Reads a file as text.
    pub fn read_to_string(&self, name: impl AsRef<Path>) -> Result<String> {
        let path = self.path(name);
        std::fs::read_to_string(&path).context(format_args!("reading `{}`", path.display()))
    }

    /// Writes a file, creating its parent directories.
    pub fn write(&self, name: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> Result<()> {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).context(format_args!("creating `{}`", parent.display()))?;
        }
        std::fs::write(&path, contents).context(format_args!("writing `{}`", path.display()))
    }

    /// Writes a file so that it is either wholly there or not at all: into a
    /// temporary file beside it, then renamed over `name`. Creates its parent
    /// directories.
    pub fn write_atomic(&self, name: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> Result<()> {
        let path = self.path(name);
        let (Some(parent), Some(file)) = (path.parent(), path.file_name()) else {
            crate::bail!("`{}` is not a file name", path.display());
        };
        std::fs::create_dir_all(parent).context(format_args!("creating `{}`", parent.display()))?;
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(file);
        temp_name.push(".tmp");
        let temp = parent.join(temp_name);
        std::fs::write(&temp, contents).context(format_args!("writing `{}`", temp.display()))?;
        std::fs::rename(&temp, &path).context(format_args!("writing `{}`", path.display())).inspect_err(|_| {
            let _ = std::fs::remove_file(&temp);
        })
    }

    /// Removes a file.
    pub fn remove(&self, name: impl AsRef<Path>) -> Result<()> {
        let path = self.path(name);
        std::fs::remove_file(&path).context(format_args!("removing `{}`", path.display()))
    }

    /// The names of the regular files directly inside, sorted.
    pub fn files(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.root).context(format_args!("listing `{}`", self.root.display()))? {
            let entry = entry.context(format_args!("listing `{}`", self.root.display()))?;
            if entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_write_list_remove() {
        let root = std::env::temp_dir().join(format!("guest-sdk-test-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        let dir = Dir::open(&root).unwrap();
        dir.write("b.txt", "two").unwrap();
        dir.write("a.txt", "one").unwrap();
        dir.write("sub/c.txt", "three").unwrap();
        assert_eq!(dir.files().unwrap(), vec!["a.txt", "b.txt"]);
        assert_eq!(dir.read_to_string("sub/c.txt").unwrap(), "three");
        dir.write_atomic("b.txt", "replaced").unwrap();
        dir.write_atomic("sub/new/d.txt", "four").unwrap();
        assert_eq!(dir.read_to_string("b.txt").unwrap(), "replaced");
        assert_eq!(dir.read_to_string("sub/new/d.txt").unwrap(), "four");
        assert!(dir.write_atomic("..", "x").is_err());
        dir.remove("a.txt").unwrap();
        let err = dir.read("a.txt").unwrap_err().to_string();
        assert!(err.starts_with("reading `"), "{err}");
        std::fs::remove_dir_all(&root).unwrap();
        let err = Dir::open(&root).unwrap_err().to_string();
        assert!(err.contains("is not mapped (run with `grid-cli run --dir HOST::"), "{err}");
    }
}
