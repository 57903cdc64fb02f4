//! Directories that travel with a job, as tar archives: packed on one side,
//! unpacked or written back on the other. Files, subdirectories and symlinks
//! that stay inside the tree travel; nothing may point or lead outside it.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

/// What [`pack`] does with a symlink that leads outside the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// Refuse to pack the directory.
    Fail,
    /// Leave the symlink out.
    Skip,
}

fn other(msg: String) -> io::Error {
    io::Error::other(msg)
}

/// Packs the contents of `dir` (not `dir` itself) into a tar archive, in a
/// stable order.
pub fn pack(dir: &Path, escape: Escape) -> io::Result<Vec<u8>> {
    pack_in(dir, escape, tar::HeaderMode::Complete)
}

/// Packs like [`pack`], but keeps only what a file's contents and kind say:
/// every entry gets one fixed mtime, owner 0:0 and mode 0644 (0755 for a
/// directory or an executable), so the same tree gives the same bytes on
/// every machine, whoever wrote it and when.
pub fn pack_deterministic(dir: &Path, escape: Escape) -> io::Result<Vec<u8>> {
    pack_in(dir, escape, tar::HeaderMode::Deterministic)
}

fn pack_in(dir: &Path, escape: Escape, mode: tar::HeaderMode) -> io::Result<Vec<u8>> {
    let root = dir.canonicalize()?;
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    builder.mode(mode);
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let mut entries: Vec<_> = fs::read_dir(dir.join(&rel))?.collect::<io::Result<_>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries.into_iter().rev() {
            let rel_path = rel.join(entry.file_name());
            let meta = entry.metadata()?;
            let ft = meta.file_type();
            if ft.is_symlink() {
                let target = fs::read_link(entry.path())?;
                if !symlink_stays_inside(&rel_path, &target) || !resolves_inside(&root, &entry.path(), &target) {
                    match escape {
                        Escape::Skip => continue,
                        Escape::Fail => {
                            return Err(other(format!(
                                "symlink `{}` points outside `{}`",
                                dir.join(&rel_path).display(),
                                dir.display()
                            )));
                        }
                    }
                }
                let mut header = tar::Header::new_gnu();
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                header.set_mode(0o777);
                builder.append_link(&mut header, &rel_path, &target)?;
            } else if ft.is_dir() {
                builder.append_dir(&rel_path, entry.path())?;
                stack.push(rel_path);
            } else if ft.is_file() {
                builder.append_path_with_name(entry.path(), &rel_path)?;
            }
        }
    }
    builder.into_inner()
}

/// An archive of an empty directory.
pub fn empty() -> Vec<u8> {
    tar::Builder::new(Vec::new()).into_inner().unwrap_or_default()
}

/// Whether `archive` holds no entries: the directory it came from was empty.
pub fn is_empty(archive: &[u8]) -> io::Result<bool> {
    for entry in tar::Archive::new(archive).entries()? {
        if !safe_relative(&entry?.path()?)?.as_os_str().is_empty() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether a symlink at `link` (relative to the tree's root) whose target is
/// `target` resolves, lexically, to a place inside the tree.
fn symlink_stays_inside(link: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth: i64 = link.components().count() as i64 - 1;
    for c in target.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// Whether the symlink at `link` really resolves inside `root` (canonical),
/// following every symlink on the way. A dangling link counts as inside only
/// if its target never climbs with `..`.
fn resolves_inside(root: &Path, link: &Path, target: &Path) -> bool {
    match fs::canonicalize(link) {
        Ok(real) => real.starts_with(root),
        Err(_) => !target.components().any(|c| matches!(c, Component::ParentDir)),
    }
}

/// A relative path made only of plain components, or an error.
fn safe_relative(path: &Path) -> io::Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return Err(other(format!("archive entry `{}` leads outside its directory", path.display()))),
        }
    }
    Ok(out)
}

/// Refuses a path under `root` whose parent directories include a symlink:
/// writing through one could land anywhere.
fn no_symlink_parents(root: &Path, rel: &Path) -> io::Result<()> {
    let mut prefix = root.to_owned();
    let parts: Vec<_> = rel.components().collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        prefix.push(part);
        if fs::symlink_metadata(&prefix).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(other(format!("archive entry `{}` lies under a symlink", rel.display())));
        }
    }
    Ok(())
}

/// The most file data an archive may unpack to.
#[derive(Debug, thiserror::Error)]
#[error("the directory holds more than {0} bytes")]
pub struct TooLarge(pub u64);

/// Unpacks `archive` into the existing directory `dest`, refusing entries
/// that lead outside it and more than `max_bytes` of file data. Returns the
/// number of bytes of file data written.
pub fn unpack(archive: &[u8], dest: &Path, max_bytes: u64) -> io::Result<u64> {
    apply(archive, dest, false, max_bytes)
}

/// Makes `dest` look like `archive`: writes what is new or changed, and
/// removes what the archive no longer has. Unchanged files are not touched.
pub fn write_back(archive: &[u8], dest: &Path) -> io::Result<u64> {
    apply(archive, dest, true, u64::MAX)
}

fn apply(archive: &[u8], dest: &Path, remove_missing: bool, max_bytes: u64) -> io::Result<u64> {
    let root = dest.canonicalize()?;
    let mut ar = tar::Archive::new(archive);
    let mut seen = BTreeSet::new();
    let mut links = Vec::new();
    let mut written = 0u64;
    let mut total = 0u64;
    for entry in ar.entries()? {
        let mut entry = entry?;
        let rel = safe_relative(&entry.path()?)?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        no_symlink_parents(&root, &rel)?;
        let path = root.join(&rel);
        seen.insert(rel.clone());
        let existing = fs::symlink_metadata(&path).ok();
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                if existing.as_ref().is_some_and(|m| !m.is_dir()) {
                    fs::remove_file(&path)?;
                }
                fs::create_dir_all(&path)?;
            }
            tar::EntryType::Symlink => {
                let target =
                    entry.link_name()?.ok_or_else(|| other(format!("symlink `{}` has no target", rel.display())))?;
                if !symlink_stays_inside(&rel, &target) {
                    return Err(other(format!("symlink `{}` points outside its directory", rel.display())));
                }
                // Symlinks are made last, so no entry is written through one.
                links.push((rel, target.into_owned()));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut data = Vec::new();
                (&mut entry).take(max_bytes.saturating_sub(total).saturating_add(1)).read_to_end(&mut data)?;
                total += data.len() as u64;
                if total > max_bytes {
                    return Err(io::Error::new(io::ErrorKind::QuotaExceeded, TooLarge(max_bytes)));
                }
                if let Some(meta) = &existing {
                    if meta.is_file() && meta.len() == data.len() as u64 && fs::read(&path)? == data {
                        continue;
                    }
                    remove_any(&path)?;
                }
                make_parent(&path)?;
                fs::write(&path, &data)?;
                written += data.len() as u64;
            }
            _ => {}
        }
    }
    for (rel, target) in links {
        no_symlink_parents(&root, &rel)?;
        let path = root.join(&rel);
        if fs::symlink_metadata(&path).is_ok() {
            if fs::read_link(&path).ok().as_deref() == Some(target.as_path()) {
                continue;
            }
            remove_any(&path)?;
        }
        make_parent(&path)?;
        std::os::unix::fs::symlink(&target, &path)?;
        if !resolves_inside(&root, &path, &target) {
            fs::remove_file(&path)?;
            return Err(other(format!("symlink `{}` points outside its directory", rel.display())));
        }
    }
    if remove_missing {
        remove_unseen(&root, Path::new(""), &seen)?;
    }
    Ok(written)
}

fn make_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(parent) => fs::create_dir_all(parent),
        None => Ok(()),
    }
}

fn remove_any(path: &Path) -> io::Result<()> {
    if fs::symlink_metadata(path)?.is_dir() { fs::remove_dir_all(path) } else { fs::remove_file(path) }
}

fn remove_unseen(root: &Path, rel: &Path, seen: &BTreeSet<PathBuf>) -> io::Result<()> {
    for entry in fs::read_dir(root.join(rel))? {
        let entry = entry?;
        let rel_path = rel.join(entry.file_name());
        if !seen.contains(&rel_path) {
            remove_any(&entry.path())?;
        } else if entry.file_type()?.is_dir() {
            remove_unseen(root, &rel_path, seen)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(root: &Path) {
        fs::create_dir_all(root.join("sub/deeper")).unwrap();
        fs::write(root.join("a.txt"), "alpha").unwrap();
        fs::write(root.join("sub/b.txt"), "beta").unwrap();
        fs::write(root.join("sub/deeper/c.txt"), "gamma").unwrap();
        std::os::unix::fs::symlink("sub/b.txt", root.join("link")).unwrap();
    }

    #[test]
    fn round_trip_and_write_back() {
        let src = tempfile::tempdir().unwrap();
        tree(src.path());
        let ar = pack(src.path(), Escape::Fail).unwrap();

        let work = tempfile::tempdir().unwrap();
        unpack(&ar, work.path(), u64::MAX).unwrap();
        assert_eq!(fs::read_to_string(work.path().join("sub/deeper/c.txt")).unwrap(), "gamma");
        assert_eq!(fs::read_link(work.path().join("link")).unwrap(), Path::new("sub/b.txt"));

        // The job changes one file, adds one, deletes one.
        fs::write(work.path().join("a.txt"), "ALPHA").unwrap();
        fs::write(work.path().join("new.txt"), "new").unwrap();
        fs::remove_file(work.path().join("sub/deeper/c.txt")).unwrap();
        let back = pack(work.path(), Escape::Skip).unwrap();
        write_back(&back, src.path()).unwrap();
        assert_eq!(fs::read_to_string(src.path().join("a.txt")).unwrap(), "ALPHA");
        assert_eq!(fs::read_to_string(src.path().join("new.txt")).unwrap(), "new");
        assert!(!src.path().join("sub/deeper/c.txt").exists());
        assert_eq!(fs::read_to_string(src.path().join("sub/b.txt")).unwrap(), "beta");
    }

    #[test]
    fn deterministic_packing_ignores_times_and_owners() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        tree(a.path());
        // The same tree, written in another order, a moment later, with other permissions.
        std::os::unix::fs::symlink("sub/b.txt", b.path().join("link")).unwrap();
        fs::create_dir_all(b.path().join("sub/deeper")).unwrap();
        fs::write(b.path().join("sub/deeper/c.txt"), "gamma").unwrap();
        fs::write(b.path().join("sub/b.txt"), "beta").unwrap();
        fs::write(b.path().join("a.txt"), "alpha").unwrap();
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        fs::File::options().write(true).open(b.path().join("a.txt")).unwrap().set_modified(old).unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(b.path().join("sub/b.txt"), fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            pack_deterministic(a.path(), Escape::Fail).unwrap(),
            pack_deterministic(b.path(), Escape::Fail).unwrap()
        );
        assert_ne!(pack(a.path(), Escape::Fail).unwrap(), pack(b.path(), Escape::Fail).unwrap());
        // Contents still count.
        fs::write(b.path().join("a.txt"), "ALPHA").unwrap();
        assert_ne!(
            pack_deterministic(a.path(), Escape::Fail).unwrap(),
            pack_deterministic(b.path(), Escape::Fail).unwrap()
        );
    }

    #[test]
    fn empty_archives() {
        assert!(is_empty(&empty()).unwrap());
        assert!(is_empty(&[]).unwrap());
        let dir = tempfile::tempdir().unwrap();
        assert!(is_empty(&pack(dir.path(), Escape::Fail).unwrap()).unwrap());
        fs::create_dir(dir.path().join("sub")).unwrap();
        assert!(!is_empty(&pack(dir.path(), Escape::Fail).unwrap()).unwrap());
        let dest = tempfile::tempdir().unwrap();
        fs::write(dest.path().join("kept"), "k").unwrap();
        unpack(&empty(), dest.path(), 0).unwrap();
        assert!(dest.path().join("kept").exists());
    }

    #[test]
    fn escaping_symlinks_fail_or_are_skipped() {
        let src = tempfile::tempdir().unwrap();
        fs::write(src.path().join("ok.txt"), "ok").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.path().join("abs")).unwrap();
        std::os::unix::fs::symlink("../outside", src.path().join("rel")).unwrap();
        let err = pack(src.path(), Escape::Fail).unwrap_err();
        assert!(err.to_string().contains("points outside"), "{err}");
        let ar = pack(src.path(), Escape::Skip).unwrap();
        let out = tempfile::tempdir().unwrap();
        unpack(&ar, out.path(), u64::MAX).unwrap();
        assert!(out.path().join("ok.txt").exists());
        assert!(fs::symlink_metadata(out.path().join("abs")).is_err());
        assert!(fs::symlink_metadata(out.path().join("rel")).is_err());
    }

    /// One archive entry: path, symlink target (or none for a file), data.
    type Entry<'a> = (&'a str, Option<&'a str>, &'a [u8]);

    /// An archive built entry by entry, as a hostile party could.
    fn hostile(entries: &[Entry]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, link, data) in entries {
            let mut h = tar::Header::new_gnu();
            match link {
                Some(target) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    b.append_link(&mut h, path, target).unwrap();
                }
                None => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(data.len() as u64);
                    h.set_mode(0o644);
                    b.append_data(&mut h, path, *data).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn hostile_archives_cannot_escape() {
        let cases: &[&[Entry]] = &[
            &[("x", Some("."), b""), ("x/x/x/evil", Some("../../.."), b""), ("x/x/x/evil/ESCAPED", None, b"!")],
            &[("b", Some("."), b""), ("l", Some("b/.."), b""), ("l/ESCAPED", None, b"!")],
            &[("up", Some(".."), b""), ("up/ESCAPED", None, b"!")],
            &[("abs", Some("/tmp"), b"")],
        ];
        for (i, entries) in cases.iter().enumerate() {
            let outer = tempfile::tempdir().unwrap();
            let dest = outer.path().join("dest");
            fs::create_dir(&dest).unwrap();
            let ar = hostile(entries);
            let _ = unpack(&ar, &dest, u64::MAX);
            let _ = write_back(&ar, &dest);
            let names: Vec<_> = fs::read_dir(outer.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
            assert_eq!(names, vec!["dest"], "case {i} wrote outside");
            for link in ["x/x/x/evil", "l", "up", "abs"] {
                let p = dest.join(link);
                if fs::symlink_metadata(&p).is_ok() {
                    assert!(
                        fs::canonicalize(&p).is_ok_and(|r| r.starts_with(dest.canonicalize().unwrap())),
                        "case {i}: `{link}` escapes"
                    );
                }
            }
        }
    }

    #[test]
    fn unpack_stops_at_its_byte_limit_without_trusting_headers() {
        let ar = hostile(&[("a", None, &[1u8; 600]), ("b", None, &[2u8; 600])]);
        let dest = tempfile::tempdir().unwrap();
        let err = unpack(&ar, dest.path(), 1000).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::QuotaExceeded);
        assert!(unpack(&ar, dest.path(), 1200).is_ok());
        // A header that claims a huge size does not allocate it.
        let mut lying = hostile(&[("big", None, b"tiny")]);
        let mut header = tar::Header::new_gnu();
        header.set_size(1 << 40);
        lying[124..136].copy_from_slice(&header.as_bytes()[124..136]);
        let _ = unpack(&lying, dest.path(), 1 << 20);
    }

    #[test]
    fn symlink_containment() {
        for (link, target, inside) in [
            ("a", "b", true),
            ("d/a", "../b", true),
            ("a", "../b", false),
            ("d/a", "../../b", false),
            ("a", "/etc", false),
            ("d/e/a", "../x/../../y", true),
        ] {
            assert_eq!(symlink_stays_inside(Path::new(link), Path::new(target)), inside, "{link} -> {target}");
        }
    }
}
