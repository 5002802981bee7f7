//! The address a request came from, for throttling. Taken only from what the
//! hosting layer vouches for: the socket's peer (`ConnectInfo`, `ferry up`)
//! or API Gateway's request context (`sourceIp`, the Lambda functions), never
//! from a header a client can write (`X-Forwarded-For`).

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::Extensions;
use lambda_http::request::RequestContext;

/// The caller's address; `None` when the server was started without
/// `ConnectInfo` and not behind API Gateway (then only per-account limits apply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceAddr(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for SourceAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(SourceAddr(source_ip(&parts.extensions)))
    }
}

pub fn source_ip(extensions: &Extensions) -> Option<IpAddr> {
    if let Some(ConnectInfo(peer)) = extensions.get::<ConnectInfo<SocketAddr>>() {
        return Some(peer.ip());
    }
    match extensions.get::<RequestContext>() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.http.source_ip.as_deref()?.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_peer_is_the_source() {
        let mut ext = Extensions::new();
        ext.insert(ConnectInfo(SocketAddr::from(([192, 0, 2, 7], 4000))));
        assert_eq!(source_ip(&ext), Some(IpAddr::from([192, 0, 2, 7])));
    }

    #[test]
    fn api_gateway_names_the_source_in_its_request_context() {
        let mut ctx = lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext::default();
        ctx.http.source_ip = Some("198.51.100.4".into());
        let mut ext = Extensions::new();
        ext.insert(RequestContext::ApiGatewayV2(ctx));
        assert_eq!(source_ip(&ext), Some(IpAddr::from([198, 51, 100, 4])));
    }

    #[test]
    fn without_either_the_source_is_unknown() {
        assert_eq!(source_ip(&Extensions::new()), None);
    }
}
