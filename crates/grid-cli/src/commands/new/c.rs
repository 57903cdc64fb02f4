//! The C template: plain WASI preview 1 through wasi-libc, built by `make`
//! with clang and lld.

use super::{Template, fill};

/// The project's files.
pub fn template(name: &str) -> Template {
    let files = [
        ("main.c", include_str!("../../../templates/c/main.c")),
        ("Makefile", include_str!("../../../templates/c/Makefile")),
        ("README.md", include_str!("../../../templates/c/README.md")),
        (".gitignore", include_str!("../../../templates/c/gitignore")),
    ]
    .into_iter()
    .map(|(path, text)| (path.into(), fill(text, name)))
    .collect();
    Template { files, build: "make" }
}
