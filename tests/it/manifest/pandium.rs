//! Manifests shaped like Pandium's published samples parse unchanged, and the
//! typed manifest carries what they say.

use ferry_core::manifest::{self, checks, Connectors, FormatVersion, Manifest, UiElement};
use serde_json::{json, Value};

use super::manifests_dir;

fn load(name: &str) -> Manifest {
    let path = manifests_dir("pandium").join(name);
    let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    match manifest::parse(name, &source) {
        Ok(m) => m,
        Err(diagnostics) => {
            let lines: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
            panic!("{name} is one of Pandium's shapes and must parse:\n{}", lines.join("\n"))
        }
    }
}

/// Element kinds in document order, nested ones after their parent.
fn kinds(el: &UiElement, out: &mut Vec<String>) {
    let (kind, children) = match el {
        UiElement::VerticalLayout { elements } => ("VerticalLayout", Some(elements)),
        UiElement::HorizontalLayout { elements } => ("HorizontalLayout", Some(elements)),
        UiElement::Section { elements, .. } => ("Section", Some(elements)),
        UiElement::Control { .. } => ("Control", None),
        UiElement::MultiSelectControl { .. } => ("MultiSelectControl", None),
        UiElement::Label { .. } => ("Label", None),
        UiElement::Divider {} => ("Divider", None),
    };
    out.push(kind.to_owned());
    for child in children.into_iter().flatten() {
        kinds(child, out);
    }
}

fn all_kinds(m: &Manifest) -> Vec<String> {
    let mut out = Vec::new();
    kinds(m.configs.as_ref().and_then(|c| c.uischema.as_ref()).expect("a uischema"), &mut out);
    out
}

/// Elements in document order, flattened.
fn flatten(el: &UiElement) -> Vec<&UiElement> {
    let mut out = vec![el];
    if let UiElement::VerticalLayout { elements }
    | UiElement::HorizontalLayout { elements }
    | UiElement::Section { elements, .. } = el
    {
        out.extend(elements.iter().flat_map(flatten));
    }
    out
}

fn controls(m: &Manifest) -> Vec<&UiElement> {
    flatten(m.configs.as_ref().and_then(|c| c.uischema.as_ref()).expect("a uischema"))
        .into_iter()
        .filter(|e| matches!(e, UiElement::Control { .. } | UiElement::MultiSelectControl { .. }))
        .collect()
}

fn control(m: &Manifest, property: &str) -> UiElement {
    let scope = format!("#/properties/{property}");
    controls(m)
        .into_iter()
        .find(|e| match e {
            UiElement::Control { scope: s, .. } | UiElement::MultiSelectControl { scope: s, .. } => *s == scope,
            _ => false,
        })
        .cloned()
        .unwrap_or_else(|| panic!("no control for {property}"))
}

fn schema(m: &Manifest) -> &Value {
    &m.configs.as_ref().expect("configs").schema
}

#[test]
fn pokemon_of_the_day_with_its_dynamic_configs() {
    let m = load("pokemon_of_the_day.yaml");
    assert_eq!(m.version, Some(FormatVersion::Number(0.4)));
    assert_eq!(m.base.as_deref(), Some("node:20.9.0"));
    assert_eq!(m.run.as_deref(), Some("node ."));
    assert!(m.build.as_deref().is_some_and(|b| b.starts_with("npm install")));
    assert!(m.connectors.is_empty(), "the sample lists no connectors");
    assert!(m.flows.is_empty(), "a Pandium process integration has no flows");

    // Both configs are placeholders that init-run output replaces.
    let s = schema(&m);
    assert_eq!(s["properties"]["pokemon_type"]["$ref"], "#/definitions/pokemon_types");
    assert_eq!(s["properties"]["slack_user"]["$ref"], "#/definitions/slack_users");
    assert_eq!(s["definitions"]["pokemon_types"]["enum"], json!(["placeholder"]));
    assert_eq!(s["definitions"]["slack_users"]["oneOf"][0], json!({"title": "Placeholder", "const": "placeholder"}));
    assert_eq!(s["required"], json!(["pokemon_type", "slack_user"]));

    assert_eq!(all_kinds(&m), ["VerticalLayout", "Section", "Control", "Control"]);
    let ui = m.configs.as_ref().and_then(|c| c.uischema.as_ref()).expect("uischema");
    let UiElement::VerticalLayout { elements } = ui else { panic!("root is a VerticalLayout") };
    let UiElement::Section { label, hint_text, subtitle, .. } = &elements[0] else { panic!("a Section") };
    assert_eq!(label.as_deref(), Some("Configure Pokémon of the Day"));
    assert!(hint_text.as_deref().is_some_and(|h| h.contains("Slack user")));
    assert_eq!(subtitle, &None);
    let UiElement::Control { label, admin, .. } = control(&m, "slack_user") else { panic!("a Control") };
    assert_eq!(label.as_deref(), Some("Slack User"));
    assert!(!admin);
}

#[test]
fn shipbob_to_gorgias_in_rust_with_metadata_schema() {
    let m = load("shipbob_to_gorgias_rust.yaml");
    assert_eq!(m.version, Some(FormatVersion::Number(1.0)));
    assert_eq!(m.base.as_deref(), Some("rust:1.97"));
    assert_eq!(m.build.as_deref(), Some("cargo build --release"));
    assert_eq!(m.run.as_deref(), Some("./target/release/sb2gorgias"));

    assert!(matches!(m.connectors, Connectors::Slugs(_)));
    assert_eq!(m.connectors.names(), ["shipbob", "gorgias-oauth"]);
    assert!(m.connectors.is_required("gorgias-oauth"), "a Pandium connector must be bound");
    assert_eq!(m.connectors.provider("gorgias-oauth"), "gorgias-oauth");
    assert_eq!(m.connectors.definition("shipbob"), None);

    let s = schema(&m);
    assert_eq!(s["properties"]["order_start_date"], json!({"type": "string", "format": "date"}));
    assert_eq!(s["properties"]["newest_order_first"], json!({"type": "boolean", "default": false}));

    assert_eq!(all_kinds(&m), ["VerticalLayout", "Section", "Control", "Divider", "Section", "Control"]);
    let ui = m.configs.as_ref().and_then(|c| c.uischema.as_ref()).expect("uischema");
    let subtitles: Vec<&str> = flatten(ui)
        .into_iter()
        .filter_map(|e| match e {
            UiElement::Section { subtitle, .. } => subtitle.as_deref(),
            _ => None,
        })
        .collect();
    assert_eq!(subtitles.len(), 2);
    assert!(subtitles[0].starts_with("How far back") && subtitles[0].ends_with("stopped."), "folded: {}", subtitles[0]);
    let UiElement::Control { options, label, .. } = control(&m, "order_start_date") else { panic!("a Control") };
    assert_eq!(options.and_then(|o| o.get("trim").cloned()), Some(json!(true)));
    assert_eq!(label.as_deref(), Some("Orders since"));

    let meta = m.metadata_schema.as_ref().expect("metadata_schema");
    assert_eq!(meta.schema["name"], "metadata_schema");
    assert_eq!(meta.schema["properties"]["processed_events"]["additionalProperties"], json!({"type": "string"}));
    assert_eq!(meta.uischema, None);
}

#[test]
fn hubspot_to_s3_with_every_kind_of_config() {
    let m = load("hubspot_to_s3.yaml");
    assert_eq!(m.version, Some(FormatVersion::Number(0.5)), "a version only a Pandium sample uses");
    assert_eq!(m.base.as_deref(), Some("python:3.13"), "the trailing comment is not part of the value");
    assert_eq!(m.connectors.names(), ["hubspot", "aws"]);

    let s = schema(&m);
    assert_eq!(s["name"], "node_schema");
    assert_eq!(s["properties"]["s3_region"]["enum"][0], "us-east-1");
    assert_eq!(s["properties"]["s3_region"]["ref"], "#/definitions/s3_region", "Pandium's `ref` typo is kept, inert");
    assert_eq!(s["properties"]["export_format"]["oneOf"][1], json!({"const": "jsonl", "title": "JSON lines"}));
    assert_eq!(s["properties"]["page_size"]["min"], 1);
    assert_eq!(s["properties"]["lookback_days"]["min"], -30);
    assert_eq!(s["properties"]["objects"]["uniqueItems"], true);
    assert_eq!(s["properties"]["objects"]["items"]["enum"], json!(["contacts", "companies", "deals"]));

    // `min`/`max` are Pandium's spelling; as standard JSON Schema they are `minimum`/`maximum`.
    let standard = checks::pandium_to_json_schema(s);
    assert_eq!(standard["properties"]["page_size"]["minimum"], 1);
    assert_eq!(standard["properties"]["page_size"]["maximum"], 500);
    assert_eq!(standard["properties"]["page_size"].get("min"), None);
    let validator = jsonschema::validator_for(&standard).expect("the config schema compiles");
    assert!(validator.is_valid(&json!({"s3_bucket_name": "b", "page_size": 500, "objects": ["deals"]})));
    assert!(!validator.is_valid(&json!({"s3_bucket_name": "b", "page_size": 501})));
    assert!(!validator.is_valid(&json!({"s3_bucket_name": "b", "objects": ["deals", "deals"]})));
    assert!(!validator.is_valid(&json!({"page_size": 5})), "s3_bucket_name is required");

    assert_eq!(
        all_kinds(&m),
        [
            "VerticalLayout",
            "Label",
            "Section",
            "Control",
            "Control",
            "Control",
            "Control",
            "Divider",
            "Section",
            "MultiSelectControl",
            "Control",
            "Control",
            "Control",
            "Control",
            "Control",
            "Control",
        ]
    );
    let ui = m.configs.as_ref().and_then(|c| c.uischema.as_ref()).expect("uischema");
    let flat = flatten(ui);
    assert!(matches!(flat[1], UiElement::Label { title: Some(t), text: None } if t.starts_with("Export HubSpot")));
    let section_hint = flat.iter().find_map(|e| match e {
        UiElement::Section { label: Some(l), hint_text, .. } if l == "S3" => hint_text.as_deref(),
        _ => None,
    });
    // YAML folds the line break after `\n` into a space, as in Pandium's own file.
    assert_eq!(section_hint, Some("Bucket: where the file goes.\n File name: the object key, folders included."));

    let UiElement::MultiSelectControl { label, admin, .. } = control(&m, "objects") else { panic!("multi-select") };
    assert_eq!(label.as_deref(), Some("Objects"));
    assert!(!admin);
    let UiElement::Control { options, hint_text, .. } = control(&m, "note") else { panic!("a Control") };
    assert_eq!(options.and_then(|o| o.get("multi").cloned()), Some(json!(true)));
    assert!(hint_text.is_some_and(|h| h.starts_with("Written into")), "Pandium puts hintText on Controls too");
    let UiElement::Control { options, .. } = control(&m, "s3_file_name") else { panic!("a Control") };
    assert_eq!(options.and_then(|o| o.get("trim").cloned()), Some(json!(false)));
    let admins: Vec<String> = controls(&m)
        .into_iter()
        .filter_map(|e| match e {
            UiElement::Control { admin: true, scope, .. } => Some(scope.trim_start_matches("#/properties/").to_owned()),
            _ => None,
        })
        .collect();
    assert_eq!(admins, ["page_size", "lookback_days", "last_export"]);
}

#[test]
fn the_checked_in_sample_integrations_parse() {
    let root = super::repo_root().join("integrations");
    let mut seen = 0;
    for entry in std::fs::read_dir(&root).expect("integrations/") {
        let file = entry.expect("entry").path().join("PANDIUM.yaml");
        if !file.is_file() {
            continue;
        }
        seen += 1;
        let source = std::fs::read_to_string(&file).expect("readable");
        if let Err(diagnostics) = manifest::parse(&file.display().to_string(), &source) {
            let lines: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
            panic!("{}:\n{}", file.display(), lines.join("\n"));
        }
    }
    assert!(seen > 0, "no integrations/*/PANDIUM.yaml found");
}

#[test]
fn a_config_whose_options_come_from_tenant_metadata() {
    let m = load("metadata_options.yaml");
    let s = schema(&m);
    assert_eq!(s["properties"]["colors"], json!({"$ref": "#/metadata/dynamic_colors"}), "kept as written");
    let standard = checks::pandium_to_json_schema(s);
    assert_eq!(standard["properties"]["colors"]["$ref"], "#/metadata/dynamic_colors", "for jobs to resolve");
    assert_eq!(standard["properties"]["shade_count"]["maximum"], 10);
    assert!(m.metadata_schema.is_some());
}
