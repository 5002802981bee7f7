//! Connection profiles in the console: created for a catalogue provider with
//! the credential fields of its auth kind, edited (secrets write-only, a
//! blank secret kept), tested, their magic link issued and revoked,
//! disconnected after a confirmation, Max Concurrent set; refusals shown
//! beside the field they concern with what was typed kept.

use axum::http::{HeaderMap, Method, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{csrf_of, hub_with_admin, location, member, Browser, PASSWORD};
use crate::support::app::TestApp;
use crate::support::jobs::serve;

const CANARY: &str = "canary-token-51d0e2";

/// Tenant acme and its member olga, signed in to it.
async fn signed_in() -> (TestApp, Browser) {
    let app = hub_with_admin().await;
    app.tenant("acme").await;
    member(&app, "olga@acme.example", &["acme"]).await;
    let mut b = Browser::new(&app.hub);
    let r = b.sign_in("olga@acme.example", PASSWORD).await;
    assert_eq!(location(&r), "/t/acme/");
    (app, b)
}

async fn view(app: &TestApp, id: &str) -> Value {
    app.admin(Method::GET, &format!("/v1/tenants/acme/connections/{id}"), None).await.json()
}

/// Posts a form of the connection page at `path`, with the page's CSRF token.
async fn submit(b: &mut Browser, page: &str, path: &str, form: &[(&str, &str)]) -> crate::support::app::Response {
    let csrf = csrf_of(&b.get(page).await.text());
    let mut all = vec![("csrf", csrf.as_str())];
    all.extend_from_slice(form);
    b.post(path, &all).await
}

/// Creates a connection through the form; returns its id.
async fn create(b: &mut Browser, form: &[(&str, &str)]) -> String {
    let r = submit(b, "/t/acme/connections/new", "/t/acme/connections", form).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    location(&r).rsplit('/').next().expect("an id").to_owned()
}

#[tokio::test]
async fn a_connection_is_created_for_a_catalogue_provider_with_the_fields_of_its_auth_kind() {
    let (app, mut b) = signed_in().await;
    let empty = b.get("/t/acme/connections").await;
    assert_eq!(empty.status, StatusCode::OK);
    assert!(empty.text().contains("No connection profiles yet") && empty.text().contains("/t/acme/connections/new"));

    // The first step offers the catalogue.
    let choose = b.get("/t/acme/connections/new").await.text();
    for provider in ["HubSpot", "Stripe", "Zendesk", "Another system"] {
        assert!(choose.contains(provider), "{provider} is offered");
    }
    // Each auth kind asks for its own fields, each labelled.
    let stripe = b.get("/t/acme/connections/new?provider=stripe").await.text();
    assert!(stripe.contains(r#"<label for="c-cred-token">Token</label>"#), "{stripe}");
    assert!(stripe.contains(r#"id="c-cred-token" name="token" type="password""#));
    let basic = b.get("/t/acme/connections/new?provider=other&auth_kind=basic").await.text();
    assert!(
        basic.contains(">Username</label>") && basic.contains(">Password</label>") && basic.contains("c-connector")
    );
    let zendesk = b.get("/t/acme/connections/new?provider=zendesk").await.text();
    assert!(zendesk.contains(r#"name="setting_subdomain""#) && zendesk.contains("client credentials"), "{zendesk}");
    let other = b.get("/t/acme/connections/new?provider=other&step=provider").await;
    assert_eq!(other.status, StatusCode::BAD_REQUEST);
    assert!(other.text().contains(r#"id="auth_kind-error""#), "the missing choice is said beside it");

    let id = create(
        &mut b,
        &[
            ("provider", "stripe"),
            ("auth_kind", "bearer"),
            ("name", "Stripe live"),
            ("token", CANARY),
            ("max_concurrent", "8"),
        ],
    )
    .await;
    let v = view(&app, &id).await;
    assert_eq!((v["connector"].as_str(), v["status"].as_str()), (Some("stripe"), Some("connected")), "{v}");
    assert_eq!(v["max_concurrent"], 8);
    assert_eq!(v["credentials"]["token"], "********");
    let page = b.get(&format!("/t/acme/connections/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.text();
    assert!(html.contains("Connected") && html.contains("Stripe") && html.contains("********"));
    assert!(!html.contains(CANARY), "the secret is never rendered");
    let list = b.get("/t/acme/connections").await.text();
    assert!(list.contains("Stripe live") && list.contains("badge-ok") && list.contains(">8<"), "{list}");
    assert!(!list.contains(CANARY));
}

#[tokio::test]
async fn refusals_stand_beside_their_field_and_the_form_keeps_what_was_typed() {
    let (_app, mut b) = signed_in().await;
    let base = [("provider", "stripe"), ("auth_kind", "bearer"), ("name", "Stripe live"), ("token", CANARY)];
    for (max, says) in [("65", "1 to 64"), ("0", "1 to 64"), ("lots", "whole number")] {
        let mut form = base.to_vec();
        form.push(("max_concurrent", max));
        let r = submit(&mut b, "/t/acme/connections/new", "/t/acme/connections", &form).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{max}");
        let html = r.text();
        let error = html.split(r#"id="max_concurrent-error""#).nth(1).unwrap_or_default();
        assert!(error.split("</p>").next().unwrap_or_default().contains(says), "{max}: {html}");
        assert!(html.contains(r#"aria-describedby="max_concurrent-error""#), "the field points at its error");
        assert!(html.contains(r#"value="Stripe live""#), "the name is kept");
        assert!(html.contains(&format!(r#"value="{max}""#)), "the typed number is kept");
        assert!(!html.contains(CANARY), "a typed secret is not sent back");
    }
    create(&mut b, &base).await;
    let r = submit(&mut b, "/t/acme/connections/new", "/t/acme/connections", &base).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains(r#"id="name-error""#) && r.text().contains("already has a connection named"));
    let r = submit(
        &mut b,
        "/t/acme/connections/new",
        "/t/acme/connections",
        &[("provider", "other"), ("auth_kind", "api_key"), ("name", "Mine"), ("connector", "Not A Name")],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains(r#"id="connector-error""#) && r.text().contains(r#"value="Not A Name""#));
    let list = b.get("/t/acme/connections").await.text();
    assert_eq!(list.matches("Stripe live").count(), 1, "refused forms created nothing");
}

#[tokio::test]
async fn editing_sets_max_concurrent_and_a_blank_secret_keeps_the_stored_one() {
    let (app, mut b) = signed_in().await;
    let id = create(
        &mut b,
        &[
            ("provider", "other"),
            ("auth_kind", "basic"),
            ("name", "ERP"),
            ("connector", "erp"),
            ("username", "ann"),
            ("password", CANARY),
        ],
    )
    .await;
    let page = format!("/t/acme/connections/{id}");
    let html = b.get(&page).await.text();
    assert!(html.contains("username") && html.contains("password") && html.contains("stored; blank keeps it"));
    assert!(!html.contains(CANARY) && !html.contains(">ann<"), "stored values are masked, usernames too");

    // A new username, the password left blank: the stored password stays.
    let r = submit(&mut b, &page, &format!("{page}/credentials"), &[("username", "bob"), ("password", "")]).await;
    assert_eq!((r.status, location(&r)), (StatusCode::SEE_OTHER, page.clone()));
    let conn = app.hub.connections().get_connection("acme", &id).await.expect("connection");
    let stored = app.hub.connections().connection_credentials(&conn).await.expect("read").expect("stored");
    use secrecy::ExposeSecret;
    assert_eq!(stored.get("username").map(|s| s.expose_secret().to_owned()).as_deref(), Some("bob"));
    assert_eq!(stored.get("password").map(|s| s.expose_secret().to_owned()).as_deref(), Some(CANARY));

    // Max Concurrent: set, refused beside the field with the name kept, removed.
    let r = submit(&mut b, &page, &page, &[("name", "ERP prod"), ("max_concurrent", "4")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(view(&app, &id).await["max_concurrent"], 4);
    let r = submit(&mut b, &page, &page, &[("name", "ERP typed"), ("max_concurrent", "100")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains(r#"id="max_concurrent-error""#) && r.text().contains(r#"value="ERP typed""#));
    assert_eq!(view(&app, &id).await["name"], "ERP prod", "the refused edit changed nothing");
    let r = submit(&mut b, &page, &page, &[("name", "ERP prod"), ("max_concurrent", "")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(view(&app, &id).await["max_concurrent"].is_null(), "empty means no limit");
}

const VERIFIED: &str = r#"
version: 1.0
name: verified-sync
connectors:
  crm:
    provider: itemsource
    auth: api_key
    api_key: {header: X-API-Key}
    verify: {path: /me}
flows:
  - name: items
    source: {type: http, connector: crm, request: {path: /items}, records: items}
    target: {type: file, format: jsonl, path: 'items.jsonl'}
"#;

#[tokio::test]
async fn test_connection_sends_the_declared_request_and_shows_the_outcome_with_its_message() {
    let (app, mut b) = signed_in().await;
    let me = Router::new().route(
        "/me",
        get(|h: HeaderMap| async move {
            if h.get("x-api-key").is_some_and(|k| k == "good-key") {
                StatusCode::OK
            } else {
                StatusCode::UNAUTHORIZED
            }
        }),
    );
    let base = serve(me).await;
    app.publish("verified-sync", VERIFIED).await;
    let body = json!({"name": "crm", "connector": "itemsource", "auth_kind": "api_key", "settings": {"base_url": base}, "credentials": {"api_key": "typo-key"}});
    let r = app.admin(Method::POST, "/v1/tenants/acme/connections", Some(body)).await;
    let id = r.json()["id"].as_str().expect("id").to_owned();
    let page = format!("/t/acme/connections/{id}");

    // Nothing binds it yet: there is nothing to test, and the page says why.
    let r = submit(&mut b, &page, &format!("{page}/test"), &[]).await;
    assert_eq!(location(&r), format!("{page}?test=not_declared#test"));
    assert!(b.get(&location(&r)).await.text().contains("declares a test request"));

    app.job(
        "acme",
        json!({"name": "items", "integration": "verified-sync", "connections": {"crm": id}, "configs": {}}),
    )
    .await;
    let r = submit(&mut b, &page, &format!("{page}/test"), &[]).await;
    assert_eq!(location(&r), format!("{page}?test=failed#test"));
    let html = b.get(&location(&r)).await.text();
    assert!(html.contains("The test failed") && html.contains("refused these credentials"), "{html}");
    assert!(html.contains("Needs attention"));
    assert!(!html.contains("typo-key"));
    assert_eq!(view(&app, &id).await["status"], "error");

    let r = submit(&mut b, &page, &format!("{page}/credentials"), &[("api_key", "good-key")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = submit(&mut b, &page, &format!("{page}/test"), &[]).await;
    assert_eq!(location(&r), format!("{page}?test=passed#test"));
    let html = b.get(&location(&r)).await.text();
    assert!(html.contains("The test request succeeded") && html.contains("Connected"), "{html}");
    assert!(!html.contains("good-key"));
}

#[tokio::test]
async fn the_magic_link_is_shown_with_its_expiry_reissued_and_revoked_only_when_confirmed() {
    let (app, mut b) = signed_in().await;
    let id = create(&mut b, &[("provider", "hubspot"), ("name", "HubSpot"), ("grant", "authorization_code")]).await;
    let page = format!("/t/acme/connections/{id}");
    let link = |html: &str| {
        let at = html.find("id=\"l-url\"").expect("the link field");
        let value = html[at..].split("value=\"").nth(1).and_then(|v| v.split('"').next()).unwrap_or_default();
        value.replace("&#x2f;", "/")
    };
    let html = b.get(&page).await.text();
    let first = link(&html);
    assert!(first.contains("/connect/ml_") && html.contains("readonly"), "{first}");
    assert!(html.contains("Does not expire") && html.contains("Not connected"));
    assert_eq!(view(&app, &id).await["link"], first.as_str());

    let r = submit(&mut b, &page, &format!("{page}/link"), &[("expires", "7")]).await;
    assert_eq!(location(&r), format!("{page}#link"));
    let html = b.get(&page).await.text();
    let second = link(&html);
    assert_ne!(first, second, "a new link replaces the old");
    assert!(html.contains("Expires 20"), "the expiry is shown: {html}");
    assert!(view(&app, &id).await["link_expires_at"].is_string());

    let r = submit(&mut b, &page, &format!("{page}/link/revoke"), &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains(r#"id="revoke-error""#));
    assert_eq!(view(&app, &id).await["link"], second.as_str(), "unconfirmed, the link stays");
    let r = submit(&mut b, &page, &format!("{page}/link/revoke"), &[("confirm", "on")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let html = b.get(&page).await.text();
    assert!(html.contains("The link was revoked") && !html.contains("id=\"l-url\""));
    assert!(view(&app, &id).await["link"].is_null());
    let r = submit(&mut b, &page, &format!("{page}/link"), &[("expires", "never")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(view(&app, &id).await["link"].as_str().is_some_and(|l| l.contains("/connect/ml_")));
}

#[tokio::test]
async fn disconnect_asks_first_then_forgets_the_credentials() {
    let (app, mut b) = signed_in().await;
    let id = create(&mut b, &[("provider", "stripe"), ("name", "Stripe"), ("token", CANARY)]).await;
    let page = format!("/t/acme/connections/{id}");
    assert!(b.get(&page).await.text().replace("&#x2f;", "/").contains(&format!(r#"href="{page}/disconnect""#)));
    let confirm = b.get(&format!("{page}/disconnect")).await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(confirm.text().contains("Disconnect Stripe?") && confirm.text().contains("Cancel"));
    assert_eq!(view(&app, &id).await["status"], "connected", "opening the confirmation changes nothing");
    let r = submit(&mut b, &page, &format!("{page}/disconnect"), &[]).await;
    assert_eq!((r.status, location(&r)), (StatusCode::SEE_OTHER, page.clone()));
    let v = view(&app, &id).await;
    assert_eq!(v["status"], "disconnected");
    assert_eq!(v["credentials"], json!({}));
    assert!(b.get(&page).await.text().contains("Not connected"));
}

#[tokio::test]
async fn an_oauth_connection_with_client_credentials_gets_its_token_from_the_tenants_client() {
    let (app, mut b) = signed_in().await;
    let token = Router::new().route(
        "/token",
        post(|| async {
            Json(json!({"access_token": "at-from-provider", "token_type": "bearer", "expires_in": 3600}))
        }),
    );
    let base = serve(token).await;
    let secret = "cs-0123456789abcdef0123456789abcdef";
    let form = [
        ("provider", "other"),
        ("auth_kind", "oauth2"),
        ("name", "Warehouse"),
        ("connector", "warehouse"),
        ("grant", "client_credentials"),
        ("client_id", "ferry-client"),
        ("client_secret", secret),
        ("token_url", &format!("{base}/token")),
    ];
    let id = create(&mut b, &form).await;
    let v = view(&app, &id).await;
    assert_eq!(v["status"], "connected", "{v}");
    let html = b.get(&format!("/t/acme/connections/{id}")).await.text();
    assert!(html.contains("client-credentials grant") && html.contains("ferry-client"), "{html}");
    assert!(!html.contains(secret) && !html.contains("at-from-provider"));
}

#[tokio::test]
async fn the_list_pages_through_every_connection() {
    let (app, mut b) = signed_in().await;
    for i in 0..27 {
        let body = json!({"name": format!("conn {i:02}"), "connector": "stripe", "auth_kind": "bearer"});
        let r = app.admin(Method::POST, "/v1/tenants/acme/connections", Some(body)).await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let first = b.get("/t/acme/connections").await.text();
    let next = first.split("rel=\"next\"").next().and_then(|s| s.rsplit("href=\"").next()).expect("a next link");
    let next = next.split('"').next().unwrap_or_default().replace("&amp;", "&");
    let second = b.get(&format!("/t/acme/connections{next}")).await.text();
    let seen = |html: &str| (0..27).filter(|i| html.contains(&format!("conn {i:02}<"))).collect::<Vec<_>>();
    let (a, z) = (seen(&first), seen(&second));
    assert_eq!(a.len() + z.len(), 27, "{a:?} {z:?}");
    assert!(a.iter().all(|i| !z.contains(i)));
    assert!(second.contains("Not connected") && second.contains("First page"));
}
