//! Manifests the API tests publish.

/// `crm-sync` release 1: a required `crm` connector (provider `hubspot`, what
/// `TestApp::connection` creates), an optional `warehouse`, configs with a
/// static enum, Pandium bounds and one dynamic config (`owner`).
pub const CRM_SYNC: &str = r#"# CRM sync: the integration most API tests use.
version: 1.0
name: crm-sync
description: Copies contacts from the CRM to the warehouse.
connectors:
  crm:
    provider: hubspot
    auth: api_key
    base_url: https://api.hubapi.com
  warehouse:
    provider: warehouse
    auth: none
    base_url: https://warehouse.example
    required: false
configs:
  schema:
    type: object
    required: [region, owner]
    definitions:
      owners:
        type: string
        oneOf:
          - {const: placeholder, title: Placeholder}
    properties:
      region:
        type: string
        enum: [eu, us]
      batch:
        type: integer
        min: 1
        max: 100
      owner:
        type: string
        $ref: '#/definitions/owners'
flows:
  - name: owners
    triggers: [init]
    source: {type: http, connector: crm, request: {path: /owners}, records: results}
    target: {type: options, definition: owners, value: '{{ record.id }}', title: '{{ record.email }}'}
  - name: contacts
    source: {type: http, connector: crm, request: {path: /contacts}, records: results}
    mapping:
      entity: contact
      fields:
        email: '{{ record.properties.email | lower }}'
    target: {type: http, connector: warehouse, path: /contacts}
schedule:
  default: {preset: hourly}
  presets: [hourly, daily]
"#;

/// Release 1 with a new required config `tier`: jobs valid on release 1 are not on this one.
pub fn crm_sync_with_tier() -> String {
    CRM_SYNC
        .replace("required: [region, owner]", "required: [region, owner, tier]")
        .replace("      region:\n", "      tier:\n        type: string\n        enum: [gold, silver]\n      region:\n")
}

/// Release 1 with a different description (a new release, same shape for jobs).
pub fn crm_sync_described(description: &str) -> String {
    CRM_SYNC
        .replace("description: Copies contacts from the CRM to the warehouse.", &format!("description: {description}"))
}

/// The publish request body for a manifest.
pub fn publish_body(manifest: &str) -> serde_json::Value {
    serde_json::json!({ "manifest": manifest, "file": "crm-sync/PANDIUM.yaml" })
}
