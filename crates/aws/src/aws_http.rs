//! The HTTP client of every AWS SDK client: reqwest (HTTP/1.1, rustls on
//! `ring`, the webpki roots), the client the engine, the notifier and OAuth
//! already use.
//!
//! Not `aws-smithy-http-client`, the SDK's own hyper client: it always links
//! an HTTP/2 implementation (h2) and a second copy of the hyper client stack,
//! about 0.5 MB of every function binary, for calls that need neither (AWS
//! answers these APIs over HTTP/1.1 as well).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::Response;
use aws_smithy_types::body::SdkBody;

/// The SDK's HTTP client; one connection pool per timeout setting.
pub fn http_client() -> SharedHttpClient {
    SharedHttpClient::new(ReqwestClient::default())
}

/// Connect and read timeouts, as the SDK asks for them.
type Timeouts = (Option<Duration>, Option<Duration>);

#[derive(Debug, Default)]
struct ReqwestClient {
    connectors: Mutex<HashMap<Timeouts, SharedHttpConnector>>,
}

impl HttpClient for ReqwestClient {
    fn http_connector(&self, settings: &HttpConnectorSettings, _components: &RuntimeComponents) -> SharedHttpConnector {
        let timeouts = (settings.connect_timeout(), settings.read_timeout());
        // A poisoned lock only means another thread panicked while inserting: the map is still whole.
        let mut connectors = self.connectors.lock().unwrap_or_else(PoisonError::into_inner);
        connectors.entry(timeouts).or_insert_with(|| SharedHttpConnector::new(ReqwestConnector::new(timeouts))).clone()
    }
}

#[derive(Debug, Clone)]
struct ReqwestConnector {
    client: Result<reqwest::Client, Arc<reqwest::Error>>,
}

impl ReqwestConnector {
    fn new((connect, read): Timeouts) -> Self {
        let mut builder = reqwest::Client::builder();
        if let Some(t) = connect {
            builder = builder.connect_timeout(t);
        }
        if let Some(t) = read {
            builder = builder.read_timeout(t);
        }
        // Building fails only if the TLS backend cannot start; every call then says so.
        Self { client: builder.build().map_err(Arc::new) }
    }
}

impl HttpConnector for ReqwestConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.client.clone();
        HttpConnectorFuture::new(async move {
            let client = client.map_err(|e| ConnectorError::other(e.into(), None))?;
            let request = request.try_into_http1x().map_err(|e| ConnectorError::user(e.into()))?;
            let (parts, body) = request.into_parts();
            // The body's exact size hint becomes its Content-Length; no copy.
            let body = reqwest::Body::wrap(body);
            let request = reqwest::Request::try_from(http::Request::from_parts(parts, body))
                .map_err(|e| ConnectorError::user(e.into()))?;
            let response = client.execute(request).await.map_err(classify)?;
            let response: http::Response<reqwest::Body> = response.into();
            let response = response.map(SdkBody::from_body_1_x);
            Response::try_from(response).map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// As the SDK's own client does: timeouts and broken connections are
/// transient (retried), anything else is not.
fn classify(e: reqwest::Error) -> ConnectorError {
    if e.is_timeout() {
        ConnectorError::timeout(e.into())
    } else if e.is_connect() || e.is_request() || e.is_body() {
        ConnectorError::io(e.into())
    } else {
        ConnectorError::other(e.into(), None)
    }
}
