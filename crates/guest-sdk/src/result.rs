//! Structured results: one JSON value, written to `/out/result.json`, that
//! `grid-cli run --output-dir DIR` brings back as `DIR/result.json`.
//!
//! The contract, which holds for guests in any language:
//!
//! - A job run with `--output-dir DIR` finds an empty, writable directory at
//!   `/out` ([`crate::fs::OUTPUT_DIR`]).
//! - A guest that has a result to report writes it as JSON to
//!   `/out/result.json` ([`FILE`]); other files in `/out` are its own.
//! - When the job ends, however it exits (an error exit code included, but
//!   not when it ran over its disk limit), everything in `/out` is written
//!   into `DIR` on the submitter's machine. With `--each`, the job for input
//!   `NAME` writes to `DIR/NAME/` (beside its stdout in `DIR/NAME.out`).
//!
//! [`write()`] writes the file atomically, so a reader never sees half a
//! result, and a guest may write it more than once (say, after every stage)
//! to leave its latest progress behind if it fails later.
//!
//! ```no_run
//! use guest_sdk::json::Json;
//!
//! # fn main() -> guest_sdk::Result<()> {
//! guest_sdk::result::write(&Json::object().with("words", 42).with("ok", true))?;
//! # Ok(())
//! # }
//! ```
//!
//! A guest that already uses `serde` passes its own encoding to
//! [`write_raw`], e.g. `result::write_raw(&serde_json::to_string(&report)?)`.

use crate::error::Result;
use crate::fs::{self, Dir};
use crate::json::Json;

/// The result file's name in the output directory.
pub const FILE: &str = "result.json";

/// Writes `value` as the job's result, `/out/result.json` (pretty-printed,
/// with a final newline), replacing any earlier one. Fails, saying how to
/// run the job, when there is no output directory.
pub fn write(value: &Json) -> Result<()> {
    write_to(&fs::output_dir()?, value)
}

/// Writes `value` as [`FILE`] into `dir` instead of the output directory
/// (for tests, or to run outside the grid).
///
/// ```
/// use guest_sdk::fs::Dir;
/// use guest_sdk::json::Json;
///
/// # fn main() -> guest_sdk::Result<()> {
/// # let tmp = std::env::temp_dir().join(format!("guest-sdk-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&tmp)?;
/// let dir = Dir::open(&tmp)?;
/// guest_sdk::result::write_to(&dir, &Json::object().with("ok", true))?;
/// assert_eq!(dir.read_to_string("result.json")?, "{\n  \"ok\": true\n}\n");
/// # std::fs::remove_dir_all(&tmp)?;
/// # Ok(())
/// # }
/// ```
pub fn write_to(dir: &Dir, value: &Json) -> Result<()> {
    let mut text = value.to_pretty_string();
    text.push('\n');
    dir.write_atomic(FILE, text)
}

/// Writes `json`, JSON text encoded by other means (`serde_json`, say), as
/// the job's result, as it is. Like [`write()`], it is atomic and fails when
/// there is no output directory.
pub fn write_raw(json: &str) -> Result<()> {
    fs::output_dir()?.write_atomic(FILE, json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_an_output_dir_the_error_says_how_to_get_one() {
        // The tests run on the host, where `/out` is not the guest's.
        if std::path::Path::new(fs::OUTPUT_DIR).exists() {
            return;
        }
        let err = write(&Json::Null).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no output directory: `/out` is not mapped (run with `grid-cli run --output-dir DIR`)"
        );
        assert_eq!(err.code(), 1);
        assert!(write_raw("{}").is_err());
    }

    #[test]
    fn write_to_replaces_the_file_whole() {
        let root = std::env::temp_dir().join(format!("guest-sdk-result-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        let dir = Dir::open(&root).unwrap();
        write_to(&dir, &Json::object().with("stage", 1).with("items", vec!["a"])).unwrap();
        write_to(&dir, &Json::object().with("stage", 2)).unwrap();
        assert_eq!(dir.read_to_string(FILE).unwrap(), "{\n  \"stage\": 2\n}\n");
        assert_eq!(dir.files().unwrap(), vec![FILE], "no temporary file is left behind");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
