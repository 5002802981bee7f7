//! The operator console (`ferry-console`), driven as a browser drives it:
//! cookies kept between requests, forms posted with the token the page
//! carried. Security (`security.rs`), the screens (`screens.rs`), and the
//! storage it adds, the first admin user and the session's tenant scope, on
//! both stores (`storage.rs`).

mod connections;
mod dashboard_numbers;
mod job_flow;
mod mappings;
mod onboarding;
mod ops;
mod scale;
mod screens;
mod security;
mod storage;

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{header, Method, Request};
use axum::Router;
use ferry_service::Hub;

use crate::support::app::{Response, TestApp};

pub const ADMIN_EMAIL: &str = "root@ferry.example";
pub const ADMIN_PASSWORD: &str = "the admin passphrase";
pub const PASSWORD: &str = "correct horse battery";

/// The console and the API in one router, as `ferry up` serves them.
pub fn app_router(hub: &Hub) -> Router {
    ferry_console::router(hub.clone()).merge(ferry_http::api::router(hub.clone()))
}

/// A hub with the first admin user, as `ferry up` makes it on first start.
pub async fn hub_with_admin() -> TestApp {
    let app = TestApp::embedded().await;
    app.hub.users().bootstrap_admin_user(Some(ADMIN_EMAIL), Some(ADMIN_PASSWORD)).await.expect("admin user");
    app
}

/// A browser: keeps cookies, follows nothing on its own.
pub struct Browser {
    router: Router,
    pub cookies: BTreeMap<String, String>,
}

impl Browser {
    pub fn new(hub: &Hub) -> Self {
        Self { router: app_router(hub), cookies: BTreeMap::new() }
    }

    async fn send(&mut self, req: Request<Body>) -> Response {
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let res = self.router.clone().oneshot(req).await.expect("router is infallible");
        for v in res.headers().get_all(header::SET_COOKIE) {
            let v = v.to_str().expect("ascii cookie");
            let (pair, attrs) = v.split_once(';').unwrap_or((v, ""));
            let (k, val) = pair.split_once('=').expect("name=value");
            if attrs.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), val.to_owned());
            }
        }
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        Response { status, headers, bytes }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    pub async fn get(&mut self, path: &str) -> Response {
        let req = Request::builder()
            .method(Method::GET)
            .uri(path)
            .header(header::COOKIE, self.cookie_header())
            .body(Body::empty())
            .expect("request");
        self.send(req).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Response {
        let body: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::COOKIE, self.cookie_header())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .expect("request");
        self.send(req).await
    }

    /// Opens the sign-in page and submits it; returns the answer to the POST.
    pub async fn sign_in(&mut self, email: &str, password: &str) -> Response {
        let page = self.get("/login").await;
        let csrf = csrf_of(&page.text());
        self.post("/login", &[("csrf", &csrf), ("email", email), ("password", password)]).await
    }

    /// The CSRF token the pages of this session carry.
    pub async fn csrf(&mut self) -> String {
        let page = self.get("/tenants").await;
        csrf_of(&page.text())
    }
}

/// The value of the first `csrf` field of a page.
pub fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).map(|i| i + marker.len()).expect("a csrf field on the page");
    html[start..].split('"').next().unwrap_or_default().to_owned()
}

pub fn location(r: &Response) -> String {
    r.headers.get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned()
}

/// Creates a user (role `user`) in `tenants` through the API.
pub async fn member(app: &TestApp, email: &str, tenants: &[&str]) -> String {
    let r = app
        .admin(
            Method::POST,
            "/v1/users",
            Some(serde_json::json!({"email": email, "full_name": "Member", "password": PASSWORD, "role": "user", "memberships": tenants})),
        )
        .await;
    assert_eq!(r.status, axum::http::StatusCode::CREATED, "{}", r.text());
    r.json()["id"].as_str().expect("id").to_owned()
}
