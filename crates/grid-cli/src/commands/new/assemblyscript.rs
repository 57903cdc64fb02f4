//! The AssemblyScript template: the compiler and its WASI shim from npm, at
//! the versions the repository's own AssemblyScript example pins.

use super::{Template, fill};

const PACKAGE_JSON: &str = include_str!("../../../templates/assemblyscript/package.json");

/// The project's files.
pub fn template(name: &str) -> Template {
    let files = [
        ("assembly/index.ts", include_str!("../../../templates/assemblyscript/assembly/index.ts")),
        ("asconfig.json", include_str!("../../../templates/assemblyscript/asconfig.json")),
        ("package.json", PACKAGE_JSON),
        ("README.md", include_str!("../../../templates/assemblyscript/README.md")),
        (".gitignore", include_str!("../../../templates/assemblyscript/gitignore")),
    ]
    .into_iter()
    .map(|(path, text)| (path.into(), fill(text, name)))
    .collect();
    Template { files, build: "npm install && npm run build" }
}

#[cfg(test)]
mod tests {
    use super::PACKAGE_JSON;

    fn dev_dependencies(package_json: &str) -> serde_json::Value {
        let json: serde_json::Value = serde_json::from_str(package_json).expect("valid package.json");
        json["devDependencies"].clone()
    }

    #[test]
    fn pins_the_versions_the_example_is_built_and_tested_with() {
        let example = include_str!("../../../../../examples/wordfreq-as/package.json");
        assert_eq!(dev_dependencies(PACKAGE_JSON), dev_dependencies(example));
    }
}
