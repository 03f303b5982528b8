//! The console's only way to read or change anything: requests to the API's
//! own router, in the process, with the session's token. They pass the same
//! guard (token, role policy, audit) and handlers as the CLI's, so the console
//! can never do what its token may not.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use axum::response::Response;
use berth_api::ErrorBody;
use serde::de::DeserializeOwned;
use tower::ServiceExt;

/// Largest JSON answer the console reads (the audit trail, long lists).
const MAX_ANSWER: usize = 32 << 20;

/// The API router (without the console's routes).
#[derive(Clone)]
pub struct Api(pub Router);

/// An answer that was not a success: its status and the API's message.
#[derive(Debug)]
pub struct Failure {
    pub status: StatusCode,
    pub message: String,
}

/// One API path segment, percent-encoded, so a name from a console URL stays one segment.
pub fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Api {
    /// `method path` as the holder of `secret`; a JSON body when given. Any
    /// status but 2xx is a [`Failure`] with the API's error message.
    pub async fn call(
        &self,
        secret: &str,
        method: Method,
        path: &str,
        json: Option<Vec<u8>>,
    ) -> Result<Response, Failure> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {secret}"));
        if json.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(json.map(Body::from).unwrap_or_else(Body::empty))
            .map_err(|e| Failure {
                status: StatusCode::BAD_REQUEST,
                message: format!("the console could not make the API request {path}: {e}"),
            })?;
        let response = match self.0.clone().oneshot(request).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER)
            .await
            .unwrap_or_default();
        let message = serde_json::from_slice::<ErrorBody>(&bytes)
            .map(|b| b.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
        Err(Failure { status, message })
    }

    /// `GET path`, its JSON answer read as `T`.
    pub async fn get<T: DeserializeOwned>(&self, secret: &str, path: &str) -> Result<T, Failure> {
        let response = self.call(secret, Method::GET, path, None).await?;
        read_json(response).await
    }

    /// `GET path`, its answer as text.
    pub async fn text(&self, secret: &str, path: &str) -> Result<String, Failure> {
        let response = self.call(secret, Method::GET, path, None).await?;
        let bytes = read(response).await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

async fn read(response: Response) -> Result<bytes::Bytes, Failure> {
    axum::body::to_bytes(response.into_body(), MAX_ANSWER)
        .await
        .map_err(|e| Failure {
            status: StatusCode::BAD_GATEWAY,
            message: format!("the API's answer could not be read: {e}"),
        })
}

pub async fn read_json<T: DeserializeOwned>(response: Response) -> Result<T, Failure> {
    let bytes = read(response).await?;
    serde_json::from_slice(&bytes).map_err(|e| Failure {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message: format!(
            "the API answered JSON the console does not read ({e}); is the server's build mixed up?"
        ),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn segments_stay_segments() {
        assert_eq!(super::seg("shop"), "shop");
        assert_eq!(super::seg("a/../b?c"), "a%2F..%2Fb%3Fc");
    }
}
