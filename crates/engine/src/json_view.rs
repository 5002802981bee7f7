//! Records as template values without converting them: a record is shared
//! (`Arc`) with the template engine, and only the fields a template reads are
//! turned into template values, when it reads them. Converting every record
//! whole (`Value::from_serialize`) cost more than the rest of the mapping.

use std::sync::Arc;

use minijinja::value::{Enumerator, Object, ObjectRepr};
use minijinja::Value as Ctx;
use serde_json::Value;

/// A step from a record's root to the node a view shows.
#[derive(Debug, Clone)]
enum Step {
    Key(Arc<str>),
    Index(usize),
}

/// An object or array inside a shared record.
#[derive(Debug)]
struct JsonView {
    root: Arc<Value>,
    path: Vec<Step>,
}

impl JsonView {
    fn node(&self) -> &Value {
        // The path was built by walking this same immutable root, so every step resolves.
        self.path
            .iter()
            .try_fold(&*self.root, |v, step| match (v, step) {
                (Value::Object(m), Step::Key(k)) => m.get(&**k),
                (Value::Array(a), Step::Index(i)) => a.get(*i),
                _ => None,
            })
            .unwrap_or(&Value::Null)
    }

    fn child(self: &Arc<Self>, step: Step, value: &Value) -> Ctx {
        match value {
            Value::Object(_) | Value::Array(_) => {
                let mut path = Vec::with_capacity(self.path.len() + 1);
                path.extend(self.path.iter().cloned());
                path.push(step);
                Ctx::from_object(JsonView { root: self.root.clone(), path })
            }
            scalar => scalar_ctx(scalar),
        }
    }
}

fn scalar_ctx(v: &Value) -> Ctx {
    match v {
        Value::Null => Ctx::from(()),
        Value::Bool(b) => Ctx::from(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ctx::from(i)
            } else if let Some(u) = n.as_u64() {
                Ctx::from(u)
            } else {
                Ctx::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => Ctx::from(s.as_str()),
        // Not reached for views (they wrap containers); converts whole when it is.
        other => Ctx::from_serialize(other),
    }
}

impl Object for JsonView {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        match self.node() {
            Value::Array(_) => ObjectRepr::Seq,
            _ => ObjectRepr::Map,
        }
    }

    fn get_value(self: &Arc<Self>, key: &Ctx) -> Option<Ctx> {
        match self.node() {
            Value::Object(m) => {
                let k = key.as_str()?;
                m.get(k).map(|v| self.child(Step::Key(k.into()), v))
            }
            Value::Array(a) => {
                let i = i64::try_from(key.clone()).ok()?;
                let i = if i < 0 { a.len().checked_sub(i.unsigned_abs() as usize)? } else { i as usize };
                a.get(i).map(|v| self.child(Step::Index(i), v))
            }
            _ => None,
        }
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Ctx> {
        match self.node() {
            Value::Object(m) => m.get(key).map(|v| self.child(Step::Key(key.into()), v)),
            _ => self.get_value(&Ctx::from(key)),
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        match self.node() {
            Value::Object(m) => Enumerator::Values(m.keys().map(|k| Ctx::from(k.as_str())).collect()),
            Value::Array(a) => Enumerator::Seq(a.len()),
            _ => Enumerator::Empty,
        }
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        match self.node() {
            Value::Object(m) => Some(m.len()),
            Value::Array(a) => Some(a.len()),
            _ => Some(0),
        }
    }
}

/// A template value showing `record` without copying it.
pub fn view(record: Arc<Value>) -> Ctx {
    match &*record {
        Value::Object(_) | Value::Array(_) => Ctx::from_object(JsonView { root: record, path: Vec::new() }),
        scalar => scalar_ctx(scalar),
    }
}

/// A flow's context with `record` added; everything else is looked up in `base`.
#[derive(Debug)]
struct WithRecord {
    base: Ctx,
    record: Ctx,
}

impl Object for WithRecord {
    fn get_value(self: &Arc<Self>, key: &Ctx) -> Option<Ctx> {
        key.as_str().and_then(|k| self.get_value_by_str(k))
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Ctx> {
        if key == "record" {
            return Some(self.record.clone());
        }
        self.base.get_attr(key).ok().filter(|v| !v.is_undefined())
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let mut keys: Vec<Ctx> = self.base.try_iter().map(|it| it.collect()).unwrap_or_default();
        if !keys.iter().any(|k| k.as_str() == Some("record")) {
            keys.push(Ctx::from("record"));
        }
        Enumerator::Values(keys)
    }
}

/// `base` with `record` in scope, sharing the record instead of converting it.
pub fn with_record(base: &Ctx, record: Arc<Value>) -> Ctx {
    Ctx::from_object(WithRecord { base: base.clone(), record: view(record) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::Templates;

    fn render(template: &str, record: Value) -> String {
        let base = Ctx::from_serialize(serde_json::json!({"config": {"region": "eu"}}));
        Templates::new().render(template, &with_record(&base, Arc::new(record))).expect("renders")
    }

    #[test]
    fn templates_read_fields_nested_objects_arrays_and_the_base_context() {
        let rec = serde_json::json!({"name": "Ann", "props": {"tags": ["a", "b"], "n": 2.5}, "big": u64::MAX});
        assert_eq!(render("{{ record.name | upper }} {{ config.region }}", rec.clone()), "ANN eu");
        assert_eq!(render("{{ record.props.tags[1] }} {{ record.props.tags[-1] }}", rec.clone()), "b b");
        assert_eq!(render("{{ record.props.tags | length }} {{ record.props.n * 2 }}", rec.clone()), "2 5.0");
        assert_eq!(render("{{ record.big }}", rec.clone()), u64::MAX.to_string());
        assert_eq!(render("{% for t in record.props.tags %}{{ t }};{% endfor %}", rec.clone()), "a;b;");
        assert_eq!(render("{% for k in record.props %}{{ k }},{% endfor %}", rec.clone()), "n,tags,");
        assert_eq!(render("{{ 'name' in record }} {{ record is mapping }}", rec), "True True");
    }

    #[test]
    fn missing_fields_are_undefined_so_strict_templates_fail() {
        let base = Ctx::from_serialize(serde_json::json!({}));
        let ctx = with_record(&base, Arc::new(serde_json::json!({"a": 1})));
        assert!(Templates::new().render("{{ record.b.c }}", &ctx).is_err());
        assert!(Templates::new().render("{{ recrod }}", &ctx).is_err());
        assert_eq!(Templates::new().render("{{ record.b is defined }}", &ctx).expect("renders"), "False");
    }

    #[test]
    fn scalar_records_are_plain_values() {
        assert_eq!(render("{{ record + 1 }}", serde_json::json!(41)), "42");
        assert_eq!(render("{{ record }}", serde_json::json!("x")), "x");
    }
}
