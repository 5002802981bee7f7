//! Reading the cookies a browser sends, and the attribute that keeps them
//! on https.

use axum::http::{header, HeaderMap};
use ferry_service::Hub;

/// The value of cookie `name` among the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `; Secure` when the hub is served over https: a browser on plain http
/// (a laptop's `ferry up`) would drop a Secure cookie.
pub fn secure_attr(hub: &Hub) -> &'static str {
    if hub.public_url.as_ref().is_some_and(|u| u.is_https()) {
        "; Secure"
    } else {
        ""
    }
}
