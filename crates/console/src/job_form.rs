//! What the job forms share (creating a job, its settings, its schedule):
//! the release choice, the config fields (built by the service's one config
//! form builder), the schedule fields with their preview (computed by the
//! jobs service), and the service's refusals placed beside the field they
//! concern. No rule is decided here: the forms carry values to the services
//! and show what they answer.

use std::collections::BTreeMap;

use minijinja::{context, Value};
use serde::Serialize;
use serde_json::Map;

use crate::session::Workspace;
use ferry_core::manifest::{CronSchedule, Manifest, Preset, Schedule, SimpleSchedule, Weekday};
use ferry_core::model::{AuthKind, Channel, Integration, ReleasePin};
use ferry_core::schedule::preset_name;
use ferry_core::Error;
use ferry_service::config_form::{Audience, ConfigForm, FormItem};
use ferry_service::repo::PageRequest;

/// A submitted form as name/value pairs: multi-selects send a name once per choice.
pub use crate::forms::{Pairs, PairsBody};

/// The prefix of config fields' names, so a config named `name` or `csrf`
/// cannot collide with the form's own fields.
pub const CFG: &str = "cfg.";
/// The prefix of connector bindings' names.
pub const CONN: &str = "conn.";

/// The first value of `name`, or "".
pub fn first<'a>(pairs: &'a Pairs, name: &str) -> &'a str {
    pairs.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
}

/// Whether the person signed in is a platform admin (who also sees the
/// config controls a manifest marks `admin: true`).
pub fn audience(ws: &Workspace) -> Audience {
    Audience::Operator { admin: ws.signed.session.principal.is_platform_admin() }
}

// ---- The release: a channel or a specific release ----

/// A pin as a form value: `default`, `latest` or the release number.
pub fn pin_value(pin: &ReleasePin) -> String {
    match pin {
        ReleasePin::Channel { channel: Channel::Default } => "default".into(),
        ReleasePin::Channel { channel: Channel::Latest } => "latest".into(),
        ReleasePin::Specific { number } => number.to_string(),
    }
}

pub fn parse_pin(v: &str) -> Option<ReleasePin> {
    match v {
        "" | "default" => Some(ReleasePin::Channel { channel: Channel::Default }),
        "latest" => Some(ReleasePin::Channel { channel: Channel::Latest }),
        n => n.parse().ok().map(|number| ReleasePin::Specific { number }),
    }
}

/// How many releases the dropdown lists (newest first); older ones stay
/// reachable by number through the API.
const RELEASES_LISTED: u32 = 100;

/// The release dropdown: the two channels (with the release each names
/// now), then the releases, newest first.
pub async fn release_options(ws: &Workspace, integration: &Integration, selected: &str) -> Result<Vec<Value>, Error> {
    let page = ws
        .hub()
        .integrations()
        .list_releases(&integration.name, &PageRequest { limit: Some(RELEASES_LISTED), cursor: None })
        .await?;
    let now = |n: Option<u32>| n.map_or("no release yet".to_owned(), |n| format!("release {n} now"));
    let mut out = vec![
        context! { value => "default", title => format!("Default channel ({})", now(integration.default_release)), selected => selected == "default" || selected.is_empty() },
        context! { value => "latest", title => format!("Latest channel ({})", now(Some(integration.latest_release).filter(|n| *n > 0))), selected => selected == "latest" },
    ];
    for r in &page.items {
        let value = r.number.to_string();
        let default = if integration.default_release == Some(r.number) { " · default" } else { "" };
        out.push(context! {
            title => format!("Release {} · {}{default}", r.number, r.created_at.format("%Y-%m-%d")),
            selected => selected == value,
            value,
        });
    }
    Ok(out)
}

// ---- Config fields ----

/// The form's items for a template, each field with its error (if any).
pub fn config_items(form: Option<&ConfigForm>, errors: &BTreeMap<String, String>) -> Vec<Value> {
    let Some(form) = form else { return Vec::new() };
    form.items
        .iter()
        .map(|item| {
            let error = match item {
                FormItem::Field(f) => errors.get(&format!("{CFG}{}", f.name)).cloned(),
                _ => None,
            };
            context! { error, ..Value::from_serialize(item) }
        })
        .collect()
}

/// The configs a submitted form holds: `base` with the form's editable
/// fields replaced; values not of their field's type are errors by field.
pub fn read_configs(
    form: Option<&ConfigForm>,
    base: &Map<String, serde_json::Value>,
    pairs: &Pairs,
) -> (Map<String, serde_json::Value>, BTreeMap<String, String>) {
    let Some(form) = form else { return (base.clone(), BTreeMap::new()) };
    let fields: Pairs =
        pairs.iter().filter_map(|(k, v)| k.strip_prefix(CFG).map(|k| (k.to_owned(), v.clone()))).collect();
    let (configs, errors) = form.read(base, &fields);
    (configs, errors.into_iter().map(|e| (format!("{CFG}{}", e.name), e.message)).collect())
}

// ---- Connectors ----

/// The connector slots of a release, each with the tenant's connection
/// profiles of its provider to bind.
pub async fn connector_slots(
    ws: &Workspace,
    manifest: &Manifest,
    bound: &BTreeMap<String, String>,
    errors: &BTreeMap<String, String>,
) -> Result<Vec<Value>, Error> {
    let mut profiles = Vec::new();
    let mut cursor = None;
    // A tenant has a handful of connection profiles; read them all.
    loop {
        let page = ws.hub().connections().list_connections(ws.id(), &PageRequest { limit: Some(100), cursor }).await?;
        profiles.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let connectors = &manifest.connectors;
    Ok(connectors
        .names()
        .into_iter()
        .map(|name| {
            let provider = connectors.provider(name);
            let def = connectors.definition(name);
            let auth = def.and_then(|d| d.auth).or_else(|| ferry_core::providers::get(provider).map(|p| p.auth));
            let selected = bound.get(name).map(String::as_str).unwrap_or("");
            let options: Vec<Value> = profiles
                .iter()
                .filter(|c| c.connector == provider)
                .map(|c| {
                    context! {
                        value => c.id,
                        title => format!("{} ({})", c.name, status_text(c.status)),
                        selected => c.id == selected,
                    }
                })
                .collect();
            context! {
                name,
                field => format!("{CONN}{name}"),
                provider,
                required => connectors.is_required(name),
                description => def.and_then(|d| d.description.clone()),
                oauth => auth == Some(AuthKind::Oauth2),
                options,
                create_href => create_href(ws.id(), provider, auth),
                error => errors.get(&format!("{CONN}{name}")).cloned(),
            }
        })
        .collect())
}

/// The new-profile form for a connector: its catalogue provider, or (for a
/// system the manifest defines itself) "another system" with the connector's
/// provider name and sign-in kind already filled, so the link never lands
/// on "choose a provider from the list".
fn create_href(tenant: &str, provider: &str, auth: Option<AuthKind>) -> String {
    let enc = crate::activity::encode;
    if ferry_core::providers::get(provider).is_some() {
        return format!("/t/{tenant}/connections/new?provider={}", enc(provider));
    }
    let kind = auth.map(crate::connection_fields::kind_name).unwrap_or_default();
    format!("/t/{tenant}/connections/new?provider=other&connector={}&auth_kind={}", enc(provider), enc(kind))
}

fn status_text(s: ferry_core::model::ConnectionStatus) -> &'static str {
    match s {
        ferry_core::model::ConnectionStatus::Connected => "connected",
        ferry_core::model::ConnectionStatus::Error => "needs attention",
        ferry_core::model::ConnectionStatus::Disconnected => "not connected yet",
    }
}

/// The bindings a submitted form holds (connectors left empty are unbound).
pub fn read_connections(pairs: &Pairs) -> BTreeMap<String, String> {
    pairs
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(CONN)?.to_owned(), v.trim().to_owned())))
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

// ---- The schedule ----

const PRESETS: [Preset; 11] = [
    Preset::Every5Minutes,
    Preset::Every10Minutes,
    Preset::Every15Minutes,
    Preset::Every30Minutes,
    Preset::Hourly,
    Preset::Every2Hours,
    Preset::Every4Hours,
    Preset::Every6Hours,
    Preset::Every12Hours,
    Preset::Daily,
    Preset::Weekly,
];

const WEEKDAYS: [Weekday; 7] = [
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
    Weekday::Saturday,
    Weekday::Sunday,
];

fn weekday_name(d: Weekday) -> String {
    serde_json::to_value(d).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// The schedule fields as typed: `mode` is `simple` (a preset the manifest
/// offers), `advanced` (cron and timezone) or `none` (manual runs only).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScheduleInput {
    pub mode: String,
    pub preset: String,
    pub at: String,
    pub day: String,
    pub timezone: String,
    pub cron: String,
    pub cron_timezone: String,
}

impl ScheduleInput {
    pub fn from_pairs(pairs: &Pairs) -> Self {
        let f = |n: &str| first(pairs, n).trim().to_owned();
        Self {
            mode: f("schedule_mode"),
            preset: f("preset"),
            at: f("at"),
            day: f("day"),
            timezone: f("timezone"),
            cron: f("cron"),
            cron_timezone: f("cron_timezone"),
        }
    }

    pub fn from_schedule(s: Option<&Schedule>) -> Self {
        match s {
            None => Self { mode: "none".into(), ..Self::default() },
            Some(Schedule::Simple(s)) => Self {
                mode: "simple".into(),
                preset: preset_name(s.preset),
                at: s.at.clone().unwrap_or_default(),
                day: s.day.map(weekday_name).unwrap_or_default(),
                timezone: s.timezone.clone().unwrap_or_default(),
                ..Self::default()
            },
            Some(Schedule::Cron(c)) => Self {
                mode: "advanced".into(),
                cron: c.cron.clone(),
                cron_timezone: c.timezone.clone().unwrap_or_default(),
                ..Self::default()
            },
        }
    }

    /// The schedule the fields describe; what is wrong is for the schedule
    /// field. Only the shape is read here: the jobs service decides validity.
    pub fn to_schedule(&self) -> Result<Option<Schedule>, String> {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        match self.mode.as_str() {
            "none" => Ok(None),
            "advanced" => {
                if self.cron.is_empty() {
                    return Err("Enter a cron expression, e.g. `0 6 * * 1-5`.".into());
                }
                Ok(Some(Schedule::Cron(CronSchedule { cron: self.cron.clone(), timezone: opt(&self.cron_timezone) })))
            }
            _ => {
                let preset: Preset = serde_json::from_value(serde_json::Value::String(self.preset.clone()))
                    .map_err(|_| "Choose how often the job runs.".to_owned())?;
                // The time and day fields belong to the presets that use them; others ignore them.
                let anchored = matches!(preset, Preset::Daily | Preset::Weekly);
                let day = if preset == Preset::Weekly && !self.day.is_empty() {
                    Some(
                        serde_json::from_value(serde_json::Value::String(self.day.clone()))
                            .map_err(|_| "Choose a day of the week.".to_owned())?,
                    )
                } else {
                    None
                };
                Ok(Some(Schedule::Simple(SimpleSchedule {
                    preset,
                    at: if anchored { opt(&self.at) } else { None },
                    day,
                    timezone: opt(&self.timezone),
                })))
            }
        }
    }
}

/// The schedule fields for a template: what the manifest offers, the values,
/// and the preview (words and next five fire times) or the error.
pub fn schedule_view(
    ws: &Workspace,
    integration: &str,
    manifest: Option<&Manifest>,
    input: &ScheduleInput,
    error: Option<String>,
    allow_none: bool,
) -> Value {
    let spec = manifest.and_then(|m| m.schedule.as_ref());
    let offered: Vec<Preset> = spec.and_then(|s| s.presets.clone()).unwrap_or_else(|| PRESETS.to_vec());
    let allow_cron = spec.is_none_or(|s| s.allow_cron);
    let presets: Vec<Value> = offered
        .iter()
        .map(|p| {
            let value = preset_name(*p);
            context! { title => value.replace('_', " "), selected => value == input.preset, value }
        })
        .collect();
    let days: Vec<Value> = WEEKDAYS
        .iter()
        .map(|d| {
            let value = weekday_name(*d);
            let mut title = value.clone();
            if let Some(c) = title.get_mut(0..1) {
                c.make_ascii_uppercase();
            }
            context! { selected => value == input.day, title, value }
        })
        .collect();
    let (mut preview, mut error) = (None, error);
    if error.is_none() {
        match (input.to_schedule(), manifest) {
            (Ok(Some(s)), Some(m)) => match ws.hub().jobs().preview_schedule(integration, m, &s, 5) {
                Ok(p) => {
                    preview = Some(context! {
                        text => p.text,
                        next => p.next.iter().map(|t| crate::runs::when(*t)).collect::<Vec<_>>(),
                    })
                }
                Err(e) => error = Some(message_of(&e)),
            },
            (Err(e), _) => error = Some(e),
            _ => {}
        }
    }
    let mode = match input.mode.as_str() {
        "advanced" if allow_cron => "advanced",
        "none" if allow_none => "none",
        _ => "simple",
    };
    context! {
        mode,
        input => Value::from_serialize(input),
        presets,
        days,
        allow_cron,
        allow_none,
        preview,
        error,
    }
}

// ---- The service's refusals, beside their fields ----

/// Errors by field (`name`, `release`, `conn.<connector>`, `cfg.<config>`,
/// `schedule`), and what concerns no one field.
#[derive(Debug, Default)]
pub struct Placed {
    pub fields: BTreeMap<String, String>,
    pub general: Vec<String>,
}

impl Placed {
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.general.is_empty()
    }

    pub fn field(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.fields.entry(key.into()).or_insert_with(|| message.into());
    }
}

pub fn message_of(e: &Error) -> String {
    match e {
        Error::Invalid { message, .. } | Error::InvalidDetails { message, .. } | Error::Conflict { message, .. } => {
            message.clone()
        }
        other => other.to_string(),
    }
}

/// Places a refused create or update beside the field it concerns; `None`
/// for errors that are not about the input (they get the error page).
/// `shown` says whether a config field is on the form (an admin-only config
/// is not on a user's form: its problem is shown above the form).
pub fn place(e: &Error, connectors: &[&str], shown: &dyn Fn(&str) -> bool) -> Option<Placed> {
    let (code, message, details) = match e {
        Error::Invalid { code, message } | Error::Conflict { code, message } => (*code, message.clone(), None),
        Error::InvalidDetails { code, message, details } => (*code, message.clone(), Some(details)),
        _ => return None,
    };
    let mut p = Placed::default();
    match code {
        "invalid_name" | "job_exists" => p.field("name", message),
        "unknown_integration" | "unknown_release" => p.field("release", message),
        "missing_connection" | "unknown_connector" | "unknown_connection" | "connector_mismatch" => {
            match connectors.iter().find(|c| message.contains(&format!("`{c}`"))) {
                Some(c) => p.field(format!("{CONN}{c}"), message),
                None => p.general.push(message),
            }
        }
        "invalid_configs" => {
            for d in details.and_then(|d| d.as_array()).into_iter().flatten() {
                let text = d["message"].as_str().unwrap_or("").to_owned();
                let (name, text) = match d["property"].as_str() {
                    Some(prop) => (Some(prop.to_owned()), "This setting is required.".to_owned()),
                    None => (d["path"].as_str().and_then(config_of_path), text),
                };
                match name.as_deref().filter(|n| shown(n)) {
                    Some(n) => p.field(format!("{CFG}{n}"), text),
                    None => p.general.push(match &name {
                        Some(n) => format!("Setting “{n}”: {text}"),
                        None => text,
                    }),
                }
            }
            if p.is_empty() {
                p.general.push(message);
            }
        }
        "invalid_schedule" => p.field("schedule", message),
        _ => p.general.push(message),
    }
    Some(p)
}

/// The config a JSON pointer into the configs starts at (`/batch/0` → `batch`).
fn config_of_path(path: &str) -> Option<String> {
    let first = path.strip_prefix('/')?.split('/').next()?;
    (!first.is_empty()).then(|| first.replace("~1", "/").replace("~0", "~"))
}
