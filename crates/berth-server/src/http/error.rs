//! Errors as HTTP answers: the status of every kind of [`Error`], in one
//! place, and the JSON error body.

use crate::error::Error;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use berth_api::ErrorBody;
use berth_store::StoreError;

pub struct ApiError(StatusCode, String);

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An answer about the HTTP exchange itself (a route or method that does
    /// not exist, a rejected body); operations return [`Error`]s instead.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError(status, message.into())
    }

    pub fn status(&self) -> StatusCode {
        self.0
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody { error: self.1 })).into_response()
    }
}

/// The status each kind of failure is answered with.
pub fn status_of(error: &Error) -> StatusCode {
    match error {
        Error::Store(
            StoreError::NoApp(_) | StoreError::NotFound { .. } | StoreError::NoToken(_),
        ) => StatusCode::NOT_FOUND,
        Error::Store(StoreError::AppExists(_) | StoreError::LastAdmin(_)) => StatusCode::CONFLICT,
        Error::Store(_) | Error::Io(_) | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        Error::Invalid(_) | Error::Manifest(_) | Error::Name(_) => StatusCode::BAD_REQUEST,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Conflict(_) => StatusCode::CONFLICT,
        Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        Error::Failed { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        Error::Runtime(_) if error.engine_unreachable() => StatusCode::SERVICE_UNAVAILABLE,
        Error::Runtime(_) => StatusCode::BAD_GATEWAY,
        Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::DiskFull(_) => StatusCode::INSUFFICIENT_STORAGE,
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(status_of(&e), e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Error::from(e).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_failure_has_its_status() {
        let cases: Vec<(Error, u16)> = vec![
            (StoreError::NoApp("a".into()).into(), 404),
            (
                StoreError::NotFound {
                    kind: "release",
                    id: "R1".into(),
                    app: "a".into(),
                    list: "releases",
                }
                .into(),
                404,
            ),
            (StoreError::NoToken("t".into()).into(), 404),
            (StoreError::AppExists("a".into()).into(), 409),
            (StoreError::LastAdmin("t".into()).into(), 409),
            (StoreError::Corrupt("x".into()).into(), 500),
            (Error::Invalid("x".into()), 400),
            (berth_core::validate_app_name("A").unwrap_err().into(), 400),
            (
                berth_core::parse_manifest("berth.yml", "services: 3")
                    .unwrap_err()
                    .into(),
                400,
            ),
            (Error::NotFound("x".into()), 404),
            (Error::Conflict("x".into()), 409),
            (Error::TooLarge("x".into()), 413),
            (
                Error::Failed {
                    message: "x".into(),
                    logs: vec![],
                },
                422,
            ),
            (
                berth_runtime::RuntimeError::Connect("refused".into()).into(),
                503,
            ),
            (
                berth_runtime::RuntimeError::Engine("409".into()).into(),
                502,
            ),
            (Error::Unavailable("x".into()), 503),
            (Error::DiskFull("x".into()), 507),
            (Error::Internal("x".into()), 500),
            (std::io::Error::other("x").into(), 500),
        ];
        for (error, status) in cases {
            let text = error.to_string();
            assert_eq!(status_of(&error).as_u16(), status, "{text}");
        }
    }
}
