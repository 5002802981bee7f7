//! The config form end customers fill in on the connect page: built from a
//! job's `configs.schema` + `uischema` (controls marked `admin: true` are left
//! out), and the typed values read back from the submitted form, merged into
//! the job's configs and validated on the server like any job update.

use serde::Serialize;
use serde_json::{Map, Value};

use super::jobs::{effective_config_schema, JobPatch};
use crate::integrations::Integrations;
use crate::repo::lookups;
use ferry_core::error::{Error, Result};
use ferry_core::manifest::model::UiElement;
use ferry_core::model::{Connection, Job};

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
}

#[derive(Debug, Clone, Serialize)]
pub struct Choice {
    pub value: String,
    pub title: String,
    pub selected: bool,
}

/// The customer-editable config form of one job.
#[derive(Debug, Clone, Serialize)]
pub struct CustomerForm {
    pub job: String,
    pub title: String,
    pub items: Vec<FormItem>,
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
    configs: Map<String, Value>,
    items: Vec<FormItem>,
}

impl Builder {
    fn field(&mut self, name: &str, label: Option<&str>, hint: Option<&str>, multi: bool) {
        let Some(prop) = self.schema.get("properties").and_then(|p| p.get(name)) else { return };
        let current = self.configs.get(name);
        let label = label
            .map(str::to_owned)
            .or_else(|| prop.get("title").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| name.replace('_', " "));
        let kind = prop.get("type").and_then(Value::as_str).unwrap_or("string");
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
            UiElement::Control { scope, label, hint_text, admin, .. } if !admin => {
                if let Some(name) = property_name(scope) {
                    self.field(name, label.as_deref(), hint_text.as_deref(), false);
                }
            }
            UiElement::MultiSelectControl { scope, label, hint_text, admin, .. } if !admin => {
                if let Some(name) = property_name(scope) {
                    self.field(name, label.as_deref(), hint_text.as_deref(), true);
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

    fn has_fields(&self) -> bool {
        self.items.iter().any(|i| matches!(i, FormItem::Field(_)))
    }
}

impl Integrations<'_> {
    /// The job's manifest config schema (dynamic options filled in) and uischema.
    async fn job_config_spec(&self, job: &Job) -> Result<Option<(Value, Option<UiElement>)>> {
        let Some(release) = lookups::release_for(self.store, job).await? else { return Ok(None) };
        let Some(configs) = release.manifest.configs.as_ref() else { return Ok(None) };
        let schema = effective_config_schema(&release.manifest, &job.dynamic_options);
        Ok(schema.map(|s| (s, configs.uischema.clone())))
    }

    fn build_form(job: &Job, schema: &Value, ui: Option<&UiElement>) -> Builder {
        let required = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        let mut b = Builder { schema: schema.clone(), required, configs: job.configs.clone(), items: Vec::new() };
        match ui {
            Some(el) => b.walk(el),
            // No uischema: every property, in schema order.
            None => {
                let names: Vec<String> = schema
                    .get("properties")
                    .and_then(Value::as_object)
                    .map(|p| p.keys().cloned().collect())
                    .unwrap_or_default();
                for n in names {
                    b.field(&n, None, None, false);
                }
            }
        }
        b
    }

    /// The config forms of the jobs that bind this connection and let end customers set something.
    pub async fn customer_forms(&self, conn: &Connection) -> Result<Vec<CustomerForm>> {
        let mut forms = Vec::new();
        for job in lookups::all_jobs(self.store, &conn.tenant).await? {
            if !job.connections.values().any(|c| c == &conn.id) {
                continue;
            }
            let Some((schema, ui)) = self.job_config_spec(&job).await? else { continue };
            let b = Self::build_form(&job, &schema, ui.as_ref());
            if b.has_fields() {
                forms.push(CustomerForm { job: job.id.clone(), title: job.name.clone(), items: b.items });
            }
        }
        Ok(forms)
    }

    /// Saves the customer's submitted config values of one job bound to this
    /// connection. Only customer-visible fields change; the job update
    /// validates the result against the schema.
    pub async fn save_customer_configs(
        &self,
        conn: &Connection,
        job_id: &str,
        form: &[(String, String)],
    ) -> Result<()> {
        let job = lookups::job(self.store, &conn.tenant, job_id).await?.value;
        if !job.connections.values().any(|c| c == &conn.id) {
            return Err(Error::not_found("job", job_id));
        }
        let Some((schema, ui)) = self.job_config_spec(&job).await? else {
            return Err(Error::invalid("no_configs", "this integration has no settings to fill in"));
        };
        let b = Self::build_form(&job, &schema, ui.as_ref());
        let mut configs = job.configs.clone();
        let values = |name: &str| -> Vec<String> {
            form.iter().filter(|(k, _)| k == name).map(|(_, v)| v.trim().to_owned()).collect()
        };
        for item in &b.items {
            let FormItem::Field(f) = item else { continue };
            let first = values(&f.name).into_iter().next().unwrap_or_default();
            let value = match f.input {
                "checkbox" => Some(Value::Bool(!first.is_empty())),
                "multiselect" => Some(Value::Array(
                    values(&f.name).into_iter().filter(|v| !v.is_empty()).map(Value::String).collect(),
                )),
                _ if first.is_empty() => None,
                "integer" => Some(Value::from(first.parse::<i64>().map_err(|_| {
                    Error::invalid("invalid_configs", format!("“{}” must be a whole number", f.label))
                })?)),
                "number" => Some(
                    first
                        .parse::<f64>()
                        .ok()
                        .and_then(serde_json::Number::from_f64)
                        .map(Value::Number)
                        .ok_or_else(|| Error::invalid("invalid_configs", format!("“{}” must be a number", f.label)))?,
                ),
                // Select values come back as the option's text: keep the schema's type.
                "select" => Some(
                    schema
                        .pointer(&format!("/properties/{}/type", f.name))
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
        self.jobs.update_job(&conn.tenant, job_id, JobPatch { configs: Some(configs), ..Default::default() }).await?;
        Ok(())
    }
}
