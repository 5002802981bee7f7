//! First pass: the manifest's shape, checked against the JSON Schema generated
//! from the types. Every violation is collected (not just the first) and
//! explained in words, at the line and column it was written.

use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::ValidationError;
use serde_json::Value;

use super::diagnostic::{did_you_mean, display_path};
use super::model::Manifest;
use super::yaml::{locate, pointer_segments, Node, Pos};

/// The manifest's JSON Schema (draft 2020-12) as committed at
/// `integrations/manifest.schema.json`, which a test keeps equal to
/// [`generated_schema`] (`FERRY_UPDATE_SCHEMA=1 cargo test -p ferry-e2e
/// --test it manifest::schema_file` rewrites it). Parsing the committed text,
/// not generating it at run time, keeps schemars and the types' schema code
/// (~0.2 MB) out of the function binaries that validate manifests.
pub fn manifest_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| serde_json::from_str(COMMITTED_SCHEMA).unwrap_or(Value::Null))
}

const COMMITTED_SCHEMA: &str = include_str!("../../../../integrations/manifest.schema.json");

/// The manifest's JSON Schema generated from the types ([`Manifest`]), with its `$id`.
pub fn generated_schema() -> Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(Manifest)).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut schema {
        map.insert("$id".into(), Value::String("https://ferry.dev/schemas/manifest.schema.json".into()));
    }
    schema
}

fn validator() -> Option<&'static jsonschema::Validator> {
    static VALIDATOR: OnceLock<Option<jsonschema::Validator>> = OnceLock::new();
    VALIDATOR.get_or_init(|| jsonschema::validator_for(manifest_schema()).ok()).as_ref()
}

/// The most problems reported for one manifest; past this, the file is far
/// from a manifest and describing (and locating) each problem only costs time.
pub const MAX_PROBLEMS: usize = 100;

/// A structural problem, before it is attached to a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub pointer: String,
    pub pos: Pos,
    pub code: &'static str,
    pub message: String,
    pub help: Option<String>,
}

pub fn check(root: &Node, value: &Value) -> Vec<Problem> {
    let Some(validator) = validator() else {
        return vec![Problem {
            pointer: String::new(),
            pos: Pos { line: 1, column: 1 },
            code: "internal",
            message: "the manifest schema failed to compile; this is a bug in Ferry".into(),
            help: None,
        }];
    };
    let mut problems = Vec::new();
    // Enough to fix a file by; locating thousands more would only cost time.
    for error in validator.iter_errors(value).take(MAX_PROBLEMS) {
        explain(&error, root, value, &mut problems);
    }
    problems.sort_by_key(|p| (p.pos.line, p.pos.column));
    problems.dedup_by(|a, b| a.pointer == b.pointer && a.code == b.code && a.message == b.message);
    problems
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

pub(crate) fn kind_name(kind: &TypeKind) -> String {
    let one = |t: &jsonschema::JsonType| match t.to_string().as_str() {
        "object" => "a mapping".to_owned(),
        "array" => "a list".to_owned(),
        "string" => "a string".to_owned(),
        "integer" => "an integer".to_owned(),
        "number" => "a number".to_owned(),
        "boolean" => "true or false".to_owned(),
        "null" => "null".to_owned(),
        other => other.to_owned(),
    };
    match kind {
        TypeKind::Single(t) => one(t),
        TypeKind::Multiple(ts) => ts.iter().map(|t| one(&t)).collect::<Vec<_>>().join(" or "),
    }
}

fn pointer_get<'a>(value: &'a Value, pointer: &str) -> Option<&'a Value> {
    value.pointer(pointer)
}

/// The keys the schema allows at the object whose `additionalProperties` failed.
fn allowed_keys(schema_path: &str) -> Vec<String> {
    let Some(parent) = schema_path.strip_suffix("/additionalProperties") else { return Vec::new() };
    let schema = manifest_schema();
    let node = if parent.is_empty() { Some(schema) } else { schema.pointer(parent) };
    node.and_then(|n| n.get("properties"))
        .and_then(Value::as_object)
        .map(|props| props.keys().cloned().collect())
        .unwrap_or_default()
}

fn explain(error: &ValidationError<'_>, root: &Node, value: &Value, out: &mut Vec<Problem>) {
    let pointer = error.instance_path().to_string();
    let segs = pointer_segments(&pointer);
    let at = display_path(&pointer);
    let here = locate(root, &segs, false);
    let push = |out: &mut Vec<Problem>,
                pointer: String,
                pos: Pos,
                code: &'static str,
                message: String,
                help: Option<String>| { out.push(Problem { pointer, pos, code, message, help }) };
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let allowed = allowed_keys(&error.schema_path().to_string());
            for key in unexpected.iter().take(MAX_PROBLEMS) {
                let child = format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1"));
                let pos = locate(root, &pointer_segments(&child), true);
                let help = did_you_mean(key, allowed.iter().map(String::as_str))
                    .or_else(|| (!allowed.is_empty()).then(|| format!("allowed keys: {}", allowed.join(", "))));
                let place = if pointer.is_empty() { "at the top level".to_owned() } else { format!("in `{at}`") };
                push(out, child, pos, "unknown_key", format!("unknown key `{key}` {place}"), help);
            }
            if unexpected.len() > MAX_PROBLEMS {
                let more = unexpected.len() - MAX_PROBLEMS;
                push(
                    out,
                    pointer.clone(),
                    here,
                    "unknown_key",
                    format!("and {more} more unknown keys in `{at}`"),
                    None,
                );
            }
        }
        ValidationErrorKind::Type { kind } => {
            let found = pointer_get(value, &pointer).map(type_name).unwrap_or("nothing");
            push(
                out,
                pointer.clone(),
                here,
                "wrong_type",
                format!("`{at}` must be {}, found {found}", kind_name(kind)),
                boolean_help(kind, pointer_get(value, &pointer)),
            );
        }
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or("?");
            // The name of the incomplete mapping, where it has one, reads
            // better than its first key.
            push(
                out,
                pointer.clone(),
                locate(root, &segs, true),
                "missing_key",
                format!("`{at}` is missing the required key `{name}`"),
                None,
            );
        }
        ValidationErrorKind::Enum { options } => {
            let opts: Vec<String> =
                options.as_array().map(|a| a.iter().map(display_value).collect()).unwrap_or_default();
            let given = pointer_get(value, &pointer).and_then(Value::as_str).unwrap_or("");
            let help = did_you_mean(given, opts.iter().map(String::as_str));
            push(
                out,
                pointer.clone(),
                here,
                "invalid_value",
                format!("`{at}` must be one of: {}", opts.join(", ")),
                help,
            );
        }
        ValidationErrorKind::Constant { expected_value } => {
            push(
                out,
                pointer.clone(),
                here,
                "invalid_value",
                format!("`{at}` must be {}", display_value(expected_value)),
                None,
            );
        }
        ValidationErrorKind::AnyOf { context }
        | ValidationErrorKind::OneOfNotValid { context }
        | ValidationErrorKind::OneOfMultipleValid { context } => {
            explain_alternatives(&pointer, context, root, value, out);
        }
        ValidationErrorKind::Minimum { limit } | ValidationErrorKind::ExclusiveMinimum { limit } => {
            push(out, pointer.clone(), here, "invalid_value", format!("`{at}` must be at least {limit}"), None);
        }
        ValidationErrorKind::Maximum { limit } | ValidationErrorKind::ExclusiveMaximum { limit } => {
            push(out, pointer.clone(), here, "invalid_value", format!("`{at}` must be at most {limit}"), None);
        }
        _ => push(out, pointer.clone(), here, "invalid_value", format!("`{at}`: {error}"), None),
    }
}

/// YAML 1.1 spelled booleans `yes`/`no`/`on`/`off`; YAML 1.2 (and so Ferry) reads them as strings.
fn boolean_help(kind: &TypeKind, found: Option<&Value>) -> Option<String> {
    let wants_bool = match kind {
        TypeKind::Single(t) => t.to_string() == "boolean",
        TypeKind::Multiple(ts) => ts.iter().any(|t| t.to_string() == "boolean"),
    };
    let word = found.and_then(Value::as_str)?.to_ascii_lowercase();
    let truth = match word.as_str() {
        "yes" | "y" | "on" => "true",
        "no" | "n" | "off" => "false",
        _ => return None,
    };
    wants_bool.then(|| format!("write `{truth}`: YAML 1.2 reads `{word}` as text"))
}

fn display_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An untagged or tagged union failed. Pick the alternative the author most
/// likely meant: one whose type (and `type:` tag, for tagged unions) matches,
/// and explain only its errors. Otherwise say which shapes are accepted.
fn explain_alternatives(
    pointer: &str,
    context: &[Vec<ValidationError<'static>>],
    root: &Node,
    value: &Value,
    out: &mut Vec<Problem>,
) {
    let at = display_path(pointer);
    let here = locate(root, &pointer_segments(pointer), false);
    let tag_pointer = format!("{pointer}/type");
    let mismatch_at_root = |errors: &Vec<ValidationError<'static>>| {
        errors.iter().any(|e| {
            let p = e.instance_path().to_string();
            (p == pointer && matches!(e.kind(), ValidationErrorKind::Type { .. }))
                || (p == tag_pointer
                    && matches!(e.kind(), ValidationErrorKind::Constant { .. } | ValidationErrorKind::Enum { .. }))
        })
    };
    let viable: Vec<&Vec<ValidationError<'static>>> = context.iter().filter(|errs| !mismatch_at_root(errs)).collect();
    if let Some(best) = viable.iter().min_by_key(|errs| errs.len()) {
        for e in best.iter() {
            explain(e, root, value, out);
        }
        return;
    }
    // A tagged union with an unknown or missing `type`.
    let tags: Vec<String> = context
        .iter()
        .flat_map(|errs| errs.iter())
        .filter(|e| e.instance_path().to_string() == tag_pointer)
        .filter_map(|e| match e.kind() {
            ValidationErrorKind::Constant { expected_value } => Some(display_value(expected_value)),
            ValidationErrorKind::Enum { options } => options.as_array().and_then(|a| a.first()).map(display_value),
            _ => None,
        })
        .collect();
    if !tags.is_empty() {
        let given = value.pointer(&tag_pointer).and_then(Value::as_str).unwrap_or("");
        let pos = locate(root, &pointer_segments(&tag_pointer), false);
        let help = did_you_mean(given, tags.iter().map(String::as_str));
        out.push(Problem {
            pointer: tag_pointer.clone(),
            pos,
            code: "invalid_value",
            message: format!("`{}` must be one of: {}", display_path(&tag_pointer), tags.join(", ")),
            help,
        });
        return;
    }
    let mut kinds: Vec<String> = context
        .iter()
        .flat_map(|errs| errs.iter())
        .filter(|e| e.instance_path().to_string() == pointer)
        .filter_map(|e| match e.kind() {
            ValidationErrorKind::Type { kind } => Some(kind_name(kind)),
            _ => None,
        })
        .collect();
    kinds.sort();
    kinds.dedup();
    let found = value.pointer(pointer).map(type_name).unwrap_or("nothing");
    out.push(Problem {
        pointer: pointer.to_owned(),
        pos: here,
        code: "wrong_type",
        message: format!(
            "`{at}` must be {}, found {found}",
            if kinds.is_empty() { "another shape".to_owned() } else { kinds.join(" or ") }
        ),
        help: None,
    });
}
