//! The `console` function as Lambda runs it, against moto: the first admin
//! user made by `ferry admin create-user` (as on AWS), the sign-in page and
//! its form, the session cookie, and tenant pages rendered from the table.

use std::io::Write as _;
use std::process::{Command, Stdio};

use ferry_e2e::{function_binary, Deployment, HttpApiRequest, HttpApiResponse};
use serde_json::json;

use super::runtime::{aws_configured, expect, Function};
use super::template::Template;

const ADMIN_EMAIL: &str = "admin@ferry.example";
const ADMIN_PASSWORD: &str = "a long admin passphrase";
const USER_EMAIL: &str = "ops@acme.example";
const USER_PASSWORD: &str = "a long user passphrase";

const MANIFEST: &str = "version: 1.0\nname: nightly\nconnectors:\n  dst: {auth: none, base_url: 'https://dst.example', required: false}\n\
                        flows:\n  - name: orders\n    source: {type: http, connector: dst, request: {path: /orders}, records: items}\n    target: {type: http, connector: dst, path: /orders}\n";

/// `ferry admin create-user` against the deployment's table and secrets prefix, the password on stdin.
fn create_admin_user(deployment: &Deployment) -> (bool, String) {
    let ferry = function_binary("debug", "ferry").unwrap_or_else(|e| panic!("{e}"));
    let mut child = Command::new(ferry)
        .args(["admin", "create-user", "--email", ADMIN_EMAIL, "--password-stdin"])
        .args(["--table", &deployment.table, "--secrets-prefix", &deployment.secrets_prefix])
        .env("FERRY_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ferry admin create-user");
    child.stdin.take().expect("stdin").write_all(format!("{ADMIN_PASSWORD}\n").as_bytes()).expect("write stdin");
    let out = child.wait_with_output().expect("ferry admin create-user ends");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// The value of the hidden `csrf` field of a page's first form.
fn csrf_field(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").unwrap_or_else(|| panic!("no CSRF field in:\n{page}"));
    let rest = &page[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').expect("closing quote")].to_owned()
}

/// `name=value` of a `Set-Cookie`, for the next request's `Cookie` header.
fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap_or_default().to_owned()
}

fn html(r: &HttpApiResponse, status: u16, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.body);
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("text/html")), "{what}: {:?}", r.headers);
    let csp = r.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("script-src 'none'") && csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
}

/// Signs in through the sign-in form: GET /login (its CSRF nonce cookie and
/// token), then the POST. Returns the session cookie and where it led.
async fn sign_in(console: &mut Function, t: &Template, email: &str, password: &str) -> (String, String) {
    let form = console.call(t, HttpApiRequest::new("GET", "/login").header("accept", "text/html")).await;
    html(&form, 200, "GET /login");
    assert!(form.body.contains("Sign in to Ferry"), "{}", form.body);
    let nonce = pair(form.set_cookie("ferry_console_login").expect("the sign-in form sets its CSRF nonce cookie"));
    let body: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("csrf", &csrf_field(&form.body))
        .append_pair("email", email)
        .append_pair("password", password)
        .finish();
    let req = HttpApiRequest::new("POST", "/login")
        .header("cookie", &nonce)
        .raw_body("application/x-www-form-urlencoded", &body);
    let signed = console.call(t, req).await;
    assert_eq!(signed.status, 303, "POST /login as {email}: {}", signed.body);
    let cookie = signed.set_cookie("ferry_console").unwrap_or_else(|| panic!("no session cookie: {signed:?}"));
    for attr in ["HttpOnly", "SameSite=Strict", "Secure"] {
        assert!(cookie.contains(attr), "the session cookie is {attr} (the public URL is https): {cookie}");
    }
    (pair(cookie), signed.header("location").unwrap_or_default().to_owned())
}

async fn page(console: &mut Function, t: &Template, path: &str, cookie: &str) -> HttpApiResponse {
    console.call(t, HttpApiRequest::new("GET", path).header("accept", "text/html").header("cookie", cookie)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_function_signs_in_the_admin_the_cli_made_and_renders_tenant_pages_from_the_table() {
    if !aws_configured() {
        return;
    }
    let template = Template::load();
    let deployment = Deployment::create("lambda-console").await.expect("table and admin key");
    let env = deployment.function_env();
    let admin_key = deployment.admin_key.as_str();

    // As on AWS: no function makes the first admin user; the operator's CLI does, once.
    let (ok, out) = create_admin_user(&deployment);
    assert!(ok && out.contains(&format!("Created the platform admin user {ADMIN_EMAIL}")), "{out}");
    assert!(!out.contains(ADMIN_PASSWORD), "a supplied password is never echoed: {out}");
    let (ok, again) = create_admin_user(&deployment);
    assert!(ok && again.contains("already has its first platform admin user"), "{again}");
    // It also made the signing key the console may only read.
    let config = ferry_lambda::hub::load_sdk_config(None).await;
    let sm = ferry_lambda::hub::secretsmanager_client(&config);
    let key_name = format!("{}/platform/connect/signing-key", deployment.secrets_prefix);
    sm.describe_secret().secret_id(&key_name).send().await.expect("the CLI made the platform signing key");

    // A tenant, its user and a job, through the API functions.
    let mut platform = Function::start("api-platform", &env).await;
    let created = platform.post(&template, "/v1/tenants", admin_key, &json!({"id": "acme", "name": "Acme Corp"})).await;
    expect(&created, 201, "POST /v1/tenants");
    let user = json!({"email": USER_EMAIL, "full_name": "Olga Ops", "password": USER_PASSWORD, "role": "user", "memberships": ["acme"]});
    expect(&platform.post(&template, "/v1/users", admin_key, &user).await, 201, "POST /v1/users");
    platform.sandbox.kill().await;
    let mut integrations = Function::start("api-integrations", &env).await;
    let release = json!({"manifest": MANIFEST});
    let published = integrations.post(&template, "/v1/integrations/nightly/releases", admin_key, &release).await;
    expect(&published, 201, "publish");
    let job = json!({"name": "Nightly orders", "integration": "nightly", "configs": {}});
    let job = integrations.post(&template, "/v1/tenants/acme/jobs", admin_key, &job).await;
    let job_id = expect(&job, 201, "POST a job")["id"].as_str().expect("job id").to_owned();
    integrations.sandbox.kill().await;

    let mut console = Function::start("console", &env).await;
    let css = console.call(&template, HttpApiRequest::new("GET", "/static/console.css")).await;
    assert_eq!(css.status, 200, "{}", css.body);
    assert!(css.header("content-type").is_some_and(|c| c.starts_with("text/css")), "{:?}", css.headers);

    let home = console.call(&template, HttpApiRequest::new("GET", "/t/acme/jobs")).await;
    assert_eq!((home.status, home.header("location")), (303, Some("/login")), "signed out: to the sign-in page");

    let wrong = {
        let form = console.call(&template, HttpApiRequest::new("GET", "/login")).await;
        let nonce = pair(form.set_cookie("ferry_console_login").expect("nonce cookie"));
        let body = format!("csrf={}&email=ops%40acme.example&password=wrong-password", csrf_field(&form.body));
        let req = HttpApiRequest::new("POST", "/login")
            .header("cookie", &nonce)
            .raw_body("application/x-www-form-urlencoded", &body);
        console.call(&template, req).await
    };
    html(&wrong, 401, "a wrong password");
    assert!(wrong.set_cookie("ferry_console").is_none(), "no session for a wrong password");
    assert!(wrong.body.contains("ops@acme.example"), "the email is kept in the form: {}", wrong.body);

    // The user of one tenant lands in its workspace; its pages come from the table.
    let (cookie, landed) = sign_in(&mut console, &template, USER_EMAIL, USER_PASSWORD).await;
    assert_eq!(landed, "/t/acme/", "one tenant: straight to its dashboard");
    let dashboard = page(&mut console, &template, "/t/acme/", &cookie).await;
    html(&dashboard, 200, "the dashboard");
    assert!(dashboard.body.contains("Acme Corp"), "{}", dashboard.body);
    let jobs = page(&mut console, &template, "/t/acme/jobs", &cookie).await;
    html(&jobs, 200, "the jobs list");
    // minijinja escapes the slashes of an href (`&#x2f;`).
    let links = jobs.body.replace("&#x2f;", "/");
    assert!(jobs.body.contains("Nightly orders") && links.contains(&format!("/t/acme/jobs/{job_id}")), "{}", jobs.body);
    let detail = page(&mut console, &template, &format!("/t/acme/jobs/{job_id}"), &cookie).await;
    html(&detail, 200, "the job's page");
    assert!(detail.body.contains("Nightly orders") && detail.body.contains("nightly"), "{}", detail.body);
    let elsewhere = page(&mut console, &template, "/t/globex/jobs", &cookie).await;
    assert_eq!(elsewhere.status, 404, "a path naming another tenant is refused: {}", elsewhere.body);

    // A state change without the session's CSRF token is refused.
    let pause = HttpApiRequest::new("POST", &format!("/t/acme/jobs/{job_id}/pause"))
        .header("cookie", &cookie)
        .raw_body("application/x-www-form-urlencoded", "csrf=forged");
    let refused = console.call(&template, pause).await;
    assert_eq!(refused.status, 403, "{}", refused.body);

    // The admin the CLI made signs in; a platform admin sees every tenant, here only one.
    let (admin, landed) = sign_in(&mut console, &template, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(landed, "/t/acme/", "the hub's only tenant: straight to its dashboard");
    let switcher = page(&mut console, &template, "/tenants", &admin).await;
    html(&switcher, 200, "the tenant switcher");
    assert!(switcher.body.contains("Acme Corp"), "{}", switcher.body);

    console.assert_json_logs();
    let logs = console.sandbox.output();
    assert!(!logs.contains(USER_PASSWORD) && !logs.contains(ADMIN_PASSWORD), "no password reaches the logs");
    let token = cookie.trim_start_matches("ferry_console=");
    assert!(!logs.contains(token), "the session token never reaches the logs");
    console.sandbox.kill().await;
}
