//! The connect pages' templates (minijinja, HTML auto-escaped).

use std::sync::OnceLock;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::{context, Environment};
use serde::Serialize;

use ferry_core::model::{AuthKind, ConnectionStatus};

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // Names ending in .html are auto-escaped, so provider messages and
        // customer-chosen names cannot inject markup.
        for (name, source) in [
            ("base.html", include_str!("templates/base.html")),
            ("connect.html", include_str!("templates/connect.html")),
            ("message.html", include_str!("templates/message.html")),
        ] {
            if let Err(e) = env.add_template(name, source) {
                tracing::error!(error = %e, template = name, "connect template does not compile");
            }
        }
        env
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Ok,
    Error,
}

/// The credential form fields of an auth kind: (name, label, input type).
pub fn fields_for(kind: AuthKind) -> &'static [(&'static str, &'static str, &'static str)] {
    match kind {
        AuthKind::ApiKey => &[("api_key", "API key", "password")],
        AuthKind::Basic => &[("username", "Username", "text"), ("password", "Password", "password")],
        AuthKind::Bearer => &[("token", "Access token", "password")],
        AuthKind::None | AuthKind::Oauth2 => &[],
    }
}

pub struct ConnectView {
    pub config_forms: Vec<ferry_service::customer_configs::CustomerForm>,
    pub base: String,
    pub provider: String,
    pub tenant: String,
    pub integrations: Vec<String>,
    pub connection: String,
    pub status: ConnectionStatus,
    pub status_message: Option<String>,
    pub error: Option<String>,
    pub kind: &'static str,
    pub auth_kind: AuthKind,
    pub csrf: String,
}

#[derive(Serialize)]
struct Field {
    name: &'static str,
    label: &'static str,
    input: &'static str,
}

pub struct Page {
    html: Result<String, String>,
    back: Option<String>,
    template: Option<(String, String, Tone)>,
}

fn status_name(s: ConnectionStatus) -> (&'static str, &'static str) {
    match s {
        ConnectionStatus::Connected => ("connected", "Connected"),
        ConnectionStatus::Disconnected => ("disconnected", "Not connected"),
        ConnectionStatus::Error => ("error", "Needs attention"),
    }
}

impl Page {
    pub fn connect(v: ConnectView) -> Self {
        let (status, status_label) = status_name(v.status);
        let fields: Vec<Field> =
            fields_for(v.auth_kind).iter().map(|(name, label, input)| Field { name, label, input }).collect();
        let html = env().get_template("connect.html").and_then(|t| {
            t.render(context! {
                title => format!("Connect {}", v.provider),
                base => v.base,
                provider => v.provider,
                tenant => v.tenant,
                integrations => v.integrations,
                connection => v.connection,
                status => status,
                status_label => status_label,
                status_message => v.status_message,
                error => v.error,
                kind => v.kind,
                fields => fields,
                csrf => v.csrf,
                config_forms => v.config_forms,
            })
        });
        Self { html: html.map_err(|e| e.to_string()), back: None, template: None }
    }

    pub fn message(heading: &str, message: &str, tone: Tone) -> Self {
        Self { html: Ok(String::new()), back: None, template: Some((heading.to_owned(), message.to_owned(), tone)) }
    }

    pub fn back(mut self, href: &str) -> Self {
        self.back = Some(href.to_owned());
        self
    }

    pub fn status(self, status: StatusCode) -> Response {
        let html = match self.template {
            Some((heading, message, tone)) => env()
                .get_template("message.html")
                .and_then(|t| {
                    t.render(context! {
                        title => heading.clone(),
                        heading => heading,
                        message => message,
                        tone => if tone == Tone::Ok { "ok" } else { "error" },
                        back => self.back,
                    })
                })
                .map_err(|e| e.to_string()),
            None => self.html,
        };
        match html {
            Ok(body) => {
                let mut res = (status, body).into_response();
                res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
                res
            }
            Err(e) => {
                tracing::error!(error = %e, "connect page failed to render");
                (StatusCode::INTERNAL_SERVER_ERROR, "The page could not be shown.").into_response()
            }
        }
    }
}
