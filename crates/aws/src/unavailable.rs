//! Which failures of an AWS call mean "the service is unavailable": the
//! ports' `Unavailable` errors (503 with `Retry-After` in the API, a retried
//! message in the run queue) as opposed to their `Backend` errors (refused or
//! misconfigured: retrying will not help).
//!
//! The same failures the SDK's standard retry strategy retries, after it has
//! retried them: no answer in time, a request that could not be sent (the
//! connection refused, reset or timed out), a response cut short, an answer
//! with a 5xx status or a 429, and the error codes AWS uses for throttling.
//! A request the SDK could not build, a credentials problem, and the
//! services' other 4xx answers (validation, access denied, not found) are not.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::{CreateUnhandledError, SdkError};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::retry::ErrorKind;

use ferry_core::ports::BoxError;

/// Error codes of throttled or briefly overloaded calls: the SDK's own list
/// (`THROTTLING_ERRORS` and `TRANSIENT_ERRORS` of aws-runtime's retry
/// classifiers), for answers whose status does not say so already.
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// What the SDK's operation errors (`GetItemError`, `PutObjectError`, ...) offer.
pub trait OperationError:
    std::error::Error + ProvideErrorMetadata + CreateUnhandledError + Send + Sync + 'static
{
}

impl<E> OperationError for E where
    E: std::error::Error + ProvideErrorMetadata + CreateUnhandledError + Send + Sync + 'static
{
}

/// Whether the call failed because the service could not serve it right now
/// (see the module's documentation).
pub fn is_unavailable<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    match e {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
        SdkError::DispatchFailure(d) => {
            d.is_io()
                || d.is_timeout()
                || matches!(
                    d.as_other(),
                    Some(ErrorKind::TransientError | ErrorKind::ThrottlingError | ErrorKind::ServerError)
                )
        }
        SdkError::ServiceError(s) => {
            let status = s.raw().status();
            status.is_server_error()
                || status.as_u16() == 429
                || s.err().code().is_some_and(|code| THROTTLING_CODES.contains(&code))
        }
        SdkError::ConstructionFailure(_) => false,
        _ => false,
    }
}

/// Splits a failed call: `Ok` with the service's error for the adapter to
/// match on (what [`SdkError::into_service_error`] gives), `Err` with why the
/// service was unavailable.
pub fn service_error<E: OperationError>(e: SdkError<E, HttpResponse>) -> Result<E, CallFailed> {
    if !is_unavailable(&e) {
        return Ok(e.into_service_error());
    }
    Err(CallFailed::from_sdk(e))
}

/// Why an AWS call failed, without the raw HTTP response the SDK's error
/// keeps: a response body may hold secret values (a `GetSecretValue` answer
/// cut short), and `Debug` of an `SdkError` prints it whole.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
pub struct CallFailed {
    what: String,
    #[source]
    source: BoxError,
}

impl CallFailed {
    pub fn new(what: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self { what: what.into(), source: source.into() }
    }

    fn from_sdk<E: OperationError>(e: SdkError<E, HttpResponse>) -> Self {
        let what = match &e {
            SdkError::TimeoutError(_) => "no answer in time".to_owned(),
            SdkError::DispatchFailure(_) => "the request could not be sent".to_owned(),
            SdkError::ResponseError(r) => {
                format!("the answer (HTTP {}) was cut short or unreadable", r.raw().status().as_u16())
            }
            SdkError::ServiceError(s) => format!("the service answered HTTP {}", s.raw().status().as_u16()),
            _ => "the call failed".to_owned(),
        };
        // Every variant has a source; the raw response stays behind.
        let source: BoxError = match e.into_source() {
            Ok(source) => source,
            Err(e) => e.to_string().into(),
        };
        Self::new(what, source)
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::operation::get_item::GetItemError;
    use aws_sdk_dynamodb::types::error::{
        InternalServerError, ProvisionedThroughputExceededException, ResourceNotFoundException,
    };
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;

    type Failure = SdkError<GetItemError, HttpResponse>;

    fn answer(status: u16, err: GetItemError) -> Failure {
        SdkError::service_error(err, HttpResponse::new(status.try_into().expect("status"), SdkBody::empty()))
    }

    fn coded(code: &str) -> GetItemError {
        GetItemError::generic(ErrorMetadata::builder().code(code).message("from the service").build())
    }

    #[test]
    fn network_failures_timeouts_throttling_and_server_errors_are_unavailable() {
        let unavailable: Vec<(&str, Failure)> = vec![
            ("timeout", SdkError::timeout_error("operation timeout after 3 s")),
            ("connection refused", SdkError::dispatch_failure(ConnectorError::io("connection refused".into()))),
            ("connect timeout", SdkError::dispatch_failure(ConnectorError::timeout("connect timeout".into()))),
            (
                "transient connector error",
                SdkError::dispatch_failure(ConnectorError::other("reset".into(), Some(ErrorKind::TransientError))),
            ),
            (
                "response cut short",
                SdkError::response_error(
                    "unexpected end of body",
                    HttpResponse::new(200.try_into().expect("status"), SdkBody::empty()),
                ),
            ),
            ("500", answer(500, GetItemError::InternalServerError(InternalServerError::builder().build()))),
            ("503 without a code", answer(503, coded("ServiceUnavailable"))),
            ("429", answer(429, coded("TooManyRequests"))),
            (
                "throughput exceeded",
                answer(
                    400,
                    // As deserialised: the code is in the metadata.
                    GetItemError::ProvisionedThroughputExceededException(
                        ProvisionedThroughputExceededException::builder()
                            .meta(ErrorMetadata::builder().code("ProvisionedThroughputExceededException").build())
                            .build(),
                    ),
                ),
            ),
            ("throttled", answer(400, coded("ThrottlingException"))),
            ("request limit", answer(400, coded("RequestLimitExceeded"))),
        ];
        for (what, e) in unavailable {
            assert!(is_unavailable(&e), "{what}: {e:?}");
            assert!(service_error(e).is_err(), "{what}");
        }
    }

    #[test]
    fn refused_and_malformed_calls_are_not_unavailable() {
        let other: Vec<(&str, Failure)> = vec![
            ("construction", SdkError::construction_failure("missing field")),
            ("user error", SdkError::dispatch_failure(ConnectorError::user("bad uri".into()))),
            ("credentials", SdkError::dispatch_failure(ConnectorError::other("no credentials".into(), None))),
            (
                "client error kind",
                SdkError::dispatch_failure(ConnectorError::other("401".into(), Some(ErrorKind::ClientError))),
            ),
            ("validation", answer(400, coded("ValidationException"))),
            ("access denied", answer(400, coded("AccessDeniedException"))),
            (
                "no table",
                answer(400, GetItemError::ResourceNotFoundException(ResourceNotFoundException::builder().build())),
            ),
        ];
        for (what, e) in other {
            assert!(!is_unavailable(&e), "{what}: {e:?}");
        }
        let kept = service_error(answer(
            400,
            GetItemError::ResourceNotFoundException(ResourceNotFoundException::builder().build()),
        ));
        assert!(matches!(kept, Ok(GetItemError::ResourceNotFoundException(_))), "{kept:?}");
    }

    #[test]
    fn the_unavailable_error_keeps_the_cause_and_leaves_the_response_body_behind() {
        let body = SdkBody::from(r#"{"SecretString": "{\"api_key\": \"s3cr3t\"}"#);
        let cut: SdkError<GetItemError, HttpResponse> = SdkError::response_error(
            "unexpected end of body",
            HttpResponse::new(200.try_into().expect("status"), body),
        );
        let e = service_error(cut).expect_err("unavailable");
        let text = ferry_core::error::chain(&e);
        assert_eq!(text, "the answer (HTTP 200) was cut short or unreadable: unexpected end of body");
        assert!(!format!("{e:?}").contains("s3cr3t"), "{e:?}");

        let throttled = service_error(answer(400, coded("ThrottlingException"))).expect_err("unavailable");
        let text = ferry_core::error::chain(&throttled);
        assert!(text.starts_with("the service answered HTTP 400: ") && text.contains("ThrottlingException"), "{text}");
    }
}
