//! The console's forms that change things. Each is one API call with the
//! session's token, so the API's role policy and audit trail apply as they do
//! to the CLI; [`Posted`] has already checked the form's CSRF token.

use super::api::{Failure, read_json, seg};
use super::auth::Posted;
use super::live;
use super::read;
use axum::extract::Path;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use berth_api::{CreateToken, CreatedToken, EnvChange};

fn json<T: serde::Serialize>(value: &T) -> Option<Vec<u8>> {
    serde_json::to_vec(value).ok()
}

/// `POST /console/apps/{app}/releases/{id}/{promote|rollback}` (after the
/// confirmation page): the rollout's progress as it happens.
pub async fn release_action(
    Path((app, id, action)): Path<(String, String, String)>,
    p: Posted,
) -> Response {
    let s = &p.signed;
    let back = format!("/console/apps/{app}/releases");
    let (verb, heading) = match action.as_str() {
        "promote" => ("promote", format!("Promoting {id} of {app}")),
        "rollback" => ("rollback", format!("Rolling {app} back to {id}")),
        other => {
            return s.failed(
                Failure {
                    status: StatusCode::NOT_FOUND,
                    message: format!("no release action {other}: use promote or rollback"),
                },
                &back,
            );
        }
    };
    let force = if p.field("force") == Some("true") {
        "?force=true"
    } else {
        ""
    };
    let path = format!("/apps/{}/releases/{}/{verb}{force}", seg(&app), seg(&id));
    match s.call(Method::POST, &path, None).await {
        Ok(work) => live::progress(s, &app, "/releases", heading, back, work),
        Err(f) => s.failed(f, &back),
    }
}

/// `POST /console/apps/{app}/env`: sets `key`=`value` or unsets `unset`,
/// promoting the new release when `promote` is on.
pub async fn env(Path(app): Path<String>, p: Posted) -> Response {
    let s = &p.signed;
    let back = format!("/console/apps/{app}/env");
    let mut change = EnvChange {
        promote: p.field("promote") == Some("true"),
        ..EnvChange::default()
    };
    let heading = match (p.field("key"), p.field("unset")) {
        (Some(key), _) => {
            change.set.insert(
                key.to_string(),
                p.form.get("value").cloned().unwrap_or_default(),
            );
            format!("Setting {key} of {app}")
        }
        (None, Some(key)) => {
            change.unset.push(key.to_string());
            format!("Unsetting {key} of {app}")
        }
        (None, None) => {
            return s.failed(
                Failure {
                    status: StatusCode::BAD_REQUEST,
                    message: "the form names no key: fill in Key (letters, digits and _)".into(),
                },
                &back,
            );
        }
    };
    let path = format!("/apps/{}/env", seg(&app));
    match s.call(Method::POST, &path, json(&change)).await {
        Ok(work) => live::progress(s, &app, "/env", heading, back, work),
        Err(f) => s.failed(f, &back),
    }
}

/// `POST /console/apps/{app}/processes/{id}/stop`
pub async fn stop_process(Path((app, id)): Path<(String, String)>, p: Posted) -> Response {
    let s = &p.signed;
    let path = format!("/apps/{}/processes/{}", seg(&app), seg(&id));
    match s.call(Method::DELETE, &path, None).await {
        Ok(_) => Redirect::to(&format!("/console/apps/{app}")).into_response(),
        Err(f) => s.failed(f, &format!("/console/apps/{app}")),
    }
}

/// `POST /console/tokens`: the new token's secret is shown on the page, once.
pub async fn create_token(p: Posted) -> Response {
    let req = CreateToken {
        role: p.field("role").unwrap_or("read").to_string(),
        app: p.field("app").map(str::to_string),
    };
    let created = match p.signed.call(Method::POST, "/tokens", json(&req)).await {
        Ok(r) => read_json::<CreatedToken>(r).await,
        Err(f) => Err(f),
    };
    match created {
        Ok(created) => read::tokens_page(p.signed, Some(created)).await,
        Err(f) => p.signed.failed(f, "/console/tokens"),
    }
}

/// `POST /console/tokens/{id}/revoke`
pub async fn revoke_token(Path(id): Path<String>, p: Posted) -> Response {
    let path = format!("/tokens/{}", seg(&id));
    match p.signed.call(Method::DELETE, &path, None).await {
        Ok(_) => Redirect::to("/console/tokens").into_response(),
        Err(f) => p.signed.failed(f, "/console/tokens"),
    }
}
