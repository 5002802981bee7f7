//! Manifests: the broken-file corpus, Pandium's own samples, the committed
//! editor schema, the examples in `integrations/README.md`, hostile input,
//! default schedules and unsatisfiable config schemas.

mod config_schemas;
mod corpus;
mod docs;
mod pandium;
mod robustness;
mod schedules;
mod schema_file;

use std::path::{Path, PathBuf};

use ferry_core::manifest::{self, Diagnostic};

/// The repository root (the test crate lives in `tests/`).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// The test data folder `tests/manifests/<name>`.
fn manifests_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests").join(name)
}

/// `*.yaml` files of a folder, sorted so failures are reported in a stable order.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// What is wrong with a diagnostic as a thing to show: an editor or miette
/// must be able to put it somewhere in `source`, and say something.
fn diagnostic_defects(file: &str, source: &str, d: &Diagnostic) -> Vec<String> {
    let mut defects = Vec::new();
    if d.file != file {
        defects.push(format!("names file `{}`, not `{file}`", d.file));
    }
    if d.message.trim().is_empty() {
        defects.push("has an empty message".into());
    }
    if d.code.trim().is_empty() {
        defects.push("has an empty code".into());
    }
    if d.help.as_deref().is_some_and(|h| h.trim().is_empty()) {
        defects.push("has an empty help".into());
    }
    let lines: Vec<&str> = source.split('\n').collect();
    if d.line == 0 || d.line > lines.len() {
        defects.push(format!("line {} is outside the file's {} line(s)", d.line, lines.len()));
    } else {
        let width = lines[d.line - 1].trim_end_matches('\r').chars().count();
        if d.column == 0 || d.column > width + 1 {
            defects.push(format!("column {} is outside line {} ({width} characters)", d.column, d.line));
        }
    }
    defects
}

/// 1-based line and column (in characters) of the first `needle` in `source`.
fn position_of(source: &str, needle: &str) -> (usize, usize) {
    let at = source.find(needle).unwrap_or_else(|| panic!("`{needle}` is not in the source"));
    let before = &source[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or_default().chars().count() + 1;
    (line, column)
}

/// The diagnostics of a manifest that must not validate.
fn diagnostics(source: &str) -> Vec<Diagnostic> {
    match manifest::parse("PANDIUM.yaml", source) {
        Ok(_) => panic!("the manifest validated:\n{source}"),
        Err(d) => d,
    }
}
