//! The crate graph is the one docs/architecture.md draws: each library crate
//! depends on exactly the Ferry crates its table lists, the domain never
//! links an AWS SDK crate, and no Lambda function links SQLite.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// `cargo metadata` of the workspace, resolved from the lock file for this
/// machine's platform (the packages of others are not downloaded); read once
/// for the tests of this module.
fn metadata() -> &'static Value {
    static METADATA: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    METADATA.get_or_init(read_metadata)
}

fn read_metadata() -> Value {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked", "--offline", "--filter-platform", &host()])
        .current_dir(root())
        .output()
        .expect("cargo runs");
    assert!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

fn host() -> String {
    let out = std::process::Command::new("rustc").arg("-vV").output().expect("rustc runs");
    let info = String::from_utf8_lossy(&out.stdout).into_owned();
    info.lines().find_map(|l| l.strip_prefix("host: ")).expect("rustc -vV names the host").to_owned()
}

/// The rows of the "Crate graph" table: crate → the Ferry crates it may use.
fn documented_graph() -> BTreeMap<String, BTreeSet<String>> {
    let doc = std::fs::read_to_string(root().join("docs/architecture.md")).expect("docs/architecture.md");
    doc.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.trim().strip_prefix('|')?.split('|').map(str::trim).collect();
            let name = cells.first()?.strip_prefix("ferry-")?;
            let deps = cells.get(1)?.split(',').map(str::trim).filter(|d| !d.is_empty()).map(str::to_owned);
            Some((format!("ferry-{name}"), deps.collect()))
        })
        .collect()
}

/// Each workspace package's normal (non-dev) dependencies, by package name.
fn declared(meta: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let members: BTreeSet<&str> =
        meta["workspace_members"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| members.contains(p["id"].as_str().unwrap_or_default()))
        .map(|p| {
            let deps = p["dependencies"].as_array().unwrap().iter().filter(|d| d["kind"].is_null());
            (p["name"].as_str().unwrap().to_owned(), deps.map(|d| d["name"].as_str().unwrap().to_owned()).collect())
        })
        .collect()
}

/// Every package a workspace package links, transitively, without dev-dependencies.
fn linked(meta: &Value, package: &str) -> BTreeSet<String> {
    let nodes = meta["resolve"]["nodes"].as_array().unwrap();
    let by_id: HashMap<&str, &Value> = nodes.iter().map(|n| (n["id"].as_str().unwrap(), n)).collect();
    let name_of: HashMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let start = name_of.iter().find(|(_, n)| **n == package).map(|(id, _)| *id).expect("package in the workspace");
    let (mut seen, mut todo) = (BTreeSet::new(), vec![start]);
    while let Some(id) = todo.pop() {
        for dep in by_id[id]["deps"].as_array().unwrap() {
            let normal = dep["dep_kinds"].as_array().unwrap().iter().any(|k| k["kind"].is_null());
            let dep_id = dep["pkg"].as_str().unwrap();
            if normal && seen.insert(name_of[dep_id].to_owned()) {
                todo.push(dep_id);
            }
        }
    }
    seen
}

#[test]
fn each_crate_depends_on_exactly_the_ferry_crates_the_architecture_page_lists() {
    let meta = metadata();
    let declared = declared(meta);
    let documented = documented_graph();
    assert!(documented.contains_key("ferry-core"), "the table of docs/architecture.md was not found");
    for (name, deps) in declared.iter().filter(|(n, _)| n.starts_with("ferry-") && *n != "ferry-e2e") {
        let ferry: BTreeSet<String> = deps.iter().filter(|d| d.starts_with("ferry")).cloned().collect();
        let listed = documented.get(name).unwrap_or_else(|| panic!("{name} is missing from docs/architecture.md"));
        assert_eq!(&ferry, listed, "{name}'s Ferry dependencies differ from docs/architecture.md");
    }
    for name in documented.keys() {
        assert!(declared.contains_key(name), "docs/architecture.md lists {name}, which is not a workspace crate");
    }
}

#[test]
fn the_domain_links_no_aws_sdk_and_no_sqlite() {
    let meta = metadata();
    for domain in ["ferry-core", "ferry-net", "ferry-engine", "ferry-service", "ferry-http", "ferry-console"] {
        let bad: Vec<String> = linked(meta, domain)
            .into_iter()
            .filter(|p| p.starts_with("aws-sdk-") || p.starts_with("aws-smithy") || p == "rusqlite")
            .collect();
        assert!(bad.is_empty(), "{domain} links {bad:?}");
    }
}

#[test]
fn no_lambda_function_links_sqlite() {
    let meta = metadata();
    let functions = declared(meta).into_keys().filter(|n| !n.starts_with("ferry")).collect::<Vec<_>>();
    assert!(functions.contains(&"sync".to_owned()), "the function crates were not found: {functions:?}");
    for function in functions {
        let linked = linked(meta, &function);
        assert!(!linked.contains("rusqlite") && !linked.contains("libsqlite3-sys"), "{function} links SQLite");
    }
}
