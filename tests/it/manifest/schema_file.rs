//! `integrations/manifest.schema.json` is what editors validate manifests
//! against (`# yaml-language-server: $schema=...`). It must be exactly the
//! schema the validator generates, and accept every manifest the validator
//! accepts. `FERRY_UPDATE_SCHEMA=1` rewrites it.

use std::path::{Path, PathBuf};

use ferry_core::manifest::{self, yaml};
use serde_json::Value;

use super::{manifests_dir, repo_root, yaml_files};

fn schema_path() -> PathBuf {
    repo_root().join("integrations/manifest.schema.json")
}

#[test]
fn the_committed_editor_schema_is_the_generated_one() {
    let path = schema_path();
    let generated = manifest::schema_json();
    if std::env::var("FERRY_UPDATE_SCHEMA").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &generated).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date with crates/core/src/manifest/model.rs; regenerate it with\n\n    \
         FERRY_UPDATE_SCHEMA=1 cargo test -p ferry-e2e --test it manifest::schema_file\n\nand commit the result",
        path.display()
    );
}

fn committed_schema() -> Value {
    // While the file is being regenerated, the other tests check what it will be.
    let text = if std::env::var("FERRY_UPDATE_SCHEMA").is_ok_and(|v| v == "1") {
        manifest::schema_json()
    } else {
        std::fs::read_to_string(schema_path()).expect("integrations/manifest.schema.json exists")
    };
    serde_json::from_str(&text).expect("the committed schema is JSON")
}

/// The manifest as an editor's YAML language server sees it.
fn as_json(path: &Path) -> Value {
    let source = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let (root, problems) = yaml::parse(&source).unwrap_or_else(|p| panic!("{}: {}", path.display(), p.message));
    assert!(problems.is_empty(), "{}: {problems:?}", path.display());
    yaml::to_json(&root)
}

#[test]
fn editors_accept_the_sample_integrations_and_pandium_samples() {
    let schema = committed_schema();
    let validator = jsonschema::validator_for(&schema).expect("the committed schema compiles");
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_root().join("integrations"))
        .expect("integrations/")
        .map(|e| e.expect("entry").path().join("PANDIUM.yaml"))
        .filter(|p| p.is_file())
        .collect();
    assert!(!files.is_empty(), "no integrations/*/PANDIUM.yaml");
    files.extend(yaml_files(&manifests_dir("pandium")));
    let mut report = Vec::new();
    for file in &files {
        let value = as_json(file);
        for error in validator.iter_errors(&value) {
            report.push(format!("{}: {} at {}", file.display(), error, error.instance_path()));
        }
    }
    assert!(report.is_empty(), "the editor schema flags valid manifests:\n{}", report.join("\n"));
}

#[test]
fn editors_flag_a_misspelt_key() {
    let validator = jsonschema::validator_for(&committed_schema()).expect("compiles");
    let (root, _) = yaml::parse("version: 1.0\nconectors: [hubspot]\nbase: node:20\nrun: node .\n").expect("YAML");
    assert!(!validator.is_valid(&yaml::to_json(&root)));
}
