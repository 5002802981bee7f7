//! Config schemas no configs can satisfy: contradictory bounds, empty enums,
//! defaults their own schema refuses, required names nothing defines. Each is
//! refused at its line and column, at any depth (nested object properties and
//! array items included), not discovered by every job that fails to validate.

use ferry_core::manifest::{self, Diagnostic};

use super::{diagnostics, position_of};
use crate::support::manifests::CRM_SYNC;

/// A runnable manifest whose config schema is an object with `rest` (lines
/// indented by four spaces) after `type: object`.
fn with_config_schema(rest: &str) -> String {
    format!("version: 1.0\nbase: node:20\nrun: node .\nconfigs:\n  schema:\n    type: object\n{rest}")
}

/// Where the value of the first `key: value` line part `needle` starts.
fn value_of(source: &str, needle: &str) -> (usize, usize) {
    let (line, column) = position_of(source, needle);
    let key = needle.find(": ").unwrap_or_else(|| panic!("`{needle}` is not `key: value`"));
    (line, column + key + 2)
}

fn found(d: &[Diagnostic]) -> Vec<(usize, usize, &str)> {
    d.iter().map(|d| (d.line, d.column, d.code.as_str())).collect()
}

fn validates(source: &str) {
    if let Err(d) = manifest::parse("PANDIUM.yaml", source) {
        panic!("{source}\n{d:#?}");
    }
}

#[test]
fn a_minimum_above_the_maximum_is_refused_at_the_minimum() {
    let source = with_config_schema(
        "    properties:\n      days:\n        type: integer\n        minimum: 30\n        maximum: 7\n",
    );
    let d = diagnostics(&source);
    let (line, column) = value_of(&source, "minimum: 30");
    assert_eq!((line, column), (10, 18));
    assert_eq!(found(&d), [(line, column, "unsatisfiable_schema")], "{d:#?}");
    assert_eq!(d[0].path, "/configs/schema/properties/days/minimum");
    assert!(d[0].message.contains("30") && d[0].message.contains("maximum"), "{d:#?}");
}

#[test]
fn pandium_min_above_max_is_refused_at_the_min() {
    let source =
        with_config_schema("    properties:\n      batch:\n        type: integer\n        min: 10\n        max: 5\n");
    let d = diagnostics(&source);
    assert_eq!(
        found(&d),
        [{
            let (l, c) = value_of(&source, "min: 10");
            (l, c, "unsatisfiable_schema")
        }],
        "{d:#?}"
    );
    assert_eq!(d[0].path, "/configs/schema/properties/batch/min");
}

#[test]
fn exclusive_bounds_that_leave_no_number_are_refused_at_the_lower_bound() {
    let cases = [
        ("number", "exclusiveMinimum: 5", "exclusiveMaximum: 5"),
        ("number", "minimum: 5", "exclusiveMaximum: 5"),
        ("number", "exclusiveMinimum: 5", "maximum: 5"),
        ("integer", "exclusiveMinimum: 1", "exclusiveMaximum: 2"),
        ("integer", "minimum: 1.5", "maximum: 1.9"),
    ];
    for (kind, lower, upper) in cases {
        let source = with_config_schema(&format!(
            "    properties:\n      n:\n        type: {kind}\n        {lower}\n        {upper}\n"
        ));
        let d = diagnostics(&source);
        let (line, column) = value_of(&source, lower);
        assert_eq!(found(&d), [(line, column, "unsatisfiable_schema")], "{kind} {lower} {upper}: {d:#?}");
    }
}

#[test]
fn draft_4_exclusive_flags_count_too() {
    let source = with_config_schema(
        "    $schema: 'http://json-schema.org/draft-04/schema#'\n    properties:\n      n:\n        type: number\n        \
         minimum: 5\n        maximum: 5\n        exclusiveMaximum: true\n",
    );
    let d = diagnostics(&source);
    let (line, column) = value_of(&source, "minimum: 5");
    assert_eq!(found(&d), [(line, column, "unsatisfiable_schema")], "{d:#?}");
}

#[test]
fn lengths_and_counts_are_checked_in_array_items_and_nested_objects() {
    let source = with_config_schema(
        "    properties:
      contacts:
        type: array
        minItems: 3
        maxItems: 2
        items:
          type: object
          properties:
            name:
              type: string
              minLength: 10
              maxLength: 5
            tags:
              type: object
              minProperties: 2
              maxProperties: 1
",
    );
    let d = diagnostics(&source);
    let want: Vec<(usize, usize, &str)> = ["minItems: 3", "minLength: 10", "minProperties: 2"]
        .iter()
        .map(|n| {
            let (l, c) = value_of(&source, n);
            (l, c, "unsatisfiable_schema")
        })
        .collect();
    assert_eq!(found(&d), want, "{d:#?}");
    assert_eq!(d[1].path, "/configs/schema/properties/contacts/items/properties/name/minLength");
}

#[test]
fn an_empty_enum_is_refused_wherever_it_is() {
    let source = with_config_schema(
        "    properties:\n      regions:\n        type: array\n        items:\n          type: string\n          enum: []\n",
    );
    let d = diagnostics(&source);
    let (line, column) = value_of(&source, "enum: []");
    assert_eq!(found(&d), [(line, column, "unsatisfiable_schema")], "{d:#?}");
    assert_eq!(d[0].path, "/configs/schema/properties/regions/items/enum");
}

#[test]
fn a_default_its_own_schema_refuses_is_reported_at_the_default() {
    let source = with_config_schema(
        "    properties:
      region: {type: string, enum: [eu, us], default: asia}
      batch: {type: integer, min: 1, max: 100, default: 500}
      enabled: {type: boolean, default: 'yes'}
      prefix: {type: string, pattern: '^[a-z]+$', default: ABC}
      tags: {type: array, items: {type: string, maxLength: 3, default: toolong}}
      address:
        type: object
        properties:
          zip: {type: string, minLength: 5, default: '123'}
",
    );
    let d = diagnostics(&source);
    let want: Vec<(usize, usize, &str)> = ["asia", "500", "'yes'", "ABC", "toolong", "'123'"]
        .iter()
        .map(|n| {
            let (l, c) = position_of(&source, n);
            (l, c, "invalid_default")
        })
        .collect();
    assert_eq!(found(&d), want, "{d:#?}");
    assert_eq!(d[4].path, "/configs/schema/properties/tags/items/default");
    assert!(d[0].message.contains("default"), "{d:#?}");
}

#[test]
fn a_required_name_without_a_definition_is_refused_at_the_name() {
    let source = with_config_schema(
        "    required: [region, regoin]
    properties:
      region: {type: string}
      address:
        type: object
        additionalProperties: false
        required: [zip, city]
        properties:
          zip: {type: string}
",
    );
    let d = diagnostics(&source);
    let (typo_line, typo_column) = position_of(&source, "regoin");
    let (city_line, city_column) = position_of(&source, "city");
    assert_eq!(
        found(&d),
        [(typo_line, typo_column, "dangling_required"), (city_line, city_column, "dangling_required")],
        "{d:#?}"
    );
    assert_eq!(d[0].path, "/configs/schema/required/1");
    assert!(d[0].help.as_deref().is_some_and(|h| h.contains("did you mean `region`?")), "{d:#?}");
    assert_eq!(d[1].path, "/configs/schema/properties/address/required/1");
}

#[test]
fn a_branch_may_require_what_its_object_defines_but_nothing_else() {
    let source = with_config_schema(
        "    properties:
      email: {type: string}
      phone: {type: string}
    oneOf:
      - required: [email]
      - required: [phone]
      - required: [fax]
",
    );
    let d = diagnostics(&source);
    let (line, column) = position_of(&source, "fax");
    assert_eq!(found(&d), [(line, column, "dangling_required")], "{d:#?}");
}

#[test]
fn satisfiable_schemas_validate() {
    validates(CRM_SYNC);
    validates(&with_config_schema(
        "    required: [region, owner, labels, limits]
    definitions:
      owners:
        type: string
        oneOf:
          - {const: placeholder, title: Placeholder}
    properties:
      region: {type: string, enum: [eu, us], default: eu}
      batch: {type: integer, min: 1, max: 100, default: 100}
      ratio: {type: number, minimum: 0.5, maximum: 0.5, default: 0.5}
      whole: {type: integer, minimum: 1.5, maximum: 2}
      owner: {type: string, $ref: '#/definitions/owners', default: someone}
      labels:
        type: object
        additionalProperties: {type: string}
        required: [team]
      limits:
        type: object
        patternProperties:
          '^max_': {type: integer}
        additionalProperties: false
        required: [max_rows]
      tags:
        type: array
        minItems: 1
        maxItems: 1
        items: {type: string, minLength: 2, maxLength: 2, default: ab}
        default: [cd]
",
    ));
}
