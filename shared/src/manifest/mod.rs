//! Integration manifests (`PANDIUM.yaml`): parsing, validation with positioned
//! diagnostics, and the JSON Schema editors use.
//!
//! Parsing is `yaml-rust2` into a positioned tree (so every problem has a line
//! and column), then serde into the typed [`Manifest`]. Validation collects all
//! problems: first the shape (against the schema generated from the types),
//! then the references and templates.

pub mod checks;
pub mod diagnostic;
pub mod model;
pub mod structure;
pub mod yaml;

pub use diagnostic::Diagnostic;
pub use model::*;

/// Parses and validates a manifest. `file` names it in diagnostics.
pub fn parse(file: &str, source: &str) -> Result<Manifest, Vec<Diagnostic>> {
    let diag = |pos: yaml::Pos, pointer: &str, code: &str, message: String, help: Option<String>| Diagnostic {
        file: file.to_owned(),
        line: pos.line,
        column: pos.column,
        code: code.to_owned(),
        message,
        help,
        path: pointer.to_owned(),
    };
    let (root, yaml_problems) = match yaml::parse(source) {
        Ok(parsed) => parsed,
        Err(p) => return Err(vec![diag(p.pos, "", p.code, p.message, None)]),
    };
    let mut diagnostics: Vec<Diagnostic> =
        yaml_problems.into_iter().map(|p| diag(p.pos, "", p.code, p.message, None)).collect();
    let value = yaml::to_json(&root);
    if !value.is_object() {
        diagnostics.push(diag(
            root.pos,
            "",
            "wrong_type",
            "a manifest is a mapping of keys such as `version`, `connectors` and `configs`".into(),
            None,
        ));
        return Err(diagnostics);
    }
    for p in structure::check(&root, &value) {
        diagnostics.push(diag(p.pos, &p.pointer, p.code, p.message, p.help));
    }
    if !diagnostics.is_empty() {
        for f in checks::check_raw(&value) {
            let pos = yaml::locate(&root, &yaml::pointer_segments(&f.pointer), f.key);
            diagnostics.push(diag(pos, &f.pointer, f.code, f.message, f.help));
        }
        diagnostics.sort_by_key(|d| (d.line, d.column));
        return Err(diagnostics);
    }
    let manifest: Manifest = match serde_path_to_error::deserialize(value) {
        Ok(m) => m,
        Err(e) => {
            // The schema accepted what serde refused: report it rather than panic.
            let pointer = format!("/{}", e.path().to_string().replace('.', "/"));
            let pos = yaml::locate(&root, &yaml::pointer_segments(&pointer), false);
            return Err(vec![diag(pos, &pointer, "invalid_value", e.inner().to_string(), None)]);
        }
    };
    for f in checks::check(&manifest) {
        let pos = yaml::locate(&root, &yaml::pointer_segments(&f.pointer), f.key);
        diagnostics.push(diag(pos, &f.pointer, f.code, f.message, f.help));
    }
    diagnostics.sort_by_key(|d| (d.line, d.column));
    if diagnostics.is_empty() {
        Ok(manifest)
    } else {
        Err(diagnostics)
    }
}

/// The JSON Schema of the manifest, pretty-printed as committed in
/// `integrations/manifest.schema.json`.
pub fn schema_json() -> String {
    let mut s = serde_json::to_string_pretty(structure::manifest_schema()).unwrap_or_default();
    s.push('\n');
    s
}
