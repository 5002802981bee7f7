//! `infra/template.yaml` against the workspace: one function per crate under
//! `functions/`, every API route reaching a function that serves its family,
//! IAM split by family, and the table of `docs/storage.md`.
//!
//! CloudFormation's short-form tags (`!Ref`, `!Sub`, `!GetAtt`...) are dropped
//! by the YAML loader, leaving their argument: `!GetAtt Role.Arn` reads as the
//! string `Role.Arn`, which is all these checks need.

use std::collections::{BTreeMap, BTreeSet};

use ferry_e2e::{function_crates, match_route, workspace_root};
use ferry_http::api::routes::specs;
use ferry_http::api::Family;
use ferry_http::intake::ROUTES;
use yaml_rust2::{Yaml, YamlLoader};

pub struct Template {
    doc: Yaml,
}

/// An `AWS::Serverless::Function` of the template.
#[derive(Debug, Clone)]
pub struct FunctionDef {
    pub logical_id: String,
    /// The crate CodeUri points at, e.g. `api-platform` for `../functions/api-platform`.
    pub crate_name: Option<String>,
    pub code_uri: String,
    pub role: Option<String>,
    pub routes: Vec<RouteDef>,
}

/// One HttpApi event: an API Gateway route.
#[derive(Debug, Clone)]
pub struct RouteDef {
    pub method: String,
    pub path: String,
}

impl RouteDef {
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

impl Template {
    pub fn load() -> Self {
        let path = workspace_root().join("infra/template.yaml");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let mut docs =
            YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
        assert_eq!(docs.len(), 1, "one YAML document expected");
        Self { doc: docs.remove(0) }
    }

    fn resources(&self) -> Vec<(String, &Yaml)> {
        let Some(resources) = self.doc["Resources"].as_hash() else { panic!("the template has no Resources") };
        resources.iter().filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v))).collect()
    }

    pub fn resource(&self, logical_id: &str) -> &Yaml {
        &self.doc["Resources"][logical_id]
    }

    fn of_type(&self, ty: &str) -> Vec<(String, &Yaml)> {
        self.resources().into_iter().filter(|(_, r)| r["Type"].as_str() == Some(ty)).collect()
    }

    pub fn functions(&self) -> Vec<FunctionDef> {
        self.of_type("AWS::Serverless::Function")
            .into_iter()
            .map(|(logical_id, r)| {
                let props = &r["Properties"];
                let code_uri = props["CodeUri"].as_str().unwrap_or_default().to_owned();
                let crate_name = code_uri
                    .trim_end_matches('/')
                    .strip_prefix("../functions/")
                    .filter(|n| !n.is_empty() && !n.contains('/'))
                    .map(str::to_owned);
                let role = props["Role"].as_str().and_then(|r| r.strip_suffix(".Arn")).map(str::to_owned);
                let routes = props["Events"]
                    .as_hash()
                    .map(|events| {
                        events
                            .values()
                            .filter(|e| e["Type"].as_str() == Some("HttpApi"))
                            .map(|e| RouteDef {
                                method: e["Properties"]["Method"].as_str().unwrap_or("ANY").to_ascii_uppercase(),
                                path: e["Properties"]["Path"].as_str().unwrap_or("$default").to_owned(),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                FunctionDef { logical_id, crate_name, code_uri, role, routes }
            })
            .collect()
    }

    /// The function and route API Gateway picks for a request: routes without
    /// a greedy `{proxy+}` first, then the most literal segments, then a
    /// method-specific route before `ANY`.
    pub fn resolve(&self, method: &str, path: &str) -> Option<(FunctionDef, RouteDef)> {
        // API Gateway's precedence: (no greedy variable, literal segments, segments, method-specific).
        type Rank = (bool, usize, usize, bool);
        let mut best: Option<(Rank, FunctionDef, RouteDef)> = None;
        for f in self.functions() {
            for r in &f.routes {
                let method_ok = r.method == "ANY" || r.method.eq_ignore_ascii_case(method);
                if !method_ok || match_route(&r.path, path).is_none() {
                    continue;
                }
                let segments: Vec<&str> = r.path.trim_matches('/').split('/').collect();
                let rank = (
                    !r.path.contains("+}"),
                    segments.iter().filter(|s| !s.starts_with('{')).count(),
                    segments.len(),
                    r.method != "ANY",
                );
                if best.as_ref().is_none_or(|(b, _, _)| rank > *b) {
                    best = Some((rank, f.clone(), r.clone()));
                }
            }
        }
        best.map(|(_, f, r)| (f, r))
    }
}

/// The families a function crate serves, read from its `main.rs`
/// (`router_for(hub, &[Family::X, ...])`), plus the common routes.
pub fn families_of(crate_name: &str) -> BTreeSet<String> {
    let main = workspace_root().join("functions").join(crate_name).join("src/main.rs");
    let text = std::fs::read_to_string(&main).unwrap_or_else(|e| panic!("cannot read {}: {e}", main.display()));
    let mut families: BTreeSet<String> = text
        .split("Family::")
        .skip(1)
        .map(|rest| rest.chars().take_while(|c| c.is_ascii_alphanumeric()).collect::<String>())
        .filter(|name| !name.is_empty())
        .collect();
    families.insert(format!("{:?}", Family::Common));
    families
}

/// Whether a function crate serves the webhook intake (`ferry_http::intake::router` in its `main.rs`).
pub fn serves_hooks(crate_name: &str) -> bool {
    let main = workspace_root().join("functions").join(crate_name).join("src/main.rs");
    std::fs::read_to_string(&main).is_ok_and(|t| t.contains("ferry_http::intake::") && t.contains("router(hub"))
}

/// Whether a function crate serves the connect pages (`ferry_http::connect::router`).
pub fn serves_connect_pages(crate_name: &str) -> bool {
    let main = workspace_root().join("functions").join(crate_name).join("src/main.rs");
    std::fs::read_to_string(&main).is_ok_and(|t| t.contains("connect::router"))
}

/// Whether a function crate serves the operator console (`ferry_console::router`).
pub fn serves_console(crate_name: &str) -> bool {
    let main = workspace_root().join("functions").join(crate_name).join("src/main.rs");
    std::fs::read_to_string(&main).is_ok_and(|t| t.contains("ferry_console::router(hub)"))
}

/// Whether a function crate requires the public URL (`FunctionHub::with_public_url` in its `main.rs`).
pub fn requires_public_url(crate_name: &str) -> bool {
    let main = workspace_root().join("functions").join(crate_name).join("src/main.rs");
    std::fs::read_to_string(&main).is_ok_and(|t| t.contains(".with_public_url()?"))
}

/// A path of the route table with every parameter filled in.
fn concrete(path: &str) -> String {
    path.split('/').map(|s| if s.starts_with('{') { "x1" } else { s }).collect::<Vec<_>>().join("/")
}

#[test]
fn every_function_crate_is_one_function_in_the_template_and_vice_versa() {
    let template = Template::load();
    let crates: BTreeSet<String> = function_crates().expect("list functions/").into_iter().collect();
    assert!(!crates.is_empty(), "no function crates found under functions/");

    let mut in_template: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut problems = Vec::new();
    for f in template.functions() {
        match &f.crate_name {
            Some(name) => in_template.entry(name.clone()).or_default().push(f.logical_id.clone()),
            None => problems.push(format!(
                "{}: CodeUri {:?} must be ../functions/<crate> (relative to infra/template.yaml)",
                f.logical_id, f.code_uri
            )),
        }
        let r = template.resource(&f.logical_id);
        if r["Metadata"]["BuildMethod"].as_str() != Some("rust-cargolambda") {
            problems.push(format!("{}: Metadata.BuildMethod must be rust-cargolambda", f.logical_id));
        }
        if let Some(name) = &f.crate_name {
            if r["Metadata"]["BuildProperties"]["Binary"].as_str() != Some(name.as_str()) {
                problems.push(format!("{}: Metadata.BuildProperties.Binary must be {name}", f.logical_id));
            }
            let manifest = workspace_root().join("functions").join(name).join("Cargo.toml");
            let declares_bin = std::fs::read_to_string(&manifest)
                .map(|t| t.contains("[[bin]]") && t.contains(&format!("name = \"{name}\"")))
                .unwrap_or(false);
            if !declares_bin {
                problems.push(format!("{}: {} must declare the binary {name}", f.logical_id, manifest.display()));
            }
        }
    }
    for (name, ids) in &in_template {
        if ids.len() > 1 {
            problems.push(format!("functions/{name} is deployed by several functions: {ids:?}"));
        }
        if !crates.contains(name) {
            problems.push(format!("{ids:?} point at functions/{name}, which is not a function crate"));
        }
    }
    for name in &crates {
        if !in_template.contains_key(name) {
            problems.push(format!("functions/{name} has no AWS::Serverless::Function in infra/template.yaml"));
        }
    }
    assert!(problems.is_empty(), "template and function crates disagree:\n  {}", problems.join("\n  "));
}

#[test]
fn every_api_route_reaches_a_function_serving_its_family() {
    let template = Template::load();
    let mut problems = Vec::new();
    for spec in specs() {
        let path = concrete(spec.path);
        let Some((function, route)) = template.resolve(spec.method.as_str(), &path) else {
            problems.push(format!("{} {}: no route in the template", spec.method, spec.path));
            continue;
        };
        let name = function.crate_name.clone().unwrap_or(function.logical_id.clone());
        let family = format!("{:?}", spec.family);
        if !families_of(&name).contains(&family) {
            problems.push(format!(
                "{} {} ({family}) is routed by `{}` to {name}, which does not serve {family}",
                spec.method,
                spec.path,
                route.key()
            ));
        }
    }
    assert!(problems.is_empty(), "routes reach the wrong functions:\n  {}", problems.join("\n  "));
}

#[test]
fn every_webhook_intake_route_reaches_the_function_serving_the_intake() {
    let template = Template::load();
    let mut problems = Vec::new();
    for (method, path) in ROUTES {
        match template.resolve(method, &concrete(path)) {
            Some((f, r)) => {
                let name = f.crate_name.clone().unwrap_or(f.logical_id.clone());
                if !serves_hooks(&name) || r.path != *path {
                    problems.push(format!("{method} {path} is routed by `{}` to {name}", r.key()));
                }
            }
            None => problems.push(format!("{method} {path}: no route in the template")),
        }
    }
    assert!(problems.is_empty(), "webhook intake routes:\n  {}", problems.join("\n  "));
}

#[test]
fn every_connect_page_route_reaches_the_function_serving_the_connect_pages() {
    let template = Template::load();
    let mut problems = Vec::new();
    for (method, path) in ferry_http::connect::ROUTES {
        match template.resolve(method, &concrete(path)) {
            Some((f, _)) if f.crate_name.as_deref().is_some_and(serves_connect_pages) => {}
            Some((f, route)) => {
                problems.push(format!("{method} {path} is routed by `{}` to {}", route.key(), f.logical_id))
            }
            None => problems.push(format!("{method} {path}: no route in the template")),
        }
    }
    assert!(problems.is_empty(), "connect pages:\n  {}", problems.join("\n  "));
}

#[test]
fn every_console_route_reaches_the_function_serving_the_console() {
    let template = Template::load();
    let mut problems = Vec::new();
    for (method, path) in ferry_console::ROUTES {
        match template.resolve(method, &concrete(path)) {
            Some((f, _)) if f.crate_name.as_deref().is_some_and(serves_console) => {}
            Some((f, route)) => {
                problems.push(format!("{method} {path} is routed by `{}` to {}", route.key(), f.logical_id))
            }
            None => problems.push(format!("{method} {path}: no route in the template")),
        }
    }
    // The platform admin's pages (users) live under /admin.
    match template.resolve("GET", "/admin/users") {
        Some((f, _)) if f.crate_name.as_deref().is_some_and(serves_console) => {}
        other => problems.push(format!("GET /admin/users reaches {:?}", other.map(|(f, r)| (f.logical_id, r.key())))),
    }
    assert!(problems.is_empty(), "console pages:\n  {}", problems.join("\n  "));
}

#[test]
fn every_template_route_leads_to_api_routes_its_function_serves() {
    let template = Template::load();
    let specs = specs();
    let mut problems = Vec::new();
    for f in template.functions() {
        let name = f.crate_name.clone().unwrap_or(f.logical_id.clone());
        let families = families_of(&name);
        for r in &f.routes {
            let intake = serves_hooks(&name) && ROUTES.iter().any(|(m, p)| r.method == *m && r.path == *p);
            let served = intake
                || specs.iter().any(|s| {
                    families.contains(&format!("{:?}", s.family))
                        && (r.method == "ANY" || r.method == s.method.as_str())
                        && template
                            .resolve(s.method.as_str(), &concrete(s.path))
                            .is_some_and(|(_, hit)| hit.key() == r.key())
                });
            let serves_page = serves_connect_pages(&name)
                && ferry_http::connect::ROUTES.iter().any(|(method, path)| {
                    (r.method == "ANY" || r.method == *method)
                        && template.resolve(method, &concrete(path)).is_some_and(|(_, hit)| hit.key() == r.key())
                });
            // A console route prefix (`/t/{proxy+}`) holds console pages, or is
            // the platform admin's `/admin/…` section of the console.
            let serves_screen = serves_console(&name)
                && (r.path.starts_with("/admin/")
                    || ferry_console::ROUTES.iter().any(|(method, path)| {
                        (r.method == "ANY" || r.method == *method)
                            && template.resolve(method, &concrete(path)).is_some_and(|(_, hit)| hit.key() == r.key())
                    }));
            if !served && !serves_page && !serves_screen {
                problems.push(format!("{name}: route `{}` serves none of its API routes", r.key()));
            }
        }
    }
    assert!(problems.is_empty(), "dead routes:\n  {}", problems.join("\n  "));
}

/// Every action in the inline policies of a role.
fn role_actions(template: &Template, role: &str) -> Vec<String> {
    let mut actions = Vec::new();
    for policy in template.resource(role)["Properties"]["Policies"].as_vec().cloned().unwrap_or_default() {
        for statement in policy["PolicyDocument"]["Statement"].as_vec().cloned().unwrap_or_default() {
            match &statement["Action"] {
                Yaml::String(a) => actions.push(a.clone()),
                Yaml::Array(list) => actions.extend(list.iter().filter_map(|a| a.as_str().map(str::to_owned))),
                _ => {}
            }
        }
    }
    actions
}

/// Secrets actions that only read (a secret's value, through its KMS key).
fn reads_only(action: &str) -> bool {
    matches!(action, "secretsmanager:GetSecretValue" | "kms:Decrypt")
}

/// Whether a function crate executes runs (hands events to the sync handler).
fn executes_runs(crate_name: &str) -> bool {
    let main = workspace_root().join("functions").join(crate_name).join("src/main.rs");
    std::fs::read_to_string(main).is_ok_and(|text| text.contains("lambda_sync::handle"))
}

#[test]
fn only_functions_serving_connections_write_secrets_api_functions_touch_none_and_none_may_scan() {
    let template = Template::load();
    let mut problems = Vec::new();
    for f in template.functions() {
        let name = f.crate_name.clone().unwrap_or(f.logical_id.clone());
        let Some(role) = &f.role else {
            problems.push(format!("{name}: needs its own Role (least privilege per function)"));
            continue;
        };
        if template.resource(role)["Type"].as_str() != Some("AWS::IAM::Role") {
            problems.push(format!("{name}: Role {role} is not an AWS::IAM::Role of the template"));
            continue;
        }
        let actions = role_actions(&template, role);
        // Writing secrets is for functions serving connections (the connect
        // pages store the tokens customers authorise, and the console edits
        // credentials and webhook secrets, so they count); run
        // executors, the webhook intake and the notifier may only read; the
        // platform and integrations API functions touch no secrets at all.
        let families = families_of(&name);
        let serves_connections = families.contains(&format!("{:?}", Family::Connections))
            || serves_connect_pages(&name)
            || serves_console(&name);
        let serves_api = [Family::Platform, Family::Integrations].iter().any(|f| families.contains(&format!("{f:?}")));
        let is_secrets = |a: &&String| a.starts_with("secretsmanager:") || a.starts_with("kms:");
        let secrets = actions.iter().any(|a| is_secrets(&a));
        let writes = actions.iter().filter(is_secrets).any(|a| !reads_only(a));
        if serves_connections != writes || (serves_connections && !secrets) {
            problems.push(format!(
                "{name}: writes secrets is {writes}, but serving connections is {serves_connections}: {actions:?}"
            ));
        }
        if serves_api && !serves_connections && secrets {
            problems.push(format!("{name}: serves the platform or integrations API but touches secrets: {actions:?}"));
        }
        for a in &actions {
            if a.ends_with(":*") || a == "*" || a.eq_ignore_ascii_case("dynamodb:Scan") {
                problems.push(format!("{name}: {role} grants {a}"));
            }
        }
    }
    let roles: BTreeSet<_> = template.functions().into_iter().filter_map(|f| f.role).collect();
    if roles.len() != template.functions().len() {
        problems.push("functions must not share roles".into());
    }
    assert!(problems.is_empty(), "IAM split:\n  {}", problems.join("\n  "));
}

#[test]
fn the_table_is_the_one_of_the_storage_design() {
    let template = Template::load();
    let tables = template.of_type("AWS::DynamoDB::Table");
    assert_eq!(tables.len(), 1, "one table");
    let (_, t) = &tables[0];
    assert_eq!(t["DeletionPolicy"].as_str(), Some("Retain"));
    assert_eq!(t["UpdateReplacePolicy"].as_str(), Some("Retain"));
    let p = &t["Properties"];
    assert_eq!(p["BillingMode"].as_str(), Some("PAY_PER_REQUEST"));
    let attrs: BTreeMap<&str, &str> = p["AttributeDefinitions"]
        .as_vec()
        .expect("AttributeDefinitions")
        .iter()
        .filter_map(|a| Some((a["AttributeName"].as_str()?, a["AttributeType"].as_str()?)))
        .collect();
    assert_eq!(
        attrs,
        BTreeMap::from([("g1pk", "S"), ("g1sk", "S"), ("g2pk", "S"), ("g2sk", "S"), ("pk", "S"), ("sk", "S")])
    );
    let keys = |schema: &Yaml| -> Vec<(String, String)> {
        schema
            .as_vec()
            .expect("KeySchema")
            .iter()
            .filter_map(|k| Some((k["AttributeName"].as_str()?.to_owned(), k["KeyType"].as_str()?.to_owned())))
            .collect()
    };
    let pair = |a: &str, b: &str| vec![(a.to_owned(), "HASH".to_owned()), (b.to_owned(), "RANGE".to_owned())];
    assert_eq!(keys(&p["KeySchema"]), pair("pk", "sk"));
    let gsis = p["GlobalSecondaryIndexes"].as_vec().expect("GlobalSecondaryIndexes");
    assert_eq!(gsis.len(), 2);
    for (gsi, (name, pk, sk)) in gsis.iter().zip([("gsi1", "g1pk", "g1sk"), ("gsi2", "g2pk", "g2sk")]) {
        assert_eq!(gsi["IndexName"].as_str(), Some(name));
        assert_eq!(keys(&gsi["KeySchema"]), pair(pk, sk));
        assert_eq!(gsi["Projection"]["ProjectionType"].as_str(), Some("ALL"));
    }
    assert_eq!(p["TimeToLiveSpecification"]["AttributeName"].as_str(), Some("ttl"));
    assert_eq!(p["TimeToLiveSpecification"]["Enabled"].as_bool(), Some(true));
    assert_eq!(p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool(), Some(true));
    assert_eq!(p["SSESpecification"]["SSEEnabled"].as_bool(), Some(true));
}

#[test]
fn routes_match_like_api_gateway() {
    let p = |v: &[(&str, &str)]| v.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect::<Vec<_>>();
    assert_eq!(match_route("/healthz", "/healthz"), Some(vec![]));
    assert_eq!(match_route("/v1/{proxy+}", "/v1/tenants/acme"), Some(p(&[("proxy", "tenants/acme")])));
    assert_eq!(match_route("/v1/{proxy+}", "/v1"), None);
    assert_eq!(match_route("/v1/tenants/{tenant}", "/v1/tenants/acme"), Some(p(&[("tenant", "acme")])));
    assert_eq!(match_route("/v1/tenants/{tenant}", "/v1/tenants/acme/x"), None);
    assert_eq!(match_route("/v1/tenants/{tenant}", "/v1/tenants/"), None);

    let template = Template::load();
    let hit = |m: &str, path: &str| template.resolve(m, path).and_then(|(f, r)| Some((f.crate_name?, r.key())));
    let s = |a: &str, b: &str| Some((a.to_owned(), b.to_owned()));
    assert_eq!(hit("GET", "/healthz"), s("api-platform", "GET /healthz"));
    assert_eq!(hit("POST", "/healthz"), None);
    assert_eq!(hit("GET", "/v1/tenants/acme"), s("api-platform", "ANY /v1/{proxy+}"));
    assert_eq!(
        hit("PUT", "/v1/tenants/acme/connections/c1/credentials"),
        s("api-connections", "ANY /v1/tenants/{tenant}/connections/{proxy+}")
    );
    assert_eq!(hit("GET", "/v1/tenants/acme/api-keys"), s("api-platform", "ANY /v1/{proxy+}"));
    assert_eq!(
        hit("POST", "/v1/tenants/acme/jobs/j1/runs"),
        s("api-integrations", "ANY /v1/tenants/{tenant}/jobs/{proxy+}")
    );
}

#[test]
fn run_executors_consume_the_run_queue_with_partial_batch_responses_and_a_dead_letter_queue() {
    let template = Template::load();
    let executors: Vec<FunctionDef> =
        template.functions().into_iter().filter(|f| f.crate_name.as_deref().is_some_and(executes_runs)).collect();
    assert!(!executors.is_empty(), "no function executes runs");
    for f in executors {
        let events = template.resource(&f.logical_id)["Properties"]["Events"].as_hash().cloned().unwrap_or_default();
        let sqs: Vec<&Yaml> = events.values().filter(|e| e["Type"].as_str() == Some("SQS")).collect();
        assert_eq!(sqs.len(), 1, "{}: one SQS event source (the run queue)", f.logical_id);
        let props = &sqs[0]["Properties"];
        let responses = props["FunctionResponseTypes"].as_vec().cloned().unwrap_or_default();
        assert!(
            responses.iter().any(|r| r.as_str() == Some("ReportBatchItemFailures")),
            "{}: without ReportBatchItemFailures one bad message redelivers the whole batch",
            f.logical_id
        );
        let queue = props["Queue"].as_str().and_then(|q| q.strip_suffix(".Arn")).expect("Queue: !GetAtt <queue>.Arn");
        let queue = template.resource(queue);
        assert_eq!(queue["Type"].as_str(), Some("AWS::SQS::Queue"));
        let dlq =
            queue["Properties"]["RedrivePolicy"]["deadLetterTargetArn"].as_str().and_then(|d| d.strip_suffix(".Arn"));
        let dlq = dlq.expect("the run queue needs a RedrivePolicy with a dead-letter queue");
        assert_eq!(template.resource(dlq)["Type"].as_str(), Some("AWS::SQS::Queue"));
        // Lambda's guidance: at least six times the function timeout, so a
        // message is not delivered again while a batch is still running.
        let timeout = template.resource(&f.logical_id)["Properties"]["Timeout"].as_i64().expect("a Timeout");
        let visibility = queue["Properties"]["VisibilityTimeout"].as_i64().expect("a VisibilityTimeout");
        assert!(visibility >= 6 * timeout, "{}: visibility {visibility}s < 6 x {timeout}s", f.logical_id);
    }
}

#[test]
fn functions_making_links_require_the_public_url_and_the_template_gives_it_to_them() {
    let template = Template::load();
    let mut problems = Vec::new();
    for f in template.functions() {
        let name = f.crate_name.clone().unwrap_or(f.logical_id.clone());
        // Connections answers hold magic links and webhook URLs, the connect pages the OAuth
        // redirect URI, and the intake checks signatures over the URL HubSpot called.
        let makes_links = families_of(&name).contains(&format!("{:?}", Family::Connections))
            || serves_connect_pages(&name)
            || serves_hooks(&name);
        if makes_links && !requires_public_url(&name) {
            problems.push(format!("{name}: makes links but starts without FunctionHub::with_public_url()"));
        }
        let env = &template.resource(&f.logical_id)["Properties"]["Environment"]["Variables"];
        if requires_public_url(&name) && env["FERRY_PUBLIC_URL"].is_badvalue() {
            problems.push(format!("{name}: requires FERRY_PUBLIC_URL, which its Environment does not set"));
        }
    }
    assert!(problems.is_empty(), "public URL:\n  {}", problems.join("\n  "));
}
