//! Config schemas no configs can satisfy.
//!
//! JSON Schema itself accepts a `minimum` above its `maximum`, an empty `enum`,
//! a `default` its own schema refuses, or a `required` name nothing defines.
//! In a config schema each is a mistake that surfaces late: every job on the
//! release fails config validation, or the form starts from a default it then
//! refuses. Every subschema is checked: nested object properties, array items,
//! combinator branches and definitions.
//!
//! `required` names: a name must be defined by the object schema that requires
//! it (its `properties`, a matching `patternProperties` pattern, or an
//! `additionalProperties` schema), or, in an `allOf`/`anyOf`/`oneOf`/`not`/
//! `if`/`then`/`else` branch, by the object the branch belongs to. This is
//! stricter than JSON Schema, which lets `required` name anything unless
//! `additionalProperties: false`: the config form only offers declared
//! properties, so an undeclared required config can never be filled in there.
//! Schemas with a `$ref` count as defining every name (what the target
//! defines is not followed).

use serde_json::{Map, Value};

use super::checks::{escape, finding, Finding};
use super::diagnostic::did_you_mean;

/// Reports the contradictions in the config schema `schema`, found at `at`.
pub fn check(schema: &Value, at: &str, out: &mut Vec<Finding>) {
    let dialect = schema.get("$schema");
    walk(schema, at, &Context { dialect, pandium: false, outer: Names::default() }, true, out);
}

/// What a subschema is checked in.
struct Context<'a> {
    /// The root's `$schema`, so a subschema validates defaults in its dialect.
    dialect: Option<&'a Value>,
    /// Pandium's `min`/`max` stand for `minimum`/`maximum` (config properties only).
    pandium: bool,
    /// The names the enclosing object defines, for a branch's `required`.
    outer: Names<'a>,
}

/// The property names an object schema defines, for `required` to name.
#[derive(Clone, Default)]
struct Names<'a> {
    listed: Vec<&'a str>,
    patterns: Vec<&'a str>,
    /// Any name is defined: by an `additionalProperties` schema, or a `$ref`.
    open: bool,
    /// `additionalProperties: false`: a name not listed can never be present.
    closed: bool,
}

const BRANCHES: &[&str] = &["allOf", "anyOf", "oneOf"];
const SINGLE_BRANCHES: &[&str] = &["not", "if", "then", "else"];
const SUBSCHEMA_MAPS: &[&str] =
    &["properties", "patternProperties", "definitions", "$defs", "dependentSchemas", "dependencies"];
const SINGLE_SUBSCHEMAS: &[&str] = &[
    "additionalProperties",
    "additionalItems",
    "items",
    "prefixItems",
    "contains",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
];

fn walk<'a>(v: &'a Value, at: &str, cx: &Context<'a>, top: bool, out: &mut Vec<Finding>) {
    let Value::Object(s) = v else { return };
    let names = cx.outer.clone().with(s);
    check_range(s, at, cx.pandium, out);
    check_counts(s, at, out);
    check_enum(s, at, out);
    check_required(s, at, &names, out);
    check_default(s, at, cx, out);
    let fresh = |pandium| Context { dialect: cx.dialect, pandium, outer: Names::default() };
    let branch = Context { dialect: cx.dialect, pandium: false, outer: names.clone() };
    for key in SUBSCHEMA_MAPS {
        for (name, child) in s.get(*key).and_then(Value::as_object).into_iter().flatten() {
            let pandium = top && *key == "properties";
            walk(child, &format!("{at}/{}/{}", escape(key), escape(name)), &fresh(pandium), false, out);
        }
    }
    for key in SINGLE_SUBSCHEMAS {
        each_schema(s.get(*key), &format!("{at}/{key}"), |child, child_at| {
            walk(child, child_at, &fresh(false), false, out)
        });
    }
    for key in BRANCHES.iter().chain(SINGLE_BRANCHES) {
        each_schema(s.get(*key), &format!("{at}/{key}"), |child, child_at| walk(child, child_at, &branch, false, out));
    }
}

/// Calls `f` on a subschema, or on each of an array of subschemas.
fn each_schema<'v>(v: Option<&'v Value>, at: &str, mut f: impl FnMut(&'v Value, &str)) {
    match v {
        Some(Value::Array(items)) => items.iter().enumerate().for_each(|(i, item)| f(item, &format!("{at}/{i}"))),
        Some(child @ Value::Object(_)) => f(child, at),
        _ => {}
    }
}

impl<'a> Names<'a> {
    /// These names and those `s` defines, its branches' properties included
    /// (`allOf: [{properties: ...}]` composes an object).
    fn with(mut self, s: &'a Map<String, Value>) -> Self {
        let keys = |key: &str| s.get(key).and_then(Value::as_object).into_iter().flat_map(|m| m.keys());
        self.listed.extend(keys("properties").map(String::as_str));
        self.patterns.extend(keys("patternProperties").map(String::as_str));
        self.open |= s.get("additionalProperties").is_some_and(Value::is_object) || s.contains_key("$ref");
        self.closed |= s.get("additionalProperties") == Some(&Value::Bool(false));
        for key in BRANCHES.iter().chain(&["then", "else"]) {
            let mut found = Names::default();
            each_schema(s.get(*key), "", |child, _| {
                if let Value::Object(c) = child {
                    found = std::mem::take(&mut found).with(c);
                }
            });
            self.listed.append(&mut found.listed);
            self.patterns.append(&mut found.patterns);
            self.open |= found.open;
        }
        self
    }

    fn defines(&self, name: &str) -> bool {
        self.open || self.listed.contains(&name) || self.patterns.iter().any(|p| matches_pattern(p, name))
    }
}

/// Whether `name` matches a `patternProperties` pattern (by JSON Schema's own
/// regex rules); an invalid pattern is reported elsewhere and matches here.
fn matches_pattern(pattern: &str, name: &str) -> bool {
    match jsonschema::validator_for(&serde_json::json!({"pattern": pattern})) {
        Ok(v) => v.is_valid(&Value::String(name.to_owned())),
        Err(_) => true,
    }
}

fn check_required(s: &Map<String, Value>, at: &str, names: &Names, out: &mut Vec<Finding>) {
    let Some(Value::Array(required)) = s.get("required") else { return };
    for (i, name) in required.iter().enumerate().filter_map(|(i, r)| Some((i, r.as_str()?))) {
        if names.defines(name) {
            continue;
        }
        let (message, help) = if names.closed {
            let message = format!(
                "`{name}` is required, but `additionalProperties: false` forbids it: no value can satisfy this"
            );
            (message, Some(format!("declare `{name}` under `properties`, or stop requiring it")))
        } else {
            let help = did_you_mean(name, names.listed.iter().copied())
                .unwrap_or_else(|| format!("declare `{name}` under `properties`"));
            (format!("`{name}` is required but not defined in `properties`"), Some(help))
        };
        out.push(Finding { help, ..finding(format!("{at}/required/{i}"), "dangling_required", message) });
    }
}

fn check_enum(s: &Map<String, Value>, at: &str, out: &mut Vec<Finding>) {
    if s.get("enum").and_then(Value::as_array).is_some_and(Vec::is_empty) {
        out.push(Finding {
            help: Some("list the values allowed, or drop `enum`".into()),
            ..finding(format!("{at}/enum"), "unsatisfiable_schema", "an empty `enum` allows no value")
        });
    }
}

/// Lower and upper limits on lengths and counts.
const COUNTS: &[(&str, &str)] = &[
    ("minLength", "maxLength"),
    ("minItems", "maxItems"),
    ("minProperties", "maxProperties"),
    ("minContains", "maxContains"),
];

fn check_counts(s: &Map<String, Value>, at: &str, out: &mut Vec<Finding>) {
    for (min, max) in COUNTS {
        let (Some(lo), Some(hi)) = (s.get(*min), s.get(*max)) else { continue };
        if lo.as_f64().zip(hi.as_f64()).is_some_and(|(lo, hi)| lo > hi) {
            let message = format!("`{min}` {lo} is above `{max}` {hi}: no value can satisfy both");
            out.push(finding(format!("{at}/{min}"), "unsatisfiable_schema", message));
        }
    }
}

/// One end of a numeric range: the keyword that sets it, its value, and
/// whether the end itself is excluded.
struct End<'a> {
    key: &'a str,
    value: &'a Value,
    strict: bool,
}

impl End<'_> {
    fn number(&self) -> f64 {
        self.value.as_f64().unwrap_or_default()
    }
}

fn check_range(s: &Map<String, Value>, at: &str, pandium: bool, out: &mut Vec<Finding>) {
    let lower = end(s, pandium, ["minimum", "min", "exclusiveMinimum"], |a, b| a > b);
    let upper = end(s, pandium, ["maximum", "max", "exclusiveMaximum"], |a, b| a < b);
    let (Some(lo), Some(hi)) = (lower, upper) else { return };
    let integer = s.get("type").and_then(Value::as_str) == Some("integer");
    let message = if lo.number() > hi.number() {
        format!("`{}` {} is above `{}` {}: no value can satisfy both", lo.key, lo.value, hi.key, hi.value)
    } else if empty_between(&lo, &hi, integer) {
        let kind = if integer { "integer" } else { "number" };
        format!("`{}` {} and `{}` {} leave no {kind} between them", lo.key, lo.value, hi.key, hi.value)
    } else {
        return;
    };
    out.push(finding(format!("{at}/{}", lo.key), "unsatisfiable_schema", message));
}

/// The tightest end of a range among `[inclusive, pandium's spelling,
/// exclusive]`. Draft 4 spells an exclusive end as `exclusiveMinimum: true`
/// next to `minimum`; later drafts give the exclusive end its own number.
fn end<'a>(
    s: &'a Map<String, Value>,
    pandium: bool,
    [inclusive, alias, exclusive]: [&'a str; 3],
    tighter: fn(f64, f64) -> bool,
) -> Option<End<'a>> {
    let flag = s.get(exclusive) == Some(&Value::Bool(true));
    let inclusive_end = match s.get(inclusive).filter(|v| v.is_number()) {
        Some(value) => Some(End { key: inclusive, value, strict: flag }),
        None if pandium => s.get(alias).filter(|v| v.is_number()).map(|value| End { key: alias, value, strict: false }),
        None => None,
    };
    let exclusive_end =
        s.get(exclusive).filter(|v| v.is_number()).map(|value| End { key: exclusive, value, strict: true });
    match (inclusive_end, exclusive_end) {
        (Some(i), Some(e)) if tighter(i.number(), e.number()) => Some(i),
        (Some(_), Some(e)) => Some(e),
        (i, e) => i.or(e),
    }
}

/// Whether no number (or integer) lies between two ends with `lo <= hi`.
fn empty_between(lo: &End, hi: &End, integer: bool) -> bool {
    let (a, b) = (lo.number(), hi.number());
    if integer {
        let first = if lo.strict { a.floor() + 1.0 } else { a.ceil() };
        let last = if hi.strict { b.ceil() - 1.0 } else { b.floor() };
        return first > last;
    }
    a == b && (lo.strict || hi.strict)
}

/// A `default` must satisfy the schema it is the default of.
fn check_default(s: &Map<String, Value>, at: &str, cx: &Context, out: &mut Vec<Finding>) {
    let Some(default) = s.get("default") else { return };
    let mut own = s.clone();
    if cx.pandium {
        super::checks::standard_bounds(&mut own);
    }
    // Refs here point at dynamic options (filled in by runs) or tenant
    // metadata, both unknown at publish: they constrain nothing yet.
    drop_refs(&mut own);
    if let Some(dialect) = cx.dialect {
        own.insert("$schema".into(), dialect.clone());
    }
    // A schema that does not compile is reported by the compile check.
    let Ok(validator) = jsonschema::validator_for(&Value::Object(own)) else { return };
    let Some(e) = validator.iter_errors(default).next() else { return };
    let path = e.instance_path().to_string();
    let within = if path.is_empty() { String::new() } else { format!(" (at {path})") };
    let message = format!("`default` does not satisfy its own schema{within}: {e}");
    out.push(finding(format!("{at}/default"), "invalid_default", message));
}

/// Keywords whose values are data, not schemas: a `$ref` key there is data.
const DATA: &[&str] = &["enum", "const", "default", "examples"];

fn drop_refs(s: &mut Map<String, Value>) {
    s.remove("$ref");
    for (_, v) in s.iter_mut().filter(|(k, _)| !DATA.contains(&k.as_str())) {
        match v {
            Value::Object(child) => drop_refs(child),
            Value::Array(items) => items.iter_mut().filter_map(Value::as_object_mut).for_each(drop_refs),
            _ => {}
        }
    }
}
