//! EZY-style field mapping: each target field from a template, a source path,
//! or a static value; optionally conditional, coerced to a type, defaulted.

use std::sync::Arc;

use minijinja::Value as Ctx;
use serde_json::{Map, Value};

use super::template::{get_path, Prepared, Templates};
use super::{json_view, parallel};
use ferry_core::error::{Error, Result};
use ferry_core::manifest::{FieldMapping, FieldType, Mapping};

/// A mapping with its templates and conditions looked up once per flow
/// instead of once per record.
pub struct Compiled<'a> {
    mapping: &'a Mapping,
    fields: Vec<(&'a String, &'a FieldMapping, Option<Prepared<'a>>, Option<Prepared<'a>>)>,
}

impl<'a> Compiled<'a> {
    pub fn new(mapping: &'a Mapping, templates: &'a Templates) -> Self {
        let fields = mapping
            .fields
            .iter()
            .map(|(field, rule)| {
                let (template, when) = match rule {
                    FieldMapping::Template(t) => (Some(templates.prepare(t)), None),
                    FieldMapping::Rule(r) => (
                        r.template.as_deref().map(|t| templates.prepare(t)),
                        r.when.as_deref().map(|c| templates.prepare_condition(c)),
                    ),
                };
                (field, rule, template, when)
            })
            .collect();
        Self { mapping, fields }
    }
}

/// A flow's mapping, owned so that its pages are mapped on rayon's pool while
/// the async worker awaits them: a slow template then holds a CPU thread, never
/// a thread the API answers on. Its own [`Templates`] keeps the compiled
/// templates from one page to the next.
pub struct Mapper {
    mapping: Arc<Mapping>,
    templates: Arc<Templates>,
}

impl Mapper {
    pub fn new(mapping: &Mapping) -> Self {
        Self { mapping: Arc::new(mapping.clone()), templates: Arc::new(Templates::new()) }
    }

    /// Maps a page off the async workers; the results in the records' order.
    pub async fn map_page(&self, records: Vec<Value>, base: &Ctx) -> Result<Vec<Result<Value>>> {
        self.off_the_workers(records, base, apply_all).await
    }

    /// [`Mapper::map_page`], each result with its source record, for flows
    /// that keep the records they cannot deliver. Mapping only reads the
    /// record, so it comes back without a copy (one copy with `keep_unmapped`).
    pub async fn map_page_keeping(&self, records: Vec<Value>, base: &Ctx) -> Result<Vec<(Result<Value>, Value)>> {
        self.off_the_workers(records, base, |c, r, b| parallel::map(r, |r| apply_keeping(c, r, b))).await
    }

    async fn off_the_workers<T: Send + 'static>(
        &self,
        records: Vec<Value>,
        base: &Ctx,
        f: impl FnOnce(&Compiled<'_>, Vec<Value>, &Ctx) -> Vec<T> + Send + 'static,
    ) -> Result<Vec<T>> {
        let (mapping, templates, base) = (self.mapping.clone(), self.templates.clone(), base.clone());
        let (tx, rx) = tokio::sync::oneshot::channel();
        rayon::spawn(move || {
            // rayon aborts the process on a panic in a spawned task; a panic
            // here fails the page instead.
            let mapped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                f(&Compiled::new(&mapping, &templates), records, &base)
            }));
            let _ = tx.send(mapped);
        });
        match rx.await {
            Ok(Ok(mapped)) => Ok(mapped),
            Ok(Err(_)) | Err(_) => Err(Error::invalid("mapping_failed", "mapping this page failed unexpectedly")),
        }
    }
}

/// Maps a page of records, in order, on every CPU when the page is large
/// (see [`parallel`]): pages are independent of each other's records.
pub fn apply_all(compiled: &Compiled<'_>, records: Vec<Value>, base: &Ctx) -> Vec<Result<Value>> {
    parallel::map(records, |r| apply(compiled, r, base))
}

/// Maps one record, consuming it (unmapped fields move into the output).
/// `base` is the flow's template context; `record` is added to it only when a
/// template or condition needs it, and then shared, not copied.
pub fn apply(compiled: &Compiled<'_>, record: Value, base: &Ctx) -> Result<Value> {
    apply_shared(compiled, Arc::new(record), base)
}

/// Maps one record and gives it back.
pub fn apply_keeping(compiled: &Compiled<'_>, record: Value, base: &Ctx) -> (Result<Value>, Value) {
    let record = Arc::new(record);
    let mapped = apply_shared(compiled, record.clone(), base);
    (mapped, Arc::try_unwrap(record).unwrap_or_else(|shared| (*shared).clone()))
}

fn apply_shared(compiled: &Compiled<'_>, record: Arc<Value>, base: &Ctx) -> Result<Value> {
    let mut with_record: Option<Ctx> = None;
    let mut ctx = || -> Ctx { with_record.get_or_insert_with(|| json_view::with_record(base, record.clone())).clone() };
    let mut mapped = Vec::with_capacity(compiled.fields.len());
    for (field, rule, template, when) in &compiled.fields {
        let value = match (rule, template) {
            (FieldMapping::Template(_), Some(t)) => Some(Value::String(t.render(&ctx())?)),
            (FieldMapping::Template(_), None) => None,
            (FieldMapping::Rule(r), _) => {
                if let Some(cond) = when {
                    if !cond.is_true(&ctx())? {
                        continue;
                    }
                }
                let raw = if let Some(path) = &r.from {
                    get_path(&record, path).cloned()
                } else if let Some(t) = template {
                    Some(Value::String(t.render(&ctx())?))
                } else {
                    r.value.clone()
                };
                let raw = match raw {
                    None | Some(Value::Null) => r.default.clone(),
                    Some(Value::String(s)) if s.is_empty() && r.default.is_some() => r.default.clone(),
                    other => other,
                };
                match (raw, r.kind) {
                    (Some(v), Some(kind)) => Some(
                        coerce(v, kind)
                            .map_err(|why| Error::invalid("mapping_failed", format!("field `{field}`: {why}")))?,
                    ),
                    (v, None) => v,
                    (None, Some(_)) => None,
                }
            }
        };
        mapped.push((*field, value.unwrap_or(Value::Null)));
    }
    // Templates return strings, so nothing holds the record any more once the context is gone.
    drop(with_record);
    let mut out = match compiled.mapping.keep_unmapped {
        true => match Arc::try_unwrap(record).unwrap_or_else(|shared| (*shared).clone()) {
            Value::Object(m) => m,
            _ => Map::new(),
        },
        false => Map::new(),
    };
    for (field, value) in mapped {
        out.insert(field.clone(), value);
    }
    Ok(Value::Object(out))
}

/// Converts a value to a mapping type; says why not when it cannot.
pub fn coerce(v: Value, kind: FieldType) -> std::result::Result<Value, String> {
    let text = |v: &Value| match v {
        Value::String(s) => s.trim().to_owned(),
        other => other.to_string(),
    };
    match kind {
        FieldType::String => Ok(match v {
            Value::String(s) => Value::String(s),
            Value::Null => Value::Null,
            other => Value::String(other.to_string()),
        }),
        FieldType::Integer => match &v {
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(v),
            Value::Number(n) => n
                .as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| Value::from(f as i64))
                .ok_or_else(|| format!("{n} is not a whole number")),
            Value::Bool(b) => Ok(Value::from(i64::from(*b))),
            _ => text(&v).parse::<i64>().map(Value::from).map_err(|_| format!("`{}` is not an integer", text(&v))),
        },
        FieldType::Number => match &v {
            Value::Number(_) => Ok(v),
            _ => text(&v)
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| format!("`{}` is not a number", text(&v))),
        },
        FieldType::Boolean => match &v {
            Value::Bool(_) => Ok(v),
            Value::Number(n) => Ok(Value::Bool(n.as_f64().is_some_and(|f| f != 0.0))),
            _ => match text(&v).to_ascii_lowercase().as_str() {
                "true" | "t" | "yes" | "y" | "1" => Ok(Value::Bool(true)),
                "false" | "f" | "no" | "n" | "0" | "" => Ok(Value::Bool(false)),
                other => Err(format!("`{other}` is not a boolean")),
            },
        },
        FieldType::Datetime => {
            let s = text(&v);
            if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(&s) {
                return Ok(Value::String(
                    dt.with_timezone(&chrono::Utc).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                ));
            }
            if let Ok(ms) = s.parse::<i64>() {
                // Epoch seconds or milliseconds (HubSpot and friends use ms).
                let secs = if ms.abs() > 100_000_000_000 { ms / 1000 } else { ms };
                if let Some(dt) = chrono::DateTime::from_timestamp(secs, 0) {
                    return Ok(Value::String(dt.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
                }
            }
            if let Ok(d) = chrono::NaiveDate::parse_from_str(&s, "%Y-%m-%d") {
                return Ok(Value::String(format!("{d}T00:00:00Z")));
            }
            Err(format!("`{s}` is not a date-time (RFC 3339, epoch or YYYY-MM-DD)"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::manifest::FieldRule;

    fn mapping(yaml_fields: serde_json::Value, keep: bool) -> Mapping {
        serde_json::from_value(serde_json::json!({"fields": yaml_fields, "keep_unmapped": keep})).expect("mapping")
    }

    fn run(m: &Mapping, record: Value) -> Value {
        let t = Templates::new();
        let ctx = Ctx::from_serialize(serde_json::json!({"record": record.clone(), "config": {"region": "eu"}}));
        apply(&Compiled::new(m, &t), record, &ctx).expect("maps")
    }

    #[test]
    fn templates_paths_statics_conditions_types_and_defaults() {
        let m = mapping(
            serde_json::json!({
                "email": "{{ record.props.email | lower }}",
                "age": {"from": "props.age", "type": "integer"},
                "region": {"template": "{{ config.region }}"},
                "source": {"value": "crm"},
                "vip": {"from": "props.vip", "type": "boolean", "when": "record.props.score > 50"},
                "country": {"from": "props.country", "default": "unknown"},
                "since": {"from": "props.created", "type": "datetime"},
            }),
            false,
        );
        let out = run(
            &m,
            serde_json::json!({"props": {"email": "A@B.COM", "age": "42", "score": 80, "vip": "yes", "created": 1700000000000i64}}),
        );
        assert_eq!(out["email"], "a@b.com");
        assert_eq!(out["age"], 42);
        assert_eq!(out["region"], "eu");
        assert_eq!(out["source"], "crm");
        assert_eq!(out["vip"], true);
        assert_eq!(out["country"], "unknown");
        assert_eq!(out["since"], "2023-11-14T22:13:20Z");
    }

    #[test]
    fn a_large_page_maps_in_order_with_each_failure_in_its_place() {
        let m = mapping(serde_json::json!({"n": {"from": "x", "type": "integer"}, "label": "{{ record.x }}!"}), false);
        let t = Templates::new();
        let records: Vec<Value> = (0..2000)
            .map(|i| if i % 7 == 3 { serde_json::json!({"x": "not a number"}) } else { serde_json::json!({"x": i}) })
            .collect();
        let out = apply_all(&Compiled::new(&m, &t), records, &Ctx::from_serialize(serde_json::json!({})));
        assert_eq!(out.len(), 2000);
        for (i, r) in out.iter().enumerate() {
            match r {
                Ok(v) => assert_eq!(v, &serde_json::json!({"n": i, "label": format!("{i}!")})),
                Err(e) => {
                    assert_eq!(i % 7, 3, "record {i} failed: {e}");
                    assert!(e.to_string().contains("field `n`"), "{e}");
                }
            }
        }
        assert_eq!(out.iter().filter(|r| r.is_err()).count(), (0..2000).filter(|i| i % 7 == 3).count());
    }

    #[test]
    fn false_conditions_leave_the_field_out() {
        let m = mapping(serde_json::json!({"vip": {"value": true, "when": "record.score > 50"}}), false);
        assert_eq!(run(&m, serde_json::json!({"score": 1})), serde_json::json!({}));
    }

    #[test]
    fn keep_unmapped_copies_the_rest() {
        let m = mapping(serde_json::json!({"b": {"value": 2}}), true);
        assert_eq!(run(&m, serde_json::json!({"a": 1})), serde_json::json!({"a": 1, "b": 2}));
    }

    #[test]
    fn coercion_failures_name_the_field() {
        let m = Mapping {
            entity: None,
            fields: [(
                "n".to_owned(),
                FieldMapping::Rule(FieldRule {
                    from: Some("x".into()),
                    template: None,
                    value: None,
                    when: None,
                    kind: Some(FieldType::Integer),
                    default: None,
                }),
            )]
            .into(),
            keep_unmapped: false,
        };
        let t = Templates::new();
        let rec = serde_json::json!({"x": "abc"});
        let err = apply(
            &Compiled::new(&m, &t),
            rec.clone(),
            &Ctx::from_serialize(serde_json::json!({"record": rec.clone()})),
        )
        .expect_err("fails");
        assert!(err.to_string().contains("field `n`"), "{err}");
    }
}
