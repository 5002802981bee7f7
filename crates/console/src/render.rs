//! The console's templates (minijinja; names ending in `.html` are
//! auto-escaped, so tenant, job and connection names cannot inject markup)
//! and the layout every page shares.

use std::sync::OnceLock;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::{context, Environment, Value};
use serde::Serialize;

use crate::session::Signed;
use ferry_core::model::Tenant;

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("macros.html", include_str!("templates/macros.html")),
    ("sign_in.html", include_str!("templates/sign_in.html")),
    ("message.html", include_str!("templates/message.html")),
    ("tenants.html", include_str!("templates/tenants.html")),
    ("dashboard.html", include_str!("templates/dashboard.html")),
    ("activity.html", include_str!("templates/activity.html")),
    ("jobs.html", include_str!("templates/jobs.html")),
    ("job.html", include_str!("templates/job.html")),
    ("run.html", include_str!("templates/run.html")),
    ("chart.html", include_str!("templates/chart.html")),
    ("users.html", include_str!("templates/users.html")),
    ("user_new.html", include_str!("templates/user_new.html")),
    ("user.html", include_str!("templates/user.html")),
    ("api_keys.html", include_str!("templates/api_keys.html")),
    ("api_key_created.html", include_str!("templates/api_key_created.html")),
    ("api_key_revoke.html", include_str!("templates/api_key_revoke.html")),
    ("integrations.html", include_str!("templates/integrations.html")),
    ("integration.html", include_str!("templates/integration.html")),
    ("dead_letters.html", include_str!("templates/dead_letters.html")),
    ("dead_letter_discard.html", include_str!("templates/dead_letter_discard.html")),
    ("ops_macros.html", include_str!("templates/ops_macros.html")),
    ("run_dead_letters.html", include_str!("templates/run_dead_letters.html")),
    ("form_macros.html", include_str!("templates/form_macros.html")),
    ("connections.html", include_str!("templates/connections.html")),
    ("connection_new.html", include_str!("templates/connection_new.html")),
    ("connection.html", include_str!("templates/connection.html")),
    ("connection_disconnect.html", include_str!("templates/connection_disconnect.html")),
    ("mappings.html", include_str!("templates/mappings.html")),
    ("mapping.html", include_str!("templates/mapping.html")),
    ("job_form.html", include_str!("templates/job_form.html")),
    ("job_new_integration.html", include_str!("templates/job_new_integration.html")),
    ("job_new.html", include_str!("templates/job_new.html")),
    ("job_settings.html", include_str!("templates/job_settings.html")),
    ("job_schedule.html", include_str!("templates/job_schedule.html")),
    ("job_connectors.html", include_str!("templates/job_connectors.html")),
    ("job_webhook.html", include_str!("templates/job_webhook.html")),
];

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            if let Err(e) = env.add_template(name, source) {
                tracing::error!(error = %e, template = name, "console template does not compile");
            }
        }
        env
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct TenantRef {
    pub id: String,
    pub name: String,
}

/// What the header and navigation of every page need.
#[derive(Debug, Clone, Serialize)]
pub struct Layout {
    pub title: String,
    /// The signed-in person's email; absent on the sign-in page.
    pub user: Option<String>,
    pub csrf: Option<String>,
    pub tenant: Option<TenantRef>,
    /// The navigation entry of this page.
    pub nav: &'static str,
    /// Reload the page after this many seconds (a run still going).
    pub refresh: Option<u32>,
    /// A platform admin is signed in: the header links the platform's pages.
    pub admin: bool,
    /// The tenant the session is in, for the way back from the platform's pages.
    pub workspace: Option<String>,
}

impl Layout {
    pub fn public(title: &str) -> Self {
        Self {
            title: title.to_owned(),
            user: None,
            csrf: None,
            tenant: None,
            nav: "",
            refresh: None,
            admin: false,
            workspace: None,
        }
    }

    pub fn new(title: &str, signed: &Signed) -> Self {
        Self {
            title: title.to_owned(),
            user: Some(signed.email().to_owned()),
            csrf: Some(signed.csrf.clone()),
            tenant: None,
            nav: "",
            refresh: None,
            admin: signed.session.principal.is_platform_admin(),
            workspace: signed.session.tenant.clone(),
        }
    }

    /// A platform page (outside any tenant) and its navigation entry.
    pub fn at(mut self, nav: &'static str) -> Self {
        self.nav = nav;
        self
    }

    pub fn in_tenant(mut self, tenant: &Tenant, nav: &'static str) -> Self {
        self.tenant = Some(TenantRef { id: tenant.id.clone(), name: tenant.name.clone() });
        self.nav = nav;
        self
    }

    pub fn refreshing(mut self, secs: u32) -> Self {
        self.refresh = Some(secs);
        self
    }
}

/// Renders `template` with the layout and the page's own values.
pub fn page(status: StatusCode, template: &str, layout: &Layout, values: Value) -> Response {
    let ctx = context! { layout => layout, ..values };
    match env().get_template(template).and_then(|t| t.render(ctx)) {
        Ok(body) => {
            let mut res = (status, body).into_response();
            res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
            res
        }
        Err(e) => {
            tracing::error!(error = %e, template, "console page failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "The page could not be shown.").into_response()
        }
    }
}

/// A page saying one thing, with a link onwards.
pub fn message(status: StatusCode, layout: &Layout, heading: &str, text: &str, back: Option<(&str, &str)>) -> Response {
    page(
        status,
        "message.html",
        layout,
        context! { heading => heading, text => text, back => back.map(|(href, label)| context! { href, label }) },
    )
}
