//! A job's config form, built from a release's `configs.schema` + `uischema`,
//! and the typed values read back from a submitted form. One builder for
//! every audience: end customers on the connect page (`customer_configs`),
//! operators in the console (who also see controls marked `admin: true` when
//! they are platform admins). The values read back are only typed here; the
//! job create or update validates them against the schema.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::jobs::effective_config_schema_with_pending;
use ferry_core::manifest::model::UiElement;
use ferry_core::manifest::Manifest;
use ferry_core::model::DynamicOptions;

/// One entry of a form, in order. Sections open and close around their items.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "item", rename_all = "snake_case")]
pub enum FormItem {
    SectionStart { label: Option<String>, hint: Option<String> },
    SectionEnd,
    Label { text: String },
    Divider,
    Field(Field),
}

#[derive(Debug, Clone, Serialize)]
pub struct Field {
    pub name: String,
    pub label: String,
    pub hint: Option<String>,
    /// `text`, `number`, `integer`, `checkbox`, `date`, `select`, `multiselect`.
    pub input: &'static str,
    pub required: bool,
    /// Current value as text (text-like inputs); checked state; selected values.
    pub value: String,
    pub checked: bool,
    pub options: Vec<Choice>,
    /// The schema's `minimum` / `maximum` of a number, as text.
    pub min: Option<String>,
    pub max: Option<String>,
    /// A control the manifest marks `admin: true` (present only in admins' forms).
    pub admin: bool,
    /// A dynamic config whose options only an init run provides, and it has
    /// not provided them yet.
    pub pending: bool,
    /// Shown but not editable (operators' forms show pending dynamic configs so).
    pub disabled: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Choice {
    pub value: String,
    pub title: String,
    pub selected: bool,
}

/// Who fills the form in, which decides which controls it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// The end customer on the connect page: no admin controls.
    Customer,
    /// A person in the console; `admin` when a platform admin, who also gets
    /// the controls marked `admin: true`. Pending dynamic configs are shown
    /// disabled ("available after the init run").
    Operator { admin: bool },
}

/// A built form: its items and the effective schema they came from.
#[derive(Debug, Clone)]
pub struct ConfigForm {
    pub schema: Value,
    pub items: Vec<FormItem>,
}

/// A submitted value that is not of the field's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub name: String,
    pub message: String,
}

impl ConfigForm {
    /// The form of a release's configs with `configs` as the current values,
    /// `None` when the release declares no configs.
    pub fn build(
        manifest: &Manifest,
        configs: &Map<String, Value>,
        options: &DynamicOptions,
        audience: Audience,
    ) -> Option<ConfigForm> {
        let spec = manifest.configs.as_ref()?;
        let (schema, pending) = effective_config_schema_with_pending(manifest, options)?;
        let required = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        let mut b = Builder { schema, required, pending, audience, configs: configs.clone(), items: Vec::new() };
        match &spec.uischema {
            Some(el) => b.walk(el),
            // No uischema: every property, in schema order.
            None => {
                let names: Vec<String> = b
                    .schema
                    .get("properties")
                    .and_then(Value::as_object)
                    .map(|p| p.keys().cloned().collect())
                    .unwrap_or_default();
                for n in names {
                    b.field(&n, None, None, false, false);
                }
            }
        }
        Some(ConfigForm { schema: b.schema, items: b.items })
    }

    pub fn has_fields(&self) -> bool {
        self.fields().next().is_some()
    }

    pub fn fields(&self) -> impl Iterator<Item = &Field> {
        self.items.iter().filter_map(|i| match i {
            FormItem::Field(f) => Some(f),
            _ => None,
        })
    }

    /// `base` with the form's editable fields replaced by the submitted
    /// values (`form` holds name/value pairs; a multi-select sends one pair
    /// per choice). Fields the form does not show, or shows disabled, keep
    /// their values. Values that are not of their field's type are errors,
    /// one per field.
    pub fn read(&self, base: &Map<String, Value>, form: &[(String, String)]) -> (Map<String, Value>, Vec<FieldError>) {
        let mut configs = base.clone();
        let mut errors = Vec::new();
        let values = |name: &str| -> Vec<String> {
            form.iter().filter(|(k, _)| k == name).map(|(_, v)| v.trim().to_owned()).collect()
        };
        for f in self.fields().filter(|f| !f.disabled) {
            let first = values(&f.name).into_iter().next().unwrap_or_default();
            let value = match f.input {
                "checkbox" => Some(Value::Bool(!first.is_empty())),
                "multiselect" => Some(Value::Array(
                    values(&f.name).into_iter().filter(|v| !v.is_empty()).map(Value::String).collect(),
                )),
                _ if first.is_empty() => None,
                "integer" => match first.parse::<i64>() {
                    Ok(n) => Some(Value::from(n)),
                    Err(_) => {
                        errors.push(FieldError {
                            name: f.name.clone(),
                            message: format!("“{}” must be a whole number", f.label),
                        });
                        // Kept as typed, so a form shown again loses nothing; never saved with the error.
                        Some(Value::String(first))
                    }
                },
                "number" => match first.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
                    Some(n) => Some(Value::Number(n)),
                    None => {
                        errors.push(FieldError {
                            name: f.name.clone(),
                            message: format!("“{}” must be a number", f.label),
                        });
                        // Kept as typed, so a form shown again loses nothing; never saved with the error.
                        Some(Value::String(first))
                    }
                },
                // Select values come back as the option's text: keep the schema's type.
                "select" => Some(
                    self.schema
                        .get("properties")
                        .and_then(|p| p.get(&f.name))
                        .and_then(|p| p.get("type"))
                        .and_then(Value::as_str)
                        .filter(|t| matches!(*t, "integer" | "number" | "boolean"))
                        .and_then(|_| serde_json::from_str::<Value>(&first).ok())
                        .unwrap_or(Value::String(first)),
                ),
                _ => Some(Value::String(first)),
            };
            match value {
                Some(v) => configs.insert(f.name.clone(), v),
                None => configs.remove(&f.name),
            };
        }
        (configs, errors)
    }
}

fn property_name(scope: &str) -> Option<&str> {
    scope.strip_prefix("#/properties/").filter(|n| !n.is_empty() && !n.contains('/'))
}

fn choices(prop: &Value, current: &[String]) -> Vec<Choice> {
    let mk = |value: String, title: String| Choice { selected: current.contains(&value), value, title };
    if let Some(values) = prop.get("enum").and_then(Value::as_array) {
        return values.iter().map(text).map(|v| mk(v.clone(), v)).collect();
    }
    if let Some(options) = prop.get("oneOf").or_else(|| prop.get("anyOf")).and_then(Value::as_array) {
        return options
            .iter()
            .filter_map(|o| {
                let value = text(o.get("const")?);
                let title = o.get("title").and_then(Value::as_str).map_or(value.clone(), str::to_owned);
                Some(mk(value, title))
            })
            .collect();
    }
    Vec::new()
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

struct Builder {
    schema: Value,
    required: Vec<String>,
    /// Dynamic configs without options yet.
    pending: Vec<String>,
    audience: Audience,
    configs: Map<String, Value>,
    items: Vec<FormItem>,
}

impl Builder {
    fn shows(&self, admin: bool) -> bool {
        !admin || self.audience == Audience::Operator { admin: true }
    }

    fn field(&mut self, name: &str, label: Option<&str>, hint: Option<&str>, multi: bool, admin: bool) {
        let Some(prop) = self.schema.get("properties").and_then(|p| p.get(name)) else { return };
        let current = self.configs.get(name);
        let label = label
            .map(str::to_owned)
            .or_else(|| prop.get("title").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| name.replace('_', " "));
        let kind = prop.get("type").and_then(Value::as_str).unwrap_or("string");
        let pending = self.pending.iter().any(|p| p == name);
        let bound = |k: &str| prop.get(k).filter(|v| v.is_number()).map(Value::to_string);
        let mut field = Field {
            name: name.to_owned(),
            label,
            hint: hint
                .map(str::to_owned)
                .or_else(|| prop.get("description").and_then(Value::as_str).map(str::to_owned)),
            input: "text",
            required: self.required.iter().any(|r| r == name),
            value: current.map(text).unwrap_or_default(),
            checked: current.and_then(Value::as_bool).unwrap_or(false),
            options: Vec::new(),
            min: bound("minimum"),
            max: bound("maximum"),
            admin,
            pending,
            disabled: pending && matches!(self.audience, Audience::Operator { .. }),
        };
        if multi || kind == "array" {
            let selected: Vec<String> =
                current.and_then(Value::as_array).map(|a| a.iter().map(text).collect()).unwrap_or_default();
            field.input = "multiselect";
            field.options = prop.get("items").map(|i| choices(i, &selected)).unwrap_or_default();
        } else if !choices(prop, &[]).is_empty() {
            field.input = "select";
            field.options = choices(prop, &[field.value.clone()]);
        } else {
            field.input = match (kind, prop.get("format").and_then(Value::as_str)) {
                ("boolean", _) => "checkbox",
                ("integer", _) => "integer",
                ("number", _) => "number",
                (_, Some("date")) => "date",
                _ => "text",
            };
        }
        self.items.push(FormItem::Field(field));
    }

    fn walk(&mut self, el: &UiElement) {
        match el {
            UiElement::VerticalLayout { elements } | UiElement::HorizontalLayout { elements } => {
                elements.iter().for_each(|e| self.walk(e))
            }
            UiElement::Section { label, hint_text, subtitle, elements } => {
                self.items.push(FormItem::SectionStart {
                    label: label.clone(),
                    hint: hint_text.clone().or_else(|| subtitle.clone()),
                });
                elements.iter().for_each(|e| self.walk(e));
                self.items.push(FormItem::SectionEnd);
            }
            UiElement::Control { scope, label, hint_text, admin, .. } if self.shows(*admin) => {
                if let Some(name) = property_name(scope) {
                    self.field(name, label.as_deref(), hint_text.as_deref(), false, *admin);
                }
            }
            UiElement::MultiSelectControl { scope, label, hint_text, admin, .. } if self.shows(*admin) => {
                if let Some(name) = property_name(scope) {
                    self.field(name, label.as_deref(), hint_text.as_deref(), true, *admin);
                }
            }
            UiElement::Label { text, title } => {
                if let Some(t) = text.clone().or_else(|| title.clone()) {
                    self.items.push(FormItem::Label { text: t });
                }
            }
            UiElement::Divider {} => self.items.push(FormItem::Divider),
            _ => {}
        }
    }
}
