//! A mapping's field mappings as people edit them in a text area, one per
//! line: `target_field = {{ template }}`, or `target_field = {"from": "path"}`
//! for a rule. Reading the lines is the console's; whether a mapping is valid
//! is the service's (`create_mapping`, `update_mapping`), whose problems
//! (JSON pointers `/fields/<name>/…`) are placed back on their lines here.

use std::collections::BTreeMap;

use ferry_core::manifest::FieldMapping;

/// A problem on one line (1-based), or of the whole text (`line` 0).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LineProblem {
    pub line: usize,
    pub field: String,
    pub message: String,
}

/// The text of a mapping's fields, one line each.
pub fn to_text(fields: &BTreeMap<String, FieldMapping>) -> String {
    fields
        .iter()
        .map(|(name, m)| match m {
            FieldMapping::Template(t) => format!("{name} = {t}"),
            FieldMapping::Rule(r) => format!("{name} = {}", serde_json::to_string(r).unwrap_or_default()),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The fields a text gives, each with its line; or every line that cannot be read.
pub fn parse(text: &str) -> Result<Vec<(usize, String, FieldMapping)>, Vec<LineProblem>> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some((name, value)) = trimmed.split_once('=') else {
            problems.push(LineProblem {
                line,
                field: String::new(),
                message:
                    "write the target field, then `=`, then a template or a rule, e.g. `email = {{ record.email }}`"
                        .into(),
            });
            continue;
        };
        let (name, value) = (name.trim().to_owned(), value.trim());
        if name.is_empty() {
            problems.push(LineProblem {
                line,
                field: name,
                message: "the target field's name is missing before `=`".into(),
            });
            continue;
        }
        if let Some(first) = seen.insert(name.clone(), line) {
            problems.push(LineProblem {
                line,
                field: name.clone(),
                message: format!("`{name}` is already mapped on line {first}"),
            });
            continue;
        }
        // A rule is a JSON object; a template never parses as one (`{{` is not JSON).
        let mapping = if value.starts_with('{') && !value.starts_with("{{") {
            match serde_json::from_str::<FieldMapping>(value) {
                Ok(m @ FieldMapping::Rule(_)) => m,
                Ok(FieldMapping::Template(_)) | Err(_) => {
                    problems.push(LineProblem {
                        line,
                        field: name.clone(),
                        message: "this rule is not a JSON object of `from`, `template`, `value` (and `when`, `type`, `default`)".into(),
                    });
                    continue;
                }
            }
        } else {
            FieldMapping::Template(value.to_owned())
        };
        out.push((line, name, mapping));
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// The field a JSON pointer of the service's problems names (`/fields/a~1b/template` → `a/b`).
fn field_of_pointer(pointer: &str) -> Option<String> {
    let rest = pointer.strip_prefix("/fields/")?;
    let segment = rest.split('/').next()?;
    Some(segment.replace("~1", "/").replace("~0", "~"))
}

/// The service's problems (`details`: `[{path, message, help}]`) on the lines of their fields.
pub fn place(details: &serde_json::Value, lines: &[(usize, String, FieldMapping)]) -> Vec<LineProblem> {
    details
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            let field = d["path"].as_str().and_then(field_of_pointer).unwrap_or_default();
            let line = lines.iter().find(|(_, n, _)| *n == field).map_or(0, |(l, _, _)| *l);
            let mut message = d["message"].as_str().unwrap_or_default().to_owned();
            if let Some(help) = d["help"].as_str() {
                message = format!("{message} ({help})");
            }
            LineProblem { line, field, message }
        })
        .collect()
}
