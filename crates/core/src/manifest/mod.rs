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
mod satisfiable;
pub mod structure;
pub mod yaml;

pub use diagnostic::Diagnostic;
pub use model::*;

/// Parses and validates a manifest. `file` names it in diagnostics.
pub fn parse(file: &str, source: &str) -> Result<Manifest, Vec<Diagnostic>> {
    let diag = |pos: yaml::Pos, pointer: &str, code: &str, message: String, help: Option<String>| {
        let pos = within(source, pos);
        Diagnostic {
            file: file.to_owned(),
            line: pos.line,
            column: pos.column,
            code: code.to_owned(),
            message,
            help,
            path: pointer.to_owned(),
        }
    };
    let (root, yaml_problems) = match yaml::parse(source) {
        Ok(parsed) => parsed,
        Err(p) => return Err(vec![diag(p.pos, "", p.code, p.message, p.help)]),
    };
    let mut diagnostics: Vec<Diagnostic> =
        yaml_problems.into_iter().map(|p| diag(p.pos, "", p.code, p.message, p.help)).collect();
    let value = yaml::to_json(&root);
    if !value.is_object() {
        let message = if value.is_null() {
            "the manifest is empty; it is a mapping of keys such as `version`, `connectors` and `flows`"
        } else {
            "a manifest is a mapping of keys such as `version`, `connectors` and `configs`"
        };
        diagnostics.push(diag(
            root.pos,
            "",
            "wrong_type",
            message.into(),
            Some("start from the annotated example in integrations/README.md".into()),
        ));
        return Err(diagnostics);
    }
    for p in structure::check(&root, &value) {
        diagnostics.push(diag(p.pos, &p.pointer, p.code, p.message, p.help));
    }
    if !diagnostics.is_empty() {
        for f in checks::check_raw(&value).into_iter().take(structure::MAX_PROBLEMS) {
            let pos = yaml::locate(&root, &yaml::pointer_segments(&f.pointer), f.key);
            diagnostics.push(diag(pos, &f.pointer, f.code, f.message, f.help));
        }
        return Err(finish(diagnostics));
    }
    let manifest: Manifest = match serde_path_to_error::deserialize(value) {
        Ok(m) => m,
        Err(e) => {
            // The schema accepted what serde refused: report it rather than panic.
            let pointer: String = e
                .path()
                .iter()
                .filter_map(|segment| match segment {
                    serde_path_to_error::Segment::Seq { index } => Some(format!("/{index}")),
                    serde_path_to_error::Segment::Map { key } => Some(format!("/{}", checks::escape(key))),
                    _ => None,
                })
                .collect();
            let pos = yaml::locate(&root, &yaml::pointer_segments(&pointer), false);
            return Err(vec![diag(pos, &pointer, "invalid_value", e.inner().to_string(), None)]);
        }
    };
    for f in checks::check(&manifest).into_iter().take(structure::MAX_PROBLEMS) {
        let pos = yaml::locate(&root, &yaml::pointer_segments(&f.pointer), f.key);
        diagnostics.push(diag(pos, &f.pointer, f.code, f.message, f.help));
    }
    if diagnostics.is_empty() {
        Ok(manifest)
    } else {
        Err(finish(diagnostics))
    }
}

/// In file order, and no longer than anyone will read.
fn finish(mut diagnostics: Vec<Diagnostic>) -> Vec<Diagnostic> {
    diagnostics.sort_by_key(|d| (d.line, d.column));
    if diagnostics.len() > structure::MAX_PROBLEMS {
        let more = diagnostics.len() - structure::MAX_PROBLEMS;
        diagnostics.truncate(structure::MAX_PROBLEMS);
        if let Some(last) = diagnostics.last().cloned() {
            diagnostics.push(Diagnostic {
                code: "too_many_problems".into(),
                message: format!("{more} more problem(s) after this one are not shown"),
                help: Some("fix these first, then validate again".into()),
                ..last
            });
        }
    }
    diagnostics
}

/// `pos` moved inside `source`, so an editor or renderer can always show it:
/// the parser marks some errors one past the end of a line or of the file.
fn within(source: &str, pos: yaml::Pos) -> yaml::Pos {
    let lines: Vec<&str> = source.split('\n').collect();
    let line = pos.line.clamp(1, lines.len());
    let width = lines[line - 1].trim_end_matches('\r').chars().count();
    yaml::Pos { line, column: pos.column.clamp(1, width + 1) }
}

/// The JSON Schema generated from the manifest's types, pretty-printed as
/// committed in `integrations/manifest.schema.json` (which validation uses).
pub fn schema_json() -> String {
    let mut s = serde_json::to_string_pretty(&structure::generated_schema()).unwrap_or_default();
    s.push('\n');
    s
}
