//! How much a job's scratch space holds, for its disk limit.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every file, directory and symlink counts at least this much, so that
/// thousands of empty files cost as much as they do on a real disk.
pub const BLOCK: u64 = 4096;

/// How often a running job's scratch space is measured.
pub const CHECK_INTERVAL: Duration = Duration::from_millis(50);

/// Bytes the tree under `dir` holds, rounded up to [`BLOCK`]s per entry.
/// Stops counting once past `cap`.
pub fn usage(dir: &Path, cap: u64) -> u64 {
    let mut total = 0u64;
    let mut stack: Vec<PathBuf> = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else { continue };
            total += meta.len().div_ceil(BLOCK).max(1) * BLOCK;
            if meta.is_dir() {
                stack.push(entry.path());
            }
            if total > cap {
                return total;
            }
        }
    }
    total
}

/// Resolves once the tree under `dir` holds more than `limit` bytes.
pub async fn exceeded(dir: PathBuf, limit: u64) {
    loop {
        tokio::time::sleep(CHECK_INTERVAL).await;
        let d = dir.clone();
        let used = tokio::task::spawn_blocking(move || usage(&d, limit)).await.unwrap_or(0);
        if used > limit {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_blocks_per_entry_and_stops_at_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(usage(dir.path(), u64::MAX), 0);
        std::fs::write(dir.path().join("one"), b"x").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/big"), vec![0u8; 5000]).unwrap();
        assert_eq!(usage(dir.path(), u64::MAX), BLOCK + BLOCK + 2 * BLOCK);
        for i in 0..100 {
            std::fs::write(dir.path().join(format!("empty{i}")), b"").unwrap();
        }
        assert!(usage(dir.path(), 10 * BLOCK) <= 11 * BLOCK + 2 * BLOCK);
    }
}
