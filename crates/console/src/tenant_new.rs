//! Creating a tenant (platform admins only, as `POST /v1/tenants` is): the
//! "New tenant" form on the switcher. The tenants service validates the id
//! and name as it does for the API; a refusal comes back beside its field
//! with what was typed kept, and the new tenant opens at once (the session
//! is scoped to it), since the admin's next step is its onboarding.

use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;

use crate::admin::Admin;
use crate::failure;
use crate::forms::{self, checked, field, FormBody};
use crate::render::Layout;
use crate::session::see_other;
use crate::tenants::switcher_page;
use ferry_service::tenants::NewTenant;

/// The field a refusal of the tenants service concerns, by its code.
fn field_of(code: &str) -> &'static str {
    match code {
        "invalid_id" | "tenant_exists" => "id",
        "invalid_name" => "name",
        _ => "form",
    }
}

pub async fn create(Admin(signed): Admin, body: FormBody) -> Response {
    let f = match checked(&signed, body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let (id, name) = (field(&f, "id").to_owned(), field(&f, "name").to_owned());
    // An empty id is the API's omitted one: the service generates it.
    let input = NewTenant { id: (!id.is_empty()).then(|| id.clone()), name: name.clone(), paused: false };
    let tenant = match signed.hub.tenants().create_tenant(input).await {
        Ok(t) => t,
        Err(e) => {
            return match forms::problem(&e, field_of) {
                Some(p) => {
                    let status = if matches!(e, ferry_core::Error::Conflict { .. }) {
                        StatusCode::CONFLICT
                    } else {
                        StatusCode::BAD_REQUEST
                    };
                    let form = context! { id => id, name => name, error => context! { field => p.field, message => p.message } };
                    switcher_page(&signed, None, status, form).await
                }
                None => failure::page(e, Some(&Layout::new("Choose a tenant", &signed).at("tenants"))),
            }
        }
    };
    match signed.hub.users().scope_session(&signed.token, &tenant.id).await {
        Ok(_) => see_other(&format!("/t/{}/", tenant.id)),
        Err(e) => failure::page(e, Some(&Layout::new("Choose a tenant", &signed).at("tenants"))),
    }
}
