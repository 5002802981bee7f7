//! What the operations pages (users, API keys, integrations, dead letters)
//! share: a posted form checked against the session's CSRF token, the list
//! cursor of a query string, and a form's problems placed beside their fields.

use std::collections::BTreeMap;

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::Query;
use axum::response::Response;
use axum::Form;
use serde::Deserialize;

use crate::failure;
use crate::session::Signed;
use ferry_core::Error;

pub type FormBody = Result<Form<BTreeMap<String, String>>, FormRejection>;
pub type Pairs = Vec<(String, String)>;
pub type PairsBody = Result<Form<Pairs>, FormRejection>;

/// The posted fields, once the CSRF token is the session's.
// The error is the page answered to this request; boxing it would only move it.
#[allow(clippy::result_large_err)]
pub fn checked(signed: &Signed, body: FormBody) -> Result<BTreeMap<String, String>, Response> {
    let Ok(Form(f)) = body else { return Err(failure::csrf_refused()) };
    signed.check_csrf(f.get("csrf").map_or("", String::as_str))?;
    Ok(f)
}

/// The posted fields in their order, repeated names kept (check boxes,
/// multi-selects), once the CSRF token is the session's.
#[allow(clippy::result_large_err)]
pub fn checked_pairs(signed: &Signed, body: PairsBody) -> Result<Pairs, Response> {
    let Ok(Form(pairs)) = body else { return Err(failure::csrf_refused()) };
    signed.check_csrf(pairs.iter().find(|(k, _)| k == "csrf").map_or("", |(_, v)| v.as_str()))?;
    Ok(pairs)
}

#[derive(Deserialize, Default)]
pub struct Cursor {
    cursor: Option<String>,
}

pub fn cursor(q: Result<Query<Cursor>, QueryRejection>) -> Option<String> {
    q.ok().and_then(|Query(c)| c.cursor).filter(|c| !c.is_empty())
}

/// A filter's trimmed value; `None` when left empty.
pub fn filled(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// A field's trimmed value ("" when absent).
pub fn field<'f>(f: &'f BTreeMap<String, String>, name: &str) -> &'f str {
    f.get(name).map_or("", |v| v.trim())
}

/// Whether a checkbox was ticked.
pub fn ticked(f: &BTreeMap<String, String>, name: &str) -> bool {
    f.get(name).is_some_and(|v| v == "on" || v == "true" || v == "yes")
}

/// A refusal a person can fix in the form: the message, and the field it
/// concerns (by the service's error code), so the page shows it there.
pub struct Problem {
    pub field: &'static str,
    pub message: String,
}

/// The problem of a refused form, when the person can fix it; `None` for
/// failures the form cannot help with (they get the failure page).
pub fn problem(e: &Error, field_of: impl Fn(&str) -> &'static str) -> Option<Problem> {
    match e {
        Error::Invalid { code, message } | Error::InvalidDetails { code, message, .. } => {
            Some(Problem { field: field_of(code), message: message.clone() })
        }
        Error::Conflict { code, message } => Some(Problem { field: field_of(code), message: message.clone() }),
        _ => None,
    }
}
