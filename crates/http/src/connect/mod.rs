//! The end customer's side: the connect page a magic link opens, its forms
//! (credentials, "Connect with <provider>", disconnect) and the OAuth2
//! callback. Server-rendered HTML, no script; every form carries a CSRF token
//! bound to a cookie and to the link; no secret is ever written into a page.

mod pages;

use std::collections::BTreeMap;

use axum::extract::rejection::FormRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};

use self::pages::{Page, Tone};
use ferry_core::crypto::sha256_hex;
use ferry_core::model::{AuthKind, Connection};
use ferry_core::Error;
use ferry_service::keyring::random_token;
use ferry_service::links::LinkProblem;
use ferry_service::oauth::CallbackRejection;
use ferry_service::Hub;
use ferry_web::cookies::{cookie, secure_attr};

/// The routes of this router (method, axum path), for the deployment checks.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/connect/{token}"),
    ("POST", "/connect/{token}/oauth"),
    ("POST", "/connect/{token}/credentials"),
    ("POST", "/connect/{token}/client-credentials"),
    ("POST", "/connect/{token}/disconnect"),
    ("POST", "/connect/{token}/config"),
    ("GET", "/oauth/callback"),
];

const CSRF_COOKIE: &str = "ferry_csrf";
const OAUTH_COOKIE: &str = "ferry_oauth";
const FORM_LIMIT: usize = 64 * 1024;

pub fn router(hub: Hub) -> Router {
    Router::new()
        .route("/connect/{token}", get(page))
        .route("/connect/{token}/oauth", post(start_oauth))
        .route("/connect/{token}/credentials", post(save_credentials))
        .route("/connect/{token}/client-credentials", post(client_credentials))
        .route("/connect/{token}/disconnect", post(disconnect))
        .route("/connect/{token}/config", post(save_config))
        .route("/oauth/callback", get(callback))
        .route_layer(ferry_web::trace::layer("connect"))
        .layer(DefaultBodyLimit::max(FORM_LIMIT))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(hub)
}

/// Pages carry tokens in their URL: no referrer, no caching, no framing.
async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    let set = |h: &mut HeaderMap, k: header::HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::CACHE_CONTROL, "no-store");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'",
    );
    res
}

/// An internal failure: logged with its detail, shown in words without it.
fn failure(e: Error) -> Response {
    match e {
        Error::Invalid { message, .. } | Error::Conflict { message, .. } => {
            Page::message("Something needs attention", &message, Tone::Error).status(StatusCode::BAD_REQUEST)
        }
        other => {
            tracing::error!(error = %ferry_core::error::chain(&other), "connect page failed");
            // A backend that is down for a moment is a 503: the page says to try again either way.
            let status = match other.unavailable() {
                Some(_) => StatusCode::SERVICE_UNAVAILABLE,
                None => StatusCode::INTERNAL_SERVER_ERROR,
            };
            Page::message(
                "Something went wrong",
                "Ferry could not complete this step. Nothing was changed; please try again in a moment.",
                Tone::Error,
            )
            .status(status)
        }
    }
}

fn link_problem(p: LinkProblem) -> Response {
    let (status, title) = match p {
        LinkProblem::Unknown => (StatusCode::NOT_FOUND, "This link does not work"),
        LinkProblem::Revoked | LinkProblem::Expired => (StatusCode::GONE, "This link does not work"),
        // As the API answers writes into an archived tenant (409 `tenant_archived`).
        LinkProblem::Archived => (StatusCode::CONFLICT, "This connection can no longer be changed"),
    };
    Page::message(title, p.message(), Tone::Error).status(status)
}

/// Resolves the link or answers with the page explaining why not.
async fn open(hub: &Hub, token: &str) -> Result<Connection, Response> {
    match hub.connections().resolve_link(token).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(p)) => Err(link_problem(p)),
        Err(e) => Err(failure(e)),
    }
}

fn csrf_value(hub_key: &ferry_service::keyring::PlatformKey, cookie: &str, token: &str) -> String {
    hub_key.sign_b64("csrf", &[cookie, &sha256_hex(token)])
}

/// Checks the form's CSRF token against the cookie it was issued with.
async fn check_csrf(
    hub: &Hub,
    headers: &HeaderMap,
    token: &str,
    form: &BTreeMap<String, String>,
) -> Result<(), Response> {
    let key = hub.platform_key().await.map_err(failure)?;
    let ok = match (cookie(headers, CSRF_COOKIE), form.get("csrf")) {
        (Some(c), Some(sent)) => key.verify_b64("csrf", &[c, &sha256_hex(token)], sent),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(Page::message(
            "Please try again",
            "This form expired or was not sent from the connect page, so nothing was saved. Reload the page and try again.",
            Tone::Error,
        )
        .status(StatusCode::FORBIDDEN))
    }
}

async fn render_page(hub: &Hub, headers: &HeaderMap, token: &str, conn: &Connection, error: Option<&str>) -> Response {
    let key = match hub.platform_key().await {
        Ok(k) => k,
        Err(e) => return failure(e),
    };
    let (csrf_cookie, fresh) = match cookie(headers, CSRF_COOKIE) {
        Some(c) if c.len() >= 16 && c.len() <= 64 => (c.to_owned(), false),
        _ => (random_token(18), true),
    };
    let tenant = hub.tenants().get_tenant(&conn.tenant).await.map(|t| t.name).unwrap_or_else(|_| conn.tenant.clone());
    let integrations = match hub.jobs().all_jobs(&conn.tenant).await {
        Ok(jobs) => {
            let mut names: Vec<String> = jobs
                .into_iter()
                .filter(|j| j.connections.values().any(|c| c == &conn.id))
                .map(|j| j.integration)
                .collect();
            names.sort();
            names.dedup();
            names
        }
        Err(_) => Vec::new(),
    };
    let kind = match conn.auth_kind {
        AuthKind::None => "none",
        AuthKind::Oauth2 => match hub.connections().oauth_client(conn).await.map(|c| c.grant) {
            Ok(ferry_core::manifest::OAuthGrant::ClientCredentials) => "client_credentials",
            _ => "oauth",
        },
        _ => "fields",
    };
    let config_forms = match hub.integrations().customer_forms(conn).await {
        Ok(forms) => forms,
        Err(e) => {
            tracing::warn!(error = %e, "config forms unavailable");
            Vec::new()
        }
    };
    let page = Page::connect(pages::ConnectView {
        config_forms,
        base: format!("/connect/{token}"),
        provider: ferry_core::providers::get(&conn.connector)
            .map_or(conn.connector.clone(), |p| p.display_name.clone()),
        tenant,
        integrations,
        connection: conn.name.clone(),
        status: conn.status,
        status_message: conn.status_message.clone(),
        error: error.map(str::to_owned),
        kind,
        auth_kind: conn.auth_kind,
        csrf: csrf_value(&key, &csrf_cookie, token),
    });
    let mut res = page.status(if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK });
    if fresh {
        let value =
            format!("{CSRF_COOKIE}={csrf_cookie}; Path=/connect; HttpOnly; SameSite=Strict{}", secure_attr(hub));
        if let Ok(v) = HeaderValue::from_str(&value) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    res
}

async fn page(State(hub): State<Hub>, Path(token): Path<String>, headers: HeaderMap) -> Response {
    match open(&hub, &token).await {
        Ok(conn) => render_page(&hub, &headers, &token, &conn, None).await,
        Err(r) => r,
    }
}

type FormBody = Result<Form<BTreeMap<String, String>>, FormRejection>;

// The error is the page answered to this request; boxing it would only move it.
#[allow(clippy::result_large_err)]
fn form_or_page(form: FormBody) -> Result<BTreeMap<String, String>, Response> {
    form.map(|Form(f)| f).map_err(|_| {
        Page::message("Please try again", "The form could not be read. Reload the page and try again.", Tone::Error)
            .status(StatusCode::BAD_REQUEST)
    })
}

/// Opens the link, reads the form and checks its CSRF token.
async fn post_guard(
    hub: &Hub,
    token: &str,
    headers: &HeaderMap,
    form: FormBody,
) -> Result<(Connection, BTreeMap<String, String>), Response> {
    let conn = open(hub, token).await?;
    let form = form_or_page(form)?;
    check_csrf(hub, headers, token, &form).await?;
    Ok((conn, form))
}

async fn start_oauth(
    State(hub): State<Hub>,
    Path(token): Path<String>,
    headers: HeaderMap,
    form: FormBody,
) -> Response {
    let (conn, _) = match post_guard(&hub, &token, &headers, form).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match hub.connections().begin_authorization(&conn).await {
        Ok(auth) => {
            let mut res = Redirect::to(&auth.url).into_response();
            // Lax: the provider's redirect back is a top-level navigation from another site.
            let value = format!(
                "{OAUTH_COOKIE}={}; Path=/oauth/callback; HttpOnly; SameSite=Lax; Max-Age={}{}",
                auth.nonce,
                ferry_service::oauth::STATE_TTL_MINUTES * 60,
                secure_attr(&hub)
            );
            if let Ok(v) = HeaderValue::from_str(&value) {
                res.headers_mut().append(header::SET_COOKIE, v);
            }
            res
        }
        Err(Error::Invalid { message, .. }) => render_page(&hub, &headers, &token, &conn, Some(&message)).await,
        Err(e) => failure(e),
    }
}

async fn save_credentials(
    State(hub): State<Hub>,
    Path(token): Path<String>,
    headers: HeaderMap,
    form: FormBody,
) -> Response {
    let (conn, mut form) = match post_guard(&hub, &token, &headers, form).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if matches!(conn.auth_kind, AuthKind::None | AuthKind::Oauth2) {
        return render_page(&hub, &headers, &token, &conn, Some("This connection does not take typed credentials."))
            .await;
    }
    form.remove("csrf");
    let allowed = pages::fields_for(conn.auth_kind);
    let fields: BTreeMap<String, String> = form
        .into_iter()
        .filter(|(k, _)| allowed.iter().any(|(n, _, _)| n == k))
        .map(|(k, v)| (k, v.trim().to_owned()))
        .collect();
    match hub.connections().set_credentials(&conn.tenant, &conn.id, fields).await {
        Ok(saved) => match tested(&hub, &saved).await {
            Some(problem) => problem.back(&format!("/connect/{token}")).status(StatusCode::BAD_REQUEST),
            None => Page::message(
                "Connected",
                "Your credentials were saved and the connection is ready. You can close this page.",
                Tone::Ok,
            )
            .back(&format!("/connect/{token}"))
            .status(StatusCode::OK),
        },
        // The message names missing fields only, never a value.
        Err(Error::Invalid { message, .. }) => render_page(&hub, &headers, &token, &conn, Some(&message)).await,
        Err(e) => failure(e),
    }
}

/// Runs the manifest's test request; the page to show when it failed.
async fn tested(hub: &Hub, conn: &Connection) -> Option<Page> {
    use ferry_service::verify::Verification;
    match hub.connections().verify_connection(conn).await {
        Ok(Verification::Failed(message)) => Some(Page::message(
            "Saved, but the test failed",
            &format!("{message} The connection is marked as needing attention until it works."),
            Tone::Error,
        )),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(error = %e, "test request could not run");
            None
        }
    }
}

async fn client_credentials(
    State(hub): State<Hub>,
    Path(token): Path<String>,
    headers: HeaderMap,
    form: FormBody,
) -> Response {
    let (conn, _) = match post_guard(&hub, &token, &headers, form).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match hub.connections().connect_client_credentials(&conn).await {
        Ok(Ok(_)) => Page::message("Connected", "The connection is ready. You can close this page.", Tone::Ok)
            .back(&format!("/connect/{token}"))
            .status(StatusCode::OK),
        Ok(Err(message)) => Page::message("Not connected", &message, Tone::Error)
            .back(&format!("/connect/{token}"))
            .status(StatusCode::BAD_GATEWAY),
        Err(e) => failure(e),
    }
}

async fn disconnect(State(hub): State<Hub>, Path(token): Path<String>, headers: HeaderMap, form: FormBody) -> Response {
    let (conn, _) = match post_guard(&hub, &token, &headers, form).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match hub.connections().disconnect(&conn.tenant, &conn.id).await {
        Ok(_) => Page::message(
            "Disconnected",
            "Ferry no longer holds credentials for this connection. Your link still works if you want to connect again.",
            Tone::Ok,
        )
        .back(&format!("/connect/{token}"))
        .status(StatusCode::OK),
        Err(e) => failure(e),
    }
}

async fn save_config(
    State(hub): State<Hub>,
    Path(token): Path<String>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let pairs = match form {
        Ok(Form(p)) => p,
        Err(_) => {
            return Page::message(
                "Please try again",
                "The form could not be read. Reload the page and try again.",
                Tone::Error,
            )
            .status(StatusCode::BAD_REQUEST)
        }
    };
    let map: BTreeMap<String, String> = pairs.iter().filter(|(k, _)| k == "csrf" || k == "job").cloned().collect();
    let (conn, map) = match post_guard(&hub, &token, &headers, Ok(Form(map))).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let job = map.get("job").cloned().unwrap_or_default();
    match hub.integrations().save_customer_configs(&conn, &job, &pairs).await {
        Ok(()) => Page::message("Settings saved", "Your settings were saved. You can close this page.", Tone::Ok)
            .back(&format!("/connect/{token}"))
            .status(StatusCode::OK),
        Err(Error::Invalid { message, .. }) => render_page(&hub, &headers, &token, &conn, Some(&message)).await,
        Err(Error::InvalidDetails { message, details, .. }) => {
            // Schema problems name fields (paths), never values.
            let problems: Vec<String> = details
                .as_array()
                .into_iter()
                .flatten()
                .take(5)
                .map(|d| {
                    let path = d.get("path").and_then(|p| p.as_str()).unwrap_or("").trim_start_matches('/');
                    let why = d.get("message").and_then(|p| p.as_str()).unwrap_or("");
                    format!("{path}: {why}.")
                })
                .collect();
            let text = if problems.is_empty() {
                message
            } else {
                format!("Some settings need fixing. {}", problems.join(" "))
            };
            render_page(&hub, &headers, &token, &conn, Some(&text)).await
        }
        Err(Error::NotFound { .. }) => {
            render_page(&hub, &headers, &token, &conn, Some("These settings do not belong to this connection.")).await
        }
        Err(e) => failure(e),
    }
}

#[derive(Debug, serde::Deserialize)]
struct CallbackQuery {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

async fn callback(
    State(hub): State<Hub>,
    headers: HeaderMap,
    query: Result<Query<CallbackQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return Page::message("Sign-in failed", &CallbackRejection::BadState.message(), Tone::Error)
            .status(StatusCode::BAD_REQUEST);
    };
    let provider_error = q.error.as_deref().map(|e| (e, q.error_description.as_deref()));
    let outcome = hub
        .connections()
        .complete_authorization(q.state.as_deref(), q.code.as_deref(), provider_error, cookie(&headers, OAUTH_COOKIE))
        .await;
    // The flow's cookie is spent whatever happened.
    let clear = HeaderValue::from_static("ferry_oauth=; Path=/oauth/callback; HttpOnly; SameSite=Lax; Max-Age=0");
    let mut res = match outcome {
        Ok(Ok(conn)) => {
            let provider =
                ferry_core::providers::get(&conn.connector).map_or(conn.connector.clone(), |p| p.display_name.clone());
            let back = hub.connections().link_token(&conn).await.ok().flatten().map(|t| format!("/connect/{t}"));
            if let Some(mut page) = tested(&hub, &conn).await {
                if let Some(b) = &back {
                    page = page.back(b);
                }
                let mut res = page.status(StatusCode::BAD_REQUEST);
                res.headers_mut().append(header::SET_COOKIE, clear);
                return res;
            }
            let mut page = Page::message(
                "Connected",
                &format!("{provider} is connected to {}. You can close this page.", conn.name),
                Tone::Ok,
            );
            if let Some(b) = back {
                page = page.back(&b);
            }
            page.status(StatusCode::OK)
        }
        Ok(Err(rejection)) => {
            let status = match rejection {
                CallbackRejection::Provider { .. } => StatusCode::BAD_REQUEST,
                CallbackRejection::Replayed | CallbackRejection::Expired | CallbackRejection::Gone => StatusCode::GONE,
                CallbackRejection::WrongBrowser => StatusCode::FORBIDDEN,
                CallbackRejection::BadState => StatusCode::BAD_REQUEST,
                CallbackRejection::Archived => StatusCode::CONFLICT,
            };
            Page::message("Not connected", &rejection.message(), Tone::Error).status(status)
        }
        Err(e) => failure(e),
    };
    res.headers_mut().append(header::SET_COOKIE, clear);
    res
}
