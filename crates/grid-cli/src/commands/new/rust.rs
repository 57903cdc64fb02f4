//! The Rust template: a guest that uses `guest-sdk`, whose source comes
//! with it so it builds offline.

use super::Template;
use std::path::Path;

/// The SDK's source, carried inside the CLI.
const SDK: &[(&str, &str)] = &[
    ("src/lib.rs", include_str!("../../../../guest-sdk/src/lib.rs")),
    ("src/args.rs", include_str!("../../../../guest-sdk/src/args.rs")),
    ("src/error.rs", include_str!("../../../../guest-sdk/src/error.rs")),
    ("src/fs.rs", include_str!("../../../../guest-sdk/src/fs.rs")),
    ("src/input.rs", include_str!("../../../../guest-sdk/src/input.rs")),
    ("src/json.rs", include_str!("../../../../guest-sdk/src/json.rs")),
    ("src/result.rs", include_str!("../../../../guest-sdk/src/result.rs")),
];

const MAIN_RS: &str = r#"//! A grid guest: counts the words on stdin, greeting whoever the first
//! argument names.

use guest_sdk::prelude::*;

fn main() {
    run(|| {
        let args = guest_sdk::args::Args::from_env();
        let who = args.get(0).unwrap_or("grid");
        let text = guest_sdk::input::stdin_string()?;
        if text.is_empty() {
            bail!("nothing on stdin: try `echo some words | grid-cli run ...`");
        }
        let words = text.split_whitespace().count();
        println!("hello, {who}: {words} words");
        // Run with `--output-dir DIR` to get a structured result in `DIR/result.json`:
        // guest_sdk::result::write(&Json::object().with("who", who).with("words", words))?;
        Ok(())
    })
}
"#;

fn cargo_toml(name: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

[dependencies]
guest-sdk = {{ path = "guest-sdk" }}

[profile.release]
opt-level = "s"
strip = "debuginfo"

# A project of its own, even inside another workspace.
[workspace]
"#
    )
}

const SDK_TOML: &str = r#"[package]
name = "guest-sdk"
version = "0.1.0"
edition = "2024"
description = "Write programs for wasm-grid: args, input, mapped directories, results and exit codes over plain WASI."

[dependencies]
"#;

const CARGO_CONFIG: &str = "[build]\ntarget = \"wasm32-wasip1\"\n";

fn readme(name: &str) -> String {
    format!(
        "# {name}\n\nA wasm-grid guest written with `guest-sdk` (its source is in `guest-sdk/`).\n\n\
         ```sh\nrustup target add wasm32-wasip1   # once\ncargo build --release\n\
         echo \"some words here\" | grid-cli run target/wasm32-wasip1/release/{name}.wasm -- you\n```\n\n\
         It runs under the limits `grid-cli run --help` lists (fuel, memory, time, output, disk) and \
         sees only WASI: its arguments, environment, stdin, stdout, stderr and the directories given \
         with `--dir`. It also runs under `wasmtime run`.\n\n\
         Run with `--output-dir DIR` and the guest gets an empty directory `/out`; what it writes there \
         (a structured result in `/out/result.json`, with `guest_sdk::result::write`) lands in `DIR` \
         when the job ends.\n"
    )
}

/// The project's files.
pub fn template(name: &str) -> Template {
    let files = [
        ("Cargo.toml".into(), cargo_toml(name)),
        ("src/main.rs".into(), MAIN_RS.to_owned()),
        (".cargo/config.toml".into(), CARGO_CONFIG.to_owned()),
        (".gitignore".into(), "/target\n".to_owned()),
        ("README.md".into(), readme(name)),
        ("guest-sdk/Cargo.toml".into(), SDK_TOML.to_owned()),
    ]
    .into_iter()
    .chain(SDK.iter().map(|(p, text)| (Path::new("guest-sdk").join(p), (*text).to_owned())))
    .collect();
    Template { files, build: "cargo build --release" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sdk_source_file_is_vendored() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk/src");
        let mut on_disk: Vec<String> = std::fs::read_dir(&src)
            .unwrap()
            .map(|e| format!("src/{}", e.unwrap().file_name().to_string_lossy()))
            .collect();
        on_disk.sort();
        let mut vendored: Vec<String> = SDK.iter().map(|(p, _)| p.to_string()).collect();
        vendored.sort();
        assert_eq!(vendored, on_disk, "`SDK` must carry every file of `crates/guest-sdk/src`");
    }
}
