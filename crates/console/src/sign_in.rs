//! Signing in and out. The password check, its slowdown after failures and
//! the session itself are the API's (`ferry_service::sessions`); the console
//! keeps the session token in an HttpOnly, SameSite=Strict cookie.

use std::collections::BTreeMap;

use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use minijinja::context;

use crate::forms;
use crate::render::{page as render, Layout};
use crate::session::{see_other, set_cookie, Signed, Source, SESSION_COOKIE};
use crate::{failure, tenants};
use ferry_core::Error;
use ferry_service::keyring::random_token;
use ferry_service::sessions::LoginRequest;
use ferry_service::Hub;
use ferry_web::cookies::cookie;

/// The sign-in form's CSRF cookie (there is no session yet to bind it to).
const LOGIN_COOKIE: &str = "ferry_console_login";

/// `/`: the workspace of the session's tenant, else the tenant switcher.
pub async fn home(signed: Signed) -> Response {
    match &signed.session.tenant {
        Some(t) => see_other(&format!("/t/{t}/")),
        None => see_other("/tenants"),
    }
}

pub async fn page(State(hub): State<Hub>, headers: HeaderMap) -> Response {
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        if hub.users().scoped_session(token).await.is_ok() {
            return see_other("/");
        }
    }
    form(&hub, &headers, StatusCode::OK, None, "").await
}

async fn form(hub: &Hub, headers: &HeaderMap, status: StatusCode, error: Option<&str>, email: &str) -> Response {
    let key = match hub.platform_key().await {
        Ok(k) => k,
        Err(e) => return failure::page(e, None),
    };
    let (nonce, fresh) = match cookie(headers, LOGIN_COOKIE) {
        Some(c) if (16..=64).contains(&c.len()) => (c.to_owned(), false),
        _ => (random_token(18), true),
    };
    let csrf = key.sign_b64("console-login", &[&nonce]);
    let mut res = render(
        status,
        "sign_in.html",
        &Layout::public("Sign in"),
        context! { csrf => csrf, error => error, email => email },
    );
    if fresh {
        set_cookie(&mut res, hub, LOGIN_COOKIE, &nonce, "/login", 3600);
    }
    res
}

type FormBody = Result<Form<BTreeMap<String, String>>, FormRejection>;

pub async fn submit(State(hub): State<Hub>, Source(source): Source, headers: HeaderMap, body: FormBody) -> Response {
    let Ok(Form(f)) = body else {
        return form(&hub, &headers, StatusCode::BAD_REQUEST, Some("The form could not be read; try again."), "").await;
    };
    let key = match hub.platform_key().await {
        Ok(k) => k,
        Err(e) => return failure::page(e, None),
    };
    let nonce = cookie(&headers, LOGIN_COOKIE).unwrap_or("");
    if nonce.is_empty() || !key.verify_b64("console-login", &[nonce], f.get("csrf").map_or("", String::as_str)) {
        return failure::csrf_refused();
    }
    let email = f.get("email").map_or("", |e| e.trim()).to_owned();
    let password = f.get("password").cloned().unwrap_or_default();
    let login = hub.users().login(LoginRequest { email: email.clone(), password }, source).await;
    let session = match login {
        Ok(s) => s,
        Err(Error::Unauthorized(_)) => {
            let msg = "The email or password is wrong, or the account is inactive.";
            return form(&hub, &headers, StatusCode::UNAUTHORIZED, Some(msg), &email).await;
        }
        Err(Error::TooManyAttempts { retry_after_secs }) => {
            let msg = format!("Too many failed sign-ins. Wait {retry_after_secs} seconds before trying again.");
            let mut res = form(&hub, &headers, StatusCode::TOO_MANY_REQUESTS, Some(&msg), &email).await;
            if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return res;
        }
        Err(e) => return failure::page(e, None),
    };
    let to = match tenants::landing(&hub, &session.token).await {
        Ok(to) => to,
        Err(e) => return failure::page(e, None),
    };
    let mut res = see_other(&to);
    let max_age = (session.expires_at - hub.clock.now()).num_seconds().max(0);
    set_cookie(&mut res, &hub, SESSION_COOKIE, &session.token, "/", max_age);
    set_cookie(&mut res, &hub, LOGIN_COOKIE, "", "/login", 0);
    res
}

pub async fn sign_out(signed: Signed, body: FormBody) -> Response {
    if let Err(r) = forms::checked(&signed, body) {
        return r;
    }
    if let Err(e) = signed.hub.users().logout(&signed.token).await {
        return failure::page(e, None);
    }
    let mut res = see_other("/login");
    set_cookie(&mut res, &signed.hub, SESSION_COOKIE, "", "/", 0);
    res.into_response()
}
