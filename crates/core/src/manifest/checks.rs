//! Second pass, on the typed manifest: references between its parts, the config
//! JSON Schema, and templates. Each problem names the JSON pointer it is about;
//! `mod.rs` turns pointers into lines and columns.

use std::collections::{BTreeSet, HashSet};

use serde_json::Value;

use super::diagnostic::did_you_mean;
use super::model::{
    FieldMapping, Flow, FormatVersion, Manifest, Mapping, Pagination, Rejections, Schedule, Source, Target, UiElement,
};
use crate::schedule::{self, Plan, ScheduleError};
use crate::template_limits::{
    self, TooComplex, MAX_BRACKET_DEPTH, MAX_EXPRESSION_DEPTH, MAX_STATEMENT_DEPTH, MAX_TEMPLATE_BYTES,
};

/// A problem at a JSON pointer; `key` marks problems about the key itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub pointer: String,
    pub key: bool,
    pub code: &'static str,
    pub message: String,
    pub help: Option<String>,
}

pub(super) fn finding(pointer: impl Into<String>, code: &'static str, message: impl Into<String>) -> Finding {
    Finding { pointer: pointer.into(), key: false, code, message: message.into(), help: None }
}

/// Variables templates may use, by where the template runs.
pub const REQUEST_VARS: &[&str] = &["config", "state", "connection", "page", "partition", "now", "secrets", "run"];
pub const RECORD_VARS: &[&str] = &["config", "state", "connection", "partition", "now", "record", "run"];
pub const BATCH_VARS: &[&str] = &["config", "state", "connection", "now", "record", "records", "run"];

/// The checks that need only the raw value, for manifests whose shape is wrong
/// elsewhere: their config schema problems are reported in the same pass.
pub fn check_raw(value: &Value) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(schema) = value.pointer("/configs/schema").filter(|s| s.is_object()) {
        check_config_schema(schema, "/configs/schema", &mut out);
    }
    out
}

pub fn check(m: &Manifest) -> Vec<Finding> {
    let mut out = Vec::new();
    check_runnable(m, &mut out);
    if let Some(configs) = &m.configs {
        check_config_schema(&configs.schema, "/configs/schema", &mut out);
        if let Some(ui) = &configs.uischema {
            check_ui(ui, &configs.schema, "/configs/uischema", &mut out);
        }
    }
    if let Some(meta) = &m.metadata_schema {
        check_json_schema(&meta.schema, "/metadata_schema/schema", true, &mut out);
    }
    check_connectors(m, &mut out);
    check_flows(m, &mut out);
    check_version(m, &mut out);
    check_schedule(m, &mut out);
    check_webhooks(m, &mut out);
    check_config_names(m, &mut out);
    out
}

/// `config.<name>` in a template must name a property of `configs.schema`: a
/// misspelt one would only fail at run time, on every run.
fn check_config_names(m: &Manifest, out: &mut Vec<Finding>) {
    let names: Vec<&str> = m
        .configs
        .as_ref()
        .and_then(|c| c.schema.get("properties"))
        .and_then(Value::as_object)
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default();
    // The serialized manifest has the source's keys, so its pointers are the source's.
    let Ok(value) = serde_json::to_value(m) else { return };
    let env = env();
    for section in ["connectors", "flows"] {
        if let Some(v) = value.get(section) {
            walk_config_names(v, &format!("/{section}"), None, &names, &env, out);
        }
    }
}

fn walk_config_names(
    v: &Value,
    at: &str,
    key: Option<&str>,
    names: &[&str],
    env: &minijinja::Environment<'static>,
    out: &mut Vec<Finding>,
) {
    match v {
        Value::String(s) => {
            let is_template = s.contains("{{") || s.contains("{%");
            // Templates refused by the limits are reported where they are checked.
            let used = if matches!(key, Some("filter" | "when")) && !is_template {
                if template_limits::check_expression(s).is_err() {
                    return;
                }
                env.compile_expression(s).map(|e| e.undeclared_variables(true)).ok()
            } else if is_template && template_limits::check_template(s).is_ok() {
                env.template_from_str(s).map(|t| t.undeclared_variables(true)).ok()
            } else {
                None
            };
            let mut unknown: Vec<String> = used
                .into_iter()
                .flatten()
                .filter_map(|u| u.strip_prefix("config.").and_then(|r| r.split('.').next()).map(str::to_owned))
                .filter(|name| !names.contains(&name.as_str()))
                .collect();
            unknown.sort();
            unknown.dedup();
            for name in unknown {
                let help = if names.is_empty() {
                    Some("declare it under `configs.schema.properties`".to_owned())
                } else {
                    did_you_mean(&name, names.iter().copied())
                        .or_else(|| Some(format!("configs: {}", names.join(", "))))
                };
                out.push(Finding {
                    help,
                    ..finding(at, "invalid_template", format!("template uses `config.{name}`, which is not a config"))
                });
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk_config_names(item, &format!("{at}/{i}"), None, names, env, out);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                walk_config_names(item, &format!("{at}/{}", escape(k)), Some(k), names, env, out);
            }
        }
        _ => {}
    }
}

fn check_runnable(m: &Manifest, out: &mut Vec<Finding>) {
    if m.run.is_none() && m.flows.is_empty() {
        out.push(Finding {
            help: Some("Pandium-style integrations set `run` (and `build`); declarative ones list `flows`".into()),
            ..finding("", "nothing_to_run", "the manifest has neither `run` nor `flows`, so a run would do nothing")
        });
    }
    if m.run.is_some() && m.base.is_none() {
        out.push(Finding {
            help: Some("e.g. `base: node:20.9.0`".into()),
            key: true,
            ..finding("/run", "missing_key", "`run` needs `base`, the runtime to run it on")
        });
    }
}

/// Valid JSON Schema (meta-schema validation, reference resolution).
fn check_json_schema(schema: &Value, pointer: &str, resolve_refs: bool, out: &mut Vec<Finding>) {
    if let Some(s) = schema.get("$schema").and_then(Value::as_str) {
        const KNOWN: &[&str] = &[
            "http://json-schema.org/draft-04/schema#",
            "http://json-schema.org/draft-06/schema#",
            "http://json-schema.org/draft-07/schema#",
            "https://json-schema.org/draft/2019-09/schema",
            "https://json-schema.org/draft/2020-12/schema",
        ];
        if !KNOWN.contains(&s) {
            out.push(finding(
                format!("{pointer}/$schema"),
                "invalid_json_schema",
                format!("unknown JSON Schema dialect `{s}`"),
            ));
            return;
        }
    }
    match jsonschema::meta::validator_for(schema) {
        Ok(meta) => {
            let mut any = false;
            let reported: HashSet<String> = out.iter().map(|f| f.pointer.clone()).collect();
            for e in meta.iter_errors(schema) {
                any = true;
                let at = e.instance_path().to_string();
                if reported.contains(&format!("{pointer}{at}")) {
                    continue;
                }
                let (message, help) = meta_problem(&e, schema.pointer(&at));
                out.push(Finding { help, ..finding(format!("{pointer}{at}"), "invalid_json_schema", message) });
            }
            if any || !resolve_refs {
                return;
            }
        }
        Err(e) => {
            out.push(finding(pointer, "invalid_json_schema", format!("not a valid JSON Schema: {}", e.masked())));
            return;
        }
    }
    if let Err(e) = jsonschema::validator_for(schema) {
        out.push(finding(pointer, "invalid_json_schema", format!("the JSON Schema does not compile: {}", e.masked())));
    }
}

/// A meta-schema violation in words: which keyword, what it must be, what was found.
fn meta_problem(e: &jsonschema::ValidationError<'_>, found: Option<&Value>) -> (String, Option<String>) {
    use jsonschema::error::ValidationErrorKind;
    let at = e.instance_path().to_string();
    let keyword = match super::yaml::pointer_segments(&at).last() {
        Some(super::yaml::Segment::Key(k)) => format!("`{k}`"),
        Some(super::yaml::Segment::Index(i)) => format!("item {i}"),
        None => "the schema".to_owned(),
    };
    match e.kind() {
        ValidationErrorKind::Type { kind } => {
            let wanted = super::structure::kind_name(kind);
            let found_name = found.map(super::structure::type_name).unwrap_or("nothing");
            let help = match found {
                Some(Value::String(s)) if wanted.contains("number") && s.trim().parse::<f64>().is_ok() => {
                    Some(format!("write the number without quotes: {}", s.trim()))
                }
                Some(Value::String(_) | Value::Bool(_)) if at.ends_with("/required") => {
                    Some("list the required configs: `required: [name, other_name]`".into())
                }
                _ => None,
            };
            (format!("not a valid JSON Schema: {keyword} must be {wanted}, found {found_name}"), help)
        }
        _ => (format!("not a valid JSON Schema: {keyword}: {}", e.masked()), None),
    }
}

/// Pandium's config schema: an object with typed properties and `$ref`s into
/// `definitions` (the placeholders of dynamic configs).
fn check_config_schema(schema: &Value, pointer: &str, out: &mut Vec<Finding>) {
    let definitions: BTreeSet<&str> = schema
        .get("definitions")
        .and_then(Value::as_object)
        .map(|d| d.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let mut dangling = false;
    walk_refs(schema, pointer, &mut |at, r| {
        let Some(name) = r.strip_prefix("#/definitions/") else {
            if r.starts_with("#/metadata/") {
                return; // Pandium: a config whose options come from tenant metadata.
            }
            out.push(Finding {
                help: Some("config schemas refer to their own definitions: `$ref: '#/definitions/<name>'`".into()),
                ..finding(at, "dangling_ref", format!("`$ref: {r}` does not point into `definitions`"))
            });
            dangling = true;
            return;
        };
        if !definitions.contains(name) {
            out.push(Finding {
                help: did_you_mean(name, definitions.iter().copied()),
                ..finding(at, "dangling_ref", format!("`$ref: {r}` points to a definition that does not exist"))
            });
            dangling = true;
        }
    });
    match schema.get("properties") {
        Some(Value::Object(props)) => {
            for (name, prop) in props {
                let at = format!("{pointer}/properties/{}", escape(name));
                if prop.get("type").is_none()
                    && prop.get("$ref").is_none()
                    && prop.get("oneOf").is_none()
                    && prop.get("enum").is_none()
                {
                    out.push(Finding {
                        help: Some("add `type: string` (or boolean, integer, number, array)".into()),
                        key: true,
                        ..finding(at.clone(), "missing_key", format!("config `{name}` needs a `type` (or a `$ref`)"))
                    });
                }
                check_pandium_bounds(prop, &at, out);
                check_type_names(prop, &at, out);
            }
        }
        Some(_) => {}
        None => out.push(finding(pointer, "missing_key", "the config schema needs `properties`, one per config")),
    }
    // First, so the meta-schema does not report the same keyword again.
    super::satisfiable::check(schema, pointer, out);
    let mut standard = pandium_to_json_schema(schema);
    drop_metadata_refs(&mut standard);
    check_json_schema(&standard, pointer, !dangling, out);
}

const JSON_TYPES: &[&str] = &["string", "number", "integer", "boolean", "array", "object", "null"];

fn check_type_names(prop: &Value, at: &str, out: &mut Vec<Finding>) {
    let types: Vec<&str> = match prop.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return,
    };
    for t in types {
        if !JSON_TYPES.contains(&t) {
            out.push(Finding {
                help: did_you_mean(t, JSON_TYPES.iter().copied())
                    .or_else(|| Some(format!("types: {}", JSON_TYPES.join(", ")))),
                ..finding(format!("{at}/type"), "invalid_json_schema", format!("`{t}` is not a JSON Schema type"))
            });
        }
    }
}

/// `min`/`max` are Pandium's spelling of `minimum`/`maximum`; they must be numbers.
fn check_pandium_bounds(prop: &Value, at: &str, out: &mut Vec<Finding>) {
    for k in ["min", "max"] {
        if let Some(v) = prop.get(k) {
            if !v.is_number() {
                out.push(finding(format!("{at}/{k}"), "wrong_type", format!("`{k}` must be a number, found {v}")));
            }
        }
    }
}

/// Pandium's dialect as standard JSON Schema (`min`/`max` → `minimum`/`maximum`).
pub fn pandium_to_json_schema(schema: &Value) -> Value {
    let mut s = schema.clone();
    if let Some(Value::Object(props)) = s.get_mut("properties") {
        props.values_mut().filter_map(Value::as_object_mut).for_each(standard_bounds);
    }
    s
}

/// A config property's Pandium `min`/`max` as `minimum`/`maximum`.
pub(super) fn standard_bounds(p: &mut serde_json::Map<String, Value>) {
    // A non-numeric `min` is reported as such; renamed, it would be
    // reported a second time as a bad `minimum`.
    for (pandium, standard) in [("min", "minimum"), ("max", "maximum")] {
        if p.get(pandium).is_some_and(Value::is_number) {
            if let Some(v) = p.remove(pandium) {
                p.entry(standard).or_insert(v);
            }
        }
    }
}

/// `$ref: '#/metadata/...'` (options from tenant metadata, unknown until runs
/// write it) points outside the schema, so it cannot be compiled; for the
/// compile check it constrains nothing.
fn drop_metadata_refs(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if map.get("$ref").and_then(Value::as_str).is_some_and(|r| r.starts_with("#/metadata/")) {
                map.remove("$ref");
            }
            map.values_mut().for_each(drop_metadata_refs);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_metadata_refs),
        _ => {}
    }
}

fn walk_refs(v: &Value, at: &str, f: &mut dyn FnMut(&str, &str)) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let here = format!("{at}/{}", escape(k));
                if k == "$ref" {
                    if let Some(r) = child.as_str() {
                        f(&here, r);
                    }
                } else {
                    walk_refs(child, &here, f);
                }
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                walk_refs(child, &format!("{at}/{i}"), f);
            }
        }
        _ => {}
    }
}

pub fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn check_ui(el: &UiElement, schema: &Value, at: &str, out: &mut Vec<Finding>) {
    let props: Vec<&str> = schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default();
    match el {
        UiElement::VerticalLayout { elements }
        | UiElement::HorizontalLayout { elements }
        | UiElement::Section { elements, .. } => {
            for (i, e) in elements.iter().enumerate() {
                check_ui(e, schema, &format!("{at}/elements/{i}"), out);
            }
        }
        UiElement::Control { scope, .. } | UiElement::MultiSelectControl { scope, .. } => {
            let scope_at = format!("{at}/scope");
            let Some(name) = scope.strip_prefix("#/properties/") else {
                out.push(Finding {
                    help: Some("scopes look like `#/properties/<config name>`".into()),
                    ..finding(scope_at, "unknown_scope", format!("scope `{scope}` does not point at a config property"))
                });
                return;
            };
            if !props.contains(&name) {
                out.push(Finding {
                    help: did_you_mean(name, props.iter().copied()),
                    ..finding(
                        scope_at,
                        "unknown_scope",
                        format!("scope `{scope}` points at no property of `configs.schema`"),
                    )
                });
                return;
            }
            if let UiElement::MultiSelectControl { .. } = el {
                let prop = &schema["properties"][name];
                let is_array = prop.get("type").and_then(Value::as_str) == Some("array");
                if !is_array {
                    out.push(finding(
                        scope_at,
                        "invalid_value",
                        format!("MultiSelectControl needs an array property, but `{name}` is not `type: array`"),
                    ));
                }
            }
        }
        UiElement::Label { .. } | UiElement::Divider {} => {}
    }
}

fn check_connectors(m: &Manifest, out: &mut Vec<Finding>) {
    let mut seen = HashSet::new();
    for (i, name) in m.connectors.names().iter().enumerate() {
        if !seen.insert(*name) {
            out.push(finding(
                format!("/connectors/{i}"),
                "duplicate_name",
                format!("connector `{name}` is listed twice"),
            ));
        }
        let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            let at = match &m.connectors {
                super::model::Connectors::Slugs(_) => format!("/connectors/{i}"),
                super::model::Connectors::Defined(_) => format!("/connectors/{}", escape(name)),
            };
            out.push(Finding {
                key: matches!(m.connectors, super::model::Connectors::Defined(_)),
                ..finding(
                    at,
                    "invalid_value",
                    format!("connector name `{name}` may only contain letters, digits, `-` and `_`"),
                )
            });
        }
    }
    if let super::model::Connectors::Defined(defs) = &m.connectors {
        for (name, def) in defs {
            let at = format!("/connectors/{}", escape(name));
            if let Some(url) = &def.base_url {
                check_template(url, &format!("{at}/base_url"), REQUEST_VARS, out);
            }
            for (h, v) in &def.headers {
                check_template(v, &format!("{at}/headers/{}", escape(h)), REQUEST_VARS, out);
            }
            if def.max_response_bytes.is_some_and(|n| n == 0 || n > MAX_RESPONSE_BYTES_CEILING) {
                out.push(finding(
                    format!("{at}/max_response_bytes"),
                    "invalid_value",
                    format!("`max_response_bytes` must be between 1 and {MAX_RESPONSE_BYTES_CEILING}"),
                ));
            }
            if let Some(r) = def.rate_limit {
                if !(r.per_second.is_finite() && r.per_second > 0.0) {
                    out.push(finding(
                        format!("{at}/rate_limit/per_second"),
                        "invalid_value",
                        "`per_second` must be a number above 0",
                    ));
                }
                if r.burst.is_some_and(|b| !(b.is_finite() && b >= 1.0)) {
                    out.push(finding(format!("{at}/rate_limit/burst"), "invalid_value", "`burst` must be at least 1"));
                }
            }
            // A catalogue provider (integrations/providers/) brings its own OAuth endpoints.
            let catalogued = crate::providers::get(m.connectors.provider(name)).is_some_and(|p| p.oauth.is_some());
            if def.auth == Some(super::model::AuthKind::Oauth2) && def.oauth.is_none() && !catalogued {
                out.push(Finding {
                    help: Some("add `oauth: {token_url: ..., authorize_url: ..., scopes: [...]}`".into()),
                    key: true,
                    ..finding(
                        at.clone(),
                        "missing_key",
                        format!("connector `{name}` uses `auth: oauth2` but has no `oauth` section"),
                    )
                });
            }
        }
    }
}

/// The highest `max_response_bytes` a connector may ask for: pages are held
/// in memory, two at a time.
pub const MAX_RESPONSE_BYTES_CEILING: u64 = 1024 * 1024 * 1024;

fn check_flows(m: &Manifest, out: &mut Vec<Finding>) {
    let names: Vec<&str> = m.flows.iter().map(|f| f.name.as_str()).collect();
    let mut seen = HashSet::new();
    for (i, flow) in m.flows.iter().enumerate() {
        let at = format!("/flows/{i}");
        if !seen.insert(flow.name.as_str()) {
            out.push(finding(
                format!("{at}/name"),
                "duplicate_name",
                format!("flow name `{}` is used twice", flow.name),
            ));
        }
        let valid = !flow.name.is_empty()
            && flow.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !valid {
            out.push(finding(
                format!("{at}/name"),
                "invalid_value",
                "flow names use lowercase letters, digits, `-` and `_`",
            ));
        }
        check_flow(m, flow, &at, &names, out);
    }
}

fn connector_ref(m: &Manifest, name: &str, at: String, out: &mut Vec<Finding>) {
    if !m.connectors.contains(name) {
        let known = m.connectors.names();
        let help = did_you_mean(name, known.iter().copied()).or_else(|| {
            Some(if known.is_empty() {
                "declare it under `connectors`".to_owned()
            } else {
                format!("declared connectors: {}", known.join(", "))
            })
        });
        out.push(Finding {
            help,
            ..finding(at, "unknown_connector", format!("connector `{name}` is not declared in `connectors`"))
        });
    }
}

fn check_flow(m: &Manifest, flow: &Flow, at: &str, names: &[&str], out: &mut Vec<Finding>) {
    match &flow.source {
        Source::Http { connector, request, filter, pagination, incremental, partition, .. } => {
            connector_ref(m, connector, format!("{at}/source/connector"), out);
            check_template(&request.path, &format!("{at}/source/request/path"), REQUEST_VARS, out);
            for (k, v) in &request.query {
                check_template(v, &format!("{at}/source/request/query/{}", escape(k)), REQUEST_VARS, out);
            }
            for (k, v) in &request.headers {
                check_template(v, &format!("{at}/source/request/headers/{}", escape(k)), REQUEST_VARS, out);
            }
            if let Some(body) = &request.body {
                check_value_templates(body, &format!("{at}/source/request/body"), REQUEST_VARS, out);
            }
            if let Some(f) = filter {
                check_expression(f, &format!("{at}/source/filter"), RECORD_VARS, out);
            }
            if let Some(Pagination::Offset { limit: 0, .. }) = pagination {
                out.push(finding(
                    format!("{at}/source/pagination/limit"),
                    "invalid_value",
                    "`limit` must be at least 1",
                ));
            }
            if let Some(inc) = incremental {
                if let Some(lb) = &inc.lookback {
                    if parse_duration(lb).is_none() {
                        out.push(Finding {
                            help: Some("use a number and a unit: `30s`, `15m`, `2h`, `1d`".into()),
                            ..finding(
                                format!("{at}/source/incremental/lookback"),
                                "invalid_value",
                                format!("`{lb}` is not a duration"),
                            )
                        });
                    }
                }
            }
            if let Some(p) = partition {
                if p.flow == flow.name {
                    out.push(finding(
                        format!("{at}/source/partition/flow"),
                        "invalid_value",
                        "a flow cannot be partitioned by itself",
                    ));
                } else if !names.contains(&p.flow.as_str()) {
                    out.push(Finding {
                        help: did_you_mean(&p.flow, names.iter().copied()),
                        ..finding(
                            format!("{at}/source/partition/flow"),
                            "unknown_flow",
                            format!("flow `{}` does not exist", p.flow),
                        )
                    });
                }
            }
        }
        Source::Webhook { filter, .. } => {
            if let Some(f) = filter {
                check_expression(f, &format!("{at}/source/filter"), RECORD_VARS, out);
            }
            if m.webhooks.is_none() {
                out.push(Finding {
                    help: Some("add a `webhooks` section saying how deliveries are verified".into()),
                    key: true,
                    ..finding(
                        format!("{at}/source"),
                        "missing_key",
                        "a `webhook` source needs the manifest's `webhooks` section",
                    )
                });
            }
        }
    }
    if let Some(mapping) = &flow.mapping {
        check_mapping(mapping, &format!("{at}/mapping"), out);
    }
    match &flow.target {
        Target::Http { connector, path, headers, batch_size, body, idempotency_key, rejections, .. } => {
            if let Some(r) = rejections {
                check_rejections(r, &format!("{at}/target/rejections"), out);
            }
            connector_ref(m, connector, format!("{at}/target/connector"), out);
            // A request carries one `record`, or with batching the `records` of the batch.
            let unbatched = if *batch_size > 1 { "record" } else { "records" };
            let vars: Vec<&str> = BATCH_VARS.iter().copied().filter(|v| *v != unbatched).collect();
            check_template(path, &format!("{at}/target/path"), &vars, out);
            for (k, v) in headers {
                check_template(v, &format!("{at}/target/headers/{}", escape(k)), &vars, out);
            }
            if *batch_size == 0 {
                out.push(finding(
                    format!("{at}/target/batch_size"),
                    "invalid_value",
                    "`batch_size` must be at least 1",
                ));
            }
            if let Some(b) = body {
                check_value_templates(b, &format!("{at}/target/body"), &vars, out);
            }
            if let Some(k) = idempotency_key {
                check_template(k, &format!("{at}/target/idempotency_key"), RECORD_VARS, out);
            }
        }
        Target::File { path, .. } => check_template(path, &format!("{at}/target/path"), BATCH_VARS, out),
        Target::Options { definition, value, title } => {
            let defs: Vec<&str> = m
                .configs
                .as_ref()
                .and_then(|c| c.schema.get("definitions"))
                .and_then(Value::as_object)
                .map(|d| d.keys().map(String::as_str).collect())
                .unwrap_or_default();
            if !defs.contains(&definition.as_str()) {
                out.push(Finding {
                    help: did_you_mean(definition, defs.iter().copied())
                        .or_else(|| Some("dynamic configs are `$ref`s to `configs.schema.definitions.<name>`".into())),
                    ..finding(
                        format!("{at}/target/definition"),
                        "dangling_ref",
                        format!("definition `{definition}` does not exist in `configs.schema.definitions`"),
                    )
                });
            }
            check_template(value, &format!("{at}/target/value"), RECORD_VARS, out);
            if let Some(t) = title {
                check_template(t, &format!("{at}/target/title"), RECORD_VARS, out);
            }
        }
    }
}

/// A partial-failure answer names each failed record one way: by index or by key.
fn check_rejections(r: &Rejections, at: &str, out: &mut Vec<Finding>) {
    if r.index.is_some() == r.key.is_some() {
        out.push(Finding {
            help: Some("`index: <path>` when entries give the record's position in the batch, `key: {entry, record}` when they name a field of the record".into()),
            ..finding(at.to_owned(), "invalid_value", "`rejections` needs exactly one of `index` and `key`")
        });
    }
    let empty = |p: &str| p.trim().is_empty() || p.split('.').any(str::is_empty);
    let paths = [("path", Some(&r.path)), ("index", r.index.as_ref()), ("message", r.message.as_ref())];
    let keys = r.key.iter().flat_map(|k| [("key/entry", Some(&k.entry)), ("key/record", Some(&k.record))]);
    for (name, p) in paths.into_iter().chain(keys) {
        if p.is_some_and(|p| empty(p)) {
            out.push(finding(
                format!("{at}/{name}"),
                "invalid_value",
                "a dotted path of field names, e.g. `errors` or `context.ids`",
            ));
        }
    }
}

/// The API error code of a refused mapping: templates past the limits get their
/// own code, so a client can tell "too complex" from "wrong".
pub fn mapping_error_code(findings: &[Finding]) -> &'static str {
    match findings.iter().any(|f| f.code == template_limits::CODE) {
        true => template_limits::CODE,
        false => "invalid_mapping",
    }
}

pub fn check_mapping(mapping: &Mapping, at: &str, out: &mut Vec<Finding>) {
    for (field, rule) in &mapping.fields {
        let fat = format!("{at}/fields/{}", escape(field));
        match rule {
            FieldMapping::Template(t) => check_template(t, &fat, RECORD_VARS, out),
            FieldMapping::Rule(r) => {
                let sources =
                    [r.from.is_some(), r.template.is_some(), r.value.is_some()].iter().filter(|b| **b).count();
                if sources != 1 {
                    out.push(Finding {
                        help: Some("`from: properties.email`, `template: '{{ ... }}'` or `value: 42`".into()),
                        key: true,
                        ..finding(
                            fat.clone(),
                            "invalid_value",
                            format!("field `{field}` needs exactly one of `from`, `template` or `value`"),
                        )
                    });
                }
                if let Some(t) = &r.template {
                    check_template(t, &format!("{fat}/template"), RECORD_VARS, out);
                }
                if let Some(w) = &r.when {
                    check_expression(w, &format!("{fat}/when"), RECORD_VARS, out);
                }
            }
        }
    }
}

/// The default schedule and the offered presets must compile by the rule jobs
/// and the scheduler use: a default that does not would refuse every job
/// created without a schedule.
fn check_schedule(m: &Manifest, out: &mut Vec<Finding>) {
    let Some(spec) = &m.schedule else { return };
    if let Some(default) = &spec.default {
        if let Err(e) = Plan::compile(default) {
            out.push(schedule_finding("/schedule/default", e));
        }
        if let Err(e) = schedule::offered(spec, default, "this manifest") {
            let help = match default {
                Schedule::Simple(_) => "make the default one of the offered `presets`, or offer it too",
                Schedule::Cron(_) => "set `allow_cron: true`, or make the default a preset",
            };
            out.push(Finding { help: Some(help.into()), ..schedule_finding("/schedule/default", e) });
        }
    }
    for (i, preset) in spec.presets.iter().flatten().enumerate() {
        if let Err(e) = Plan::compile(&schedule::bare(*preset)) {
            out.push(finding(format!("/schedule/presets/{i}"), "invalid_value", e.message));
        }
    }
}

/// A schedule problem at the key of the schedule at `at` it is about.
fn schedule_finding(at: &str, e: ScheduleError) -> Finding {
    let pointer = match e.field {
        Some(field) => format!("{at}/{field}"),
        None => at.to_owned(),
    };
    // Unquoted, YAML 1.1 tools read `06:30` as a number (sexagesimal 390).
    let help = (e.field == Some("at")).then(|| "quote it: `at: '06:30'`".to_owned());
    Finding { help, ..finding(pointer, "invalid_value", e.message) }
}

/// Pandium's format versions, as numbers or strings: 0.4 is documented, 0.5
/// and 1.0 appear in its samples; a 2.x would be a format Ferry does not know.
fn check_version(m: &Manifest, out: &mut Vec<Finding>) {
    let number = match &m.version {
        None => return,
        Some(FormatVersion::Number(n)) => Some(*n),
        Some(FormatVersion::Text(t)) => t.trim().parse::<f64>().ok(),
    };
    if !number.is_some_and(|n| n > 0.0 && n < 2.0) {
        out.push(Finding {
            help: Some("`version: 0.4` (Pandium's documented version) or `version: 1.0` (its newer samples)".into()),
            ..finding("/version", "invalid_value", "`version` must be a Pandium format version 0.x or 1.x")
        });
    }
}

fn check_webhooks(m: &Manifest, out: &mut Vec<Finding>) {
    let Some(w) = &m.webhooks else { return };
    if let Some(connector) = &w.connector {
        if !m.connectors.contains(connector) {
            out.push(Finding {
                help: did_you_mean(connector, m.connectors.names()),
                ..finding(
                    "/webhooks/connector",
                    "unknown_connector",
                    format!("connector `{connector}` is not declared"),
                )
            });
        }
    }
    if let Some(flow) = &w.flow {
        match m.flows.iter().find(|f| &f.name == flow) {
            None => {
                let names: Vec<&str> = m.flows.iter().map(|f| f.name.as_str()).collect();
                out.push(Finding {
                    help: did_you_mean(flow, names.iter().copied()),
                    ..finding("/webhooks/flow", "unknown_flow", format!("flow `{flow}` does not exist"))
                });
            }
            Some(f) if !matches!(f.source, Source::Webhook { .. }) => {
                out.push(finding(
                    "/webhooks/flow",
                    "invalid_value",
                    format!("flow `{flow}` must have a `webhook` source to receive deliveries"),
                ));
            }
            Some(_) => {}
        }
    }
}

fn check_value_templates(v: &Value, at: &str, vars: &[&str], out: &mut Vec<Finding>) {
    match v {
        Value::String(s) => check_template(s, at, vars, out),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check_value_templates(item, &format!("{at}/{i}"), vars, out);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                check_value_templates(item, &format!("{at}/{}", escape(k)), vars, out);
            }
        }
        _ => {}
    }
}

fn env() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env
}

/// Templates past the limits of [`template_limits`] are refused before they
/// are compiled: compiling them could overflow the stack or fold huge constants.
fn too_complex(checked: Result<(), TooComplex>, at: &str, out: &mut Vec<Finding>) -> bool {
    let Err(e) = checked else { return false };
    let help = match e.code == template_limits::CODE {
        true => format!(
            "templates may be {MAX_TEMPLATE_BYTES} bytes long and nest {MAX_EXPRESSION_DEPTH} operators, filters \
             or lookups, {MAX_BRACKET_DEPTH} brackets and {MAX_STATEMENT_DEPTH} block statements deep"
        ),
        false => "expressions look like `record.status == 'active'`".to_owned(),
    };
    out.push(Finding { help: Some(help), ..finding(at, e.code, format!("template is refused: {e}")) });
    true
}

/// A template must compile and use only the variables in scope where it runs.
pub fn check_template(source: &str, at: &str, vars: &[&str], out: &mut Vec<Finding>) {
    if !source.contains("{{") && !source.contains("{%") && !source.contains("{#") {
        return;
    }
    if too_complex(template_limits::check_template(source), at, out) {
        return;
    }
    let env = env();
    match env.template_from_str(source) {
        Err(e) => out.push(Finding {
            help: Some("templates use minijinja (Jinja2) syntax: `{{ config.name }}`".into()),
            ..finding(
                at,
                "invalid_template",
                format!("template does not compile: {}", e.detail().unwrap_or("syntax error")),
            )
        }),
        Ok(t) => unknown_vars(t.undeclared_variables(false), at, vars, out),
    }
}

/// An expression (filters, conditions) must compile and use only known variables.
pub fn check_expression(source: &str, at: &str, vars: &[&str], out: &mut Vec<Finding>) {
    if too_complex(template_limits::check_expression(source), at, out) {
        return;
    }
    let env = env();
    match env.compile_expression(source) {
        Err(e) => out.push(Finding {
            help: Some("expressions look like `record.status == 'active'`".into()),
            ..finding(
                at,
                "invalid_template",
                format!("expression does not compile: {}", e.detail().unwrap_or("syntax error")),
            )
        }),
        Ok(expr) => unknown_vars(expr.undeclared_variables(false), at, vars, out),
    }
}

fn unknown_vars(used: HashSet<String>, at: &str, vars: &[&str], out: &mut Vec<Finding>) {
    let mut used: Vec<String> = used.into_iter().collect();
    used.sort();
    for v in used {
        if !vars.contains(&v.as_str()) {
            out.push(Finding {
                help: did_you_mean(&v, vars.iter().copied())
                    .or_else(|| Some(format!("available here: {}", vars.join(", ")))),
                ..finding(at, "invalid_template", format!("template uses `{v}`, which is not defined here"))
            });
        }
    }
}

/// `30s`, `15m`, `2h`, `1d` as seconds.
pub fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return None,
    };
    n.checked_mul(mult)
}
