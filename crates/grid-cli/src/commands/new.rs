//! `grid-cli new`: a ready-to-build guest project in Rust (with
//! `guest-sdk`), C or AssemblyScript.

mod assemblyscript;
mod c;
mod rust;

use crate::exit::{self, Failure};
use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// Create a guest project in Rust, C or AssemblyScript.
///
/// The project is ready to build into a `.wasm` that `grid-cli run` runs.
/// Each counts the words on stdin and greets whoever its first argument
/// names; its README says how to build and run it.
#[derive(Parser, Debug)]
pub struct NewCommand {
    /// The project's directory (its last part names the program).
    path: PathBuf,
    /// The language: Rust with the guest SDK (whose source comes with the
    /// project, so it builds offline), C with clang and wasi-libc, or
    /// AssemblyScript with its WASI shim.
    #[arg(long, value_enum, default_value_t = Lang::Rust)]
    lang: Lang,
    /// `new` talks to no master. This stands in for the global `--master`,
    /// which keeps it out of `new --help` and refuses it after `new`.
    #[arg(id = "master", long = "master", hide = true, value_name = "URL", value_parser = no_master)]
    _master: Option<String>,
}

/// Refuses `new --master URL`: a project is made here, not on a grid.
fn no_master(_: &str) -> Result<String, String> {
    Err("`new` makes a project here and talks to no master".into())
}

/// The languages `new` has a template for.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Lang {
    Rust,
    C,
    #[value(alias = "as")]
    Assemblyscript,
}

impl Lang {
    /// The project this language's template makes for a program `name`.
    fn template(self, name: &str) -> Template {
        match self {
            Lang::Rust => rust::template(name),
            Lang::C => c::template(name),
            Lang::Assemblyscript => assemblyscript::template(name),
        }
    }
}

/// A project's files (relative paths) and the command that builds it.
struct Template {
    files: Vec<(PathBuf, String)>,
    build: &'static str,
}

/// A template's text with `{{name}}` replaced by the program's name, and
/// `{{package}}` by its npm package name (which must be lowercase).
fn fill(text: &str, name: &str) -> String {
    text.replace("{{name}}", name).replace("{{package}}", &name.to_ascii_lowercase())
}

impl NewCommand {
    /// Runs the command.
    pub async fn execute(self) -> Result<ExitCode> {
        let name = self.path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
        if !valid {
            return Err(Failure::with(
                exit::USAGE,
                format!("`{name}` is not a package name: use letters, digits, `-` and `_`, starting with a letter"),
            ));
        }
        if self.path.exists() {
            return Err(Failure::with(exit::USAGE, format!("`{}` already exists", self.path.display())));
        }
        let template = self.lang.template(&name);
        for (rel, text) in template.files {
            let path = self.path.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).with_context(|| format!("failed to create `{}`", parent.display()))?;
            }
            std::fs::write(&path, text).with_context(|| format!("failed to write `{}`", path.display()))?;
        }
        outln!("created `{}`: cd into it and run `{}`", self.path.display(), template.build)?;
        Ok(ExitCode::SUCCESS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_is_filled() {
        for lang in Lang::value_variants() {
            for (path, text) in &lang.template("My-guest").files {
                assert!(!text.contains("{{"), "`{}` of {lang:?} keeps a placeholder", path.display());
            }
        }
    }

    #[test]
    fn npm_package_names_are_lowercase() {
        let files = Lang::Assemblyscript.template("My-guest").files;
        let package = files.iter().find(|(p, _)| p.ends_with("package.json")).map(|(_, t)| t).unwrap();
        assert!(package.contains(r#""name": "my-guest""#), "{package}");
        let asconfig = files.iter().find(|(p, _)| p.ends_with("asconfig.json")).map(|(_, t)| t).unwrap();
        assert!(asconfig.contains("build/My-guest.wasm"), "{asconfig}");
    }
}
