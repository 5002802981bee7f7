//! Users (platform admins only): the platform-wide list, creating a user
//! (with a password, as the API does: `POST /v1/users`), a user's role and
//! tenant assignments, and deactivating (or reactivating) an account. Every
//! change is the API's service call (`hub.users()`), so the rules are the
//! API's.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::{context, Value};

use crate::admin::Admin;
use crate::failure;
use crate::forms::{self, checked, field, ticked, FormBody};
use crate::render::{page as render, Layout};
use crate::session::{see_other, Signed};
use ferry_core::model::{User, UserRole};
use ferry_service::repo::PageRequest;
use ferry_service::users::{NewUser, UserPatch};

pub const PAGE: u32 = 25;
/// Tenants offered as suggestions in the assignment fields.
const SUGGESTED_TENANTS: u32 = 200;

fn role_name(r: UserRole) -> &'static str {
    match r {
        UserRole::PlatformAdmin => "platform_admin",
        UserRole::User => "user",
    }
}

fn role_label(r: UserRole) -> &'static str {
    match r {
        UserRole::PlatformAdmin => "Platform admin",
        UserRole::User => "User",
    }
}

fn parse_role(s: &str) -> Option<UserRole> {
    match s {
        "platform_admin" => Some(UserRole::PlatformAdmin),
        "user" => Some(UserRole::User),
        _ => None,
    }
}

fn row(u: &User) -> Value {
    context! {
        id => u.id,
        href => format!("/admin/users/{}", u.id),
        email => u.email,
        full_name => u.full_name,
        role => role_label(u.role),
        admin => u.role == UserRole::PlatformAdmin,
        active => u.active,
        memberships => u.memberships,
    }
}

/// Tenant ids to suggest in an assignment field (the first page of them).
async fn tenant_ids(signed: &Signed) -> Vec<String> {
    let page = PageRequest { limit: Some(SUGGESTED_TENANTS), cursor: None };
    match signed.hub.tenants().list_tenants(&signed.session.principal, &page).await {
        Ok(p) => p.items.into_iter().map(|t| t.id).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "tenant suggestions unavailable");
            Vec::new()
        }
    }
}

pub async fn list(Admin(signed): Admin, q: Result<Query<forms::Cursor>, QueryRejection>) -> Response {
    let cursor = forms::cursor(q);
    let layout = Layout::new("Users", &signed).at("users");
    let page = match signed.hub.users().list_users(&PageRequest { limit: Some(PAGE), cursor: cursor.clone() }).await {
        Ok(p) => p,
        Err(e) => return failure::page(e, Some(&layout)),
    };
    let users: Vec<Value> = page.items.iter().map(row).collect();
    render(
        StatusCode::OK,
        "users.html",
        &layout,
        context! { users => users, next => crate::jobs::next_href(page.next_cursor.as_deref()), paged => cursor.is_some() },
    )
}

async fn new_form(signed: &Signed, status: StatusCode, values: Value, problem: Option<forms::Problem>) -> Response {
    let layout = Layout::new("New user", signed).at("users");
    let tenants = tenant_ids(signed).await;
    render(
        status,
        "user_new.html",
        &layout,
        context! {
            v => values,
            tenants => tenants,
            error => problem.as_ref().map(|p| context! { field => p.field, message => p.message }),
        },
    )
}

pub async fn new(Admin(signed): Admin) -> Response {
    new_form(&signed, StatusCode::OK, context! { role => "user" }, None).await
}

/// Tenant ids as typed: separated by commas or spaces.
fn tenant_list(s: &str) -> Vec<String> {
    s.split([',', ' ', '\n', '\t']).map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect()
}

fn create_field(code: &str) -> &'static str {
    match code {
        "invalid_email" | "email_taken" => "email",
        "invalid_name" => "full_name",
        "weak_password" => "password",
        _ => "form",
    }
}

pub async fn create(Admin(signed): Admin, body: FormBody) -> Response {
    let f = match checked(&signed, body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    // Everything but the password comes back into the form.
    let kept = context! {
        email => field(&f, "email"),
        full_name => field(&f, "full_name"),
        role => field(&f, "role"),
        memberships => field(&f, "memberships"),
    };
    let Some(role) = parse_role(field(&f, "role")) else {
        let p = forms::Problem { field: "role", message: "Choose a role: user or platform admin.".into() };
        return new_form(&signed, StatusCode::BAD_REQUEST, kept, Some(p)).await;
    };
    let input = NewUser {
        email: field(&f, "email").to_owned(),
        full_name: field(&f, "full_name").to_owned(),
        password: f.get("password").cloned().unwrap_or_default(),
        role,
        active: true,
        memberships: tenant_list(field(&f, "memberships")),
    };
    match signed.hub.users().create_user(input).await {
        Ok(u) => see_other(&format!("/admin/users/{}", u.id)),
        Err(ferry_core::Error::NotFound { what: "tenant", id }) => {
            let p = forms::Problem { field: "memberships", message: format!("There is no tenant '{id}'.") };
            new_form(&signed, StatusCode::BAD_REQUEST, kept, Some(p)).await
        }
        Err(e) => match forms::problem(&e, create_field) {
            Some(p) => {
                let status = if matches!(e, ferry_core::Error::Conflict { .. }) {
                    StatusCode::CONFLICT
                } else {
                    StatusCode::BAD_REQUEST
                };
                new_form(&signed, status, kept, Some(p)).await
            }
            None => failure::page(e, Some(&Layout::new("New user", &signed).at("users"))),
        },
    }
}

async fn detail_page(signed: &Signed, user: &str, status: StatusCode, problem: Option<forms::Problem>) -> Response {
    let layout = Layout::new("User", signed).at("users");
    let u = match signed.hub.users().get_user(user).await {
        Ok(u) => u,
        Err(e) => return failure::page(e, Some(&layout)),
    };
    let tenants = tenant_ids(signed).await;
    let layout = Layout::new(&u.email, signed).at("users");
    let own =
        matches!(&signed.session.principal, ferry_service::auth::Principal::User { user_id, .. } if *user_id == u.id);
    render(
        status,
        "user.html",
        &layout,
        context! {
            u => row(&u),
            role => role_name(u.role),
            own => own,
            created => crate::runs::when(u.created_at),
            action => format!("/admin/users/{}", u.id),
            tenants => tenants,
            error => problem.as_ref().map(|p| context! { field => p.field, message => p.message }),
        },
    )
}

pub async fn detail(Admin(signed): Admin, Path(user): Path<String>) -> Response {
    detail_page(&signed, &user, StatusCode::OK, None).await
}

/// Runs a change to a user; back to the user's page, or the page again with
/// the problem beside the field (`field`) it concerns.
async fn change(signed: &Signed, user: &str, field: &'static str, result: ferry_core::Result<User>) -> Response {
    match result {
        Ok(_) => see_other(&format!("/admin/users/{user}")),
        Err(ferry_core::Error::NotFound { what: "tenant", id }) => {
            let p = forms::Problem { field, message: format!("There is no tenant '{id}'.") };
            detail_page(signed, user, StatusCode::BAD_REQUEST, Some(p)).await
        }
        Err(e) => match forms::problem(&e, |_| field) {
            Some(p) => detail_page(signed, user, StatusCode::BAD_REQUEST, Some(p)).await,
            None => failure::page(e, Some(&Layout::new("User", signed).at("users"))),
        },
    }
}

pub async fn set_role(Admin(signed): Admin, Path(user): Path<String>, body: FormBody) -> Response {
    let f = match checked(&signed, body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let Some(role) = parse_role(field(&f, "role")) else {
        let p = forms::Problem { field: "role", message: "Choose a role: user or platform admin.".into() };
        return detail_page(&signed, &user, StatusCode::BAD_REQUEST, Some(p)).await;
    };
    let patch = UserPatch { role: Some(role), ..UserPatch::default() };
    let result = signed.hub.users().update_user(&user, patch).await;
    change(&signed, &user, "role", result).await
}

pub async fn add_membership(Admin(signed): Admin, Path(user): Path<String>, body: FormBody) -> Response {
    let f = match checked(&signed, body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let tenant = field(&f, "tenant");
    if tenant.is_empty() {
        let p = forms::Problem { field: "tenant", message: "Type the id of the tenant to add.".into() };
        return detail_page(&signed, &user, StatusCode::BAD_REQUEST, Some(p)).await;
    }
    let result = signed.hub.users().add_membership(&user, tenant).await;
    change(&signed, &user, "tenant", result).await
}

pub async fn remove_membership(Admin(signed): Admin, Path(user): Path<String>, body: FormBody) -> Response {
    let f = match checked(&signed, body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let result = signed.hub.users().remove_membership(&user, field(&f, "tenant")).await;
    change(&signed, &user, "memberships", result).await
}

/// Deactivating ends the user's sessions at once (the API's rule: an
/// inactive user's sessions are refused), so it asks for a confirmation.
pub async fn deactivate(Admin(signed): Admin, Path(user): Path<String>, body: FormBody) -> Response {
    let f = match checked(&signed, body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if !ticked(&f, "confirm") {
        let p = forms::Problem {
            field: "confirm",
            message: "Tick the box to confirm: the user is signed out everywhere and cannot sign in.".into(),
        };
        return detail_page(&signed, &user, StatusCode::BAD_REQUEST, Some(p)).await;
    }
    let patch = UserPatch { active: Some(false), ..UserPatch::default() };
    let result = signed.hub.users().update_user(&user, patch).await;
    change(&signed, &user, "confirm", result).await
}

pub async fn activate(Admin(signed): Admin, Path(user): Path<String>, body: FormBody) -> Response {
    if let Err(r) = checked(&signed, body) {
        return r;
    }
    let patch = UserPatch { active: Some(true), ..UserPatch::default() };
    let result = signed.hub.users().update_user(&user, patch).await;
    change(&signed, &user, "confirm", result).await
}
