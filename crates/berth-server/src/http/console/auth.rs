//! Signing in and out, and the two extractors every other console handler
//! starts with: [`Signed`] (a live session whose token still checks out) and
//! [`Posted`] (that, plus a form from this console carrying the session's CSRF
//! token).

use super::Console;
use super::api::Failure;
use super::pages::{self, Chrome, Frame, Signin};
use super::session::{self, COOKIE, LIFETIME, SIGNIN_COOKIE, Session};
use crate::http::guard;
use axum::Form;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{AppendHeaders, IntoResponse, Redirect, Response};
use berth_store::access::Identity;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How long the sign-in form's CSRF cookie lives.
const SIGNIN_FORM_LIFETIME: Duration = Duration::from_secs(3600);

/// A request from a signed-in browser.
pub struct Signed {
    pub console: Arc<Console>,
    /// The session's id (the cookie's value).
    pub id: String,
    pub session: Session,
    pub who: Identity,
}

impl Signed {
    /// The page chrome for this session, `section` current in the navigation.
    pub fn chrome(&self, section: &'static str) -> Chrome {
        Chrome {
            signed: true,
            section,
            token: self.who.id.clone(),
            role: self.who.role.clone(),
            app: self.who.app.clone(),
            csrf: self.session.csrf.clone(),
            admin: self.who.role == "admin",
            deploy: matches!(self.who.role.as_str(), "admin" | "deploy"),
        }
    }

    /// The frame of a page that is not an app's, `section` current in the navigation.
    pub fn frame(&self, title: impl Into<String>, section: &'static str) -> Frame {
        Frame::new(title, self.chrome(section))
    }

    /// The frame of a page of `app` whose tab `tab` is current.
    pub fn app_frame(&self, app: &str, tab: &'static str, title: impl Into<String>) -> Frame {
        Frame::app(title, self.chrome("rack"), app, tab)
    }

    /// `GET path` of the API with this session's token, read as `T`.
    pub async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        self.console.api.get(&self.session.secret, path).await
    }

    pub async fn text(&self, path: &str) -> Result<String, Failure> {
        self.console.api.text(&self.session.secret, path).await
    }

    /// Any API call with this session's token.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        json: Option<Vec<u8>>,
    ) -> Result<Response, Failure> {
        self.console
            .api
            .call(&self.session.secret, method, path, json)
            .await
    }

    /// The error page of a failed API call, `back` linked.
    pub fn failed(&self, failure: Failure, back: &str) -> Response {
        pages::error(self.chrome(""), failure.status, failure.message, back)
    }
}

/// To the sign-in page, removing a stale session cookie.
fn to_signin(console: &Console) -> Response {
    (
        AppendHeaders([(
            header::SET_COOKIE,
            session::cookie(COOKIE, "", Duration::ZERO, console.secure),
        )]),
        Redirect::to("/console/signin"),
    )
        .into_response()
}

impl FromRequestParts<Arc<Console>> for Signed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &Arc<Console>,
    ) -> Result<Self, Self::Rejection> {
        let Some(id) = session::read_cookie(&parts.headers, COOKIE).map(str::to_string) else {
            return Err(Redirect::to("/console/signin").into_response());
        };
        let Some(session) = console.sessions.get(&id) else {
            return Err(to_signin(console));
        };
        // The token is checked again on every request, exactly as the API's
        // guard checks it: a revoked token ends the session here.
        match guard::authenticate(&console.rack, session.secret.clone()).await {
            Ok(Some(who)) => Ok(Signed {
                console: console.clone(),
                id,
                session,
                who,
            }),
            Ok(None) => {
                console.sessions.close(&id);
                Err(to_signin(console))
            }
            Err(e) => Err(e.into_response()),
        }
    }
}

/// A form posted by a signed-in browser from a console page: the session's
/// CSRF token is in it (`_csrf`), and the browser does not say it came from
/// another site. Anything else is refused with 403 before any handler runs.
pub struct Posted {
    pub signed: Signed,
    pub form: HashMap<String, String>,
}

impl Posted {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

fn forbidden(chrome: Chrome, why: String) -> Response {
    pages::error(
        chrome,
        StatusCode::FORBIDDEN,
        format!("{why}; the form was refused. Reload the console page and submit it from there."),
        "/console/",
    )
}

impl FromRequest<Arc<Console>> for Posted {
    type Rejection = Response;

    async fn from_request(
        request: Request,
        console: &Arc<Console>,
    ) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let signed = Signed::from_request_parts(&mut parts, console).await?;
        if let Some(why) = session::cross_site(&parts.headers) {
            return Err(forbidden(signed.chrome(""), why));
        }
        let request = Request::from_parts(parts, body);
        let Form(form) = Form::<HashMap<String, String>>::from_request(request, console)
            .await
            .map_err(|e| {
                pages::error(
                    signed.chrome(""),
                    StatusCode::BAD_REQUEST,
                    format!("the form could not be read ({e}); submit it from the console's page"),
                    "/console/",
                )
            })?;
        let sent = form.get("_csrf").map(String::as_str).unwrap_or("");
        if !session::same(sent, &signed.session.csrf) {
            return Err(forbidden(
                signed.chrome(""),
                "the form's CSRF token is missing or is not this session's".to_string(),
            ));
        }
        Ok(Posted { signed, form })
    }
}

/// `GET /console/signin`: the form, with a CSRF token of its own in a cookie.
pub async fn signin_form(State(console): State<Arc<Console>>) -> Response {
    signin_page(&console, None, StatusCode::OK)
}

fn signin_page(console: &Console, error: Option<String>, status: StatusCode) -> Response {
    let csrf = session::random_id();
    let cookie = session::cookie(SIGNIN_COOKIE, &csrf, SIGNIN_FORM_LIFETIME, console.secure);
    let mut response = pages::page(&Signin {
        frame: Frame::new("Sign in", Chrome::default()),
        csrf,
        error,
    });
    *response.status_mut() = status;
    (AppendHeaders([(header::SET_COOKIE, cookie)]), response).into_response()
}

/// `POST /console/signin`: checks the token as the API does and opens a new
/// session under a new id (any session the browser had ends: no fixation).
pub async fn signin(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(why) = session::cross_site(&headers) {
        return signin_page(
            &console,
            Some(format!("{why}; sign in from this page")),
            StatusCode::FORBIDDEN,
        );
    }
    let expected = session::read_cookie(&headers, SIGNIN_COOKIE).unwrap_or("");
    let sent = form.get("_csrf").map(String::as_str).unwrap_or("");
    if expected.is_empty() || !session::same(sent, expected) {
        return signin_page(
            &console,
            Some("the sign-in form expired or did not come from this console; try again".into()),
            StatusCode::FORBIDDEN,
        );
    }
    let secret = form
        .get("token")
        .map(|t| t.trim().to_string())
        .unwrap_or_default();
    let who = match guard::authenticate(&console.rack, secret.clone()).await {
        Ok(Some(who)) => who,
        Ok(None) => {
            return signin_page(
                &console,
                Some("that token is not valid: paste a whole token (it starts with berth_), one that was not revoked".into()),
                StatusCode::UNAUTHORIZED,
            );
        }
        Err(e) => return e.into_response(),
    };
    if who.role == berth_store::access::NODE_ROLE {
        return signin_page(
            &console,
            Some("that is a node token, for `berth agent` only; sign in with an admin, deploy or read token".into()),
            StatusCode::FORBIDDEN,
        );
    }
    if let Some(old) = session::read_cookie(&headers, COOKIE) {
        console.sessions.close(old);
    }
    let (id, _) = console.sessions.open(secret);
    tracing::info!(token = who.id, role = who.role, "console: signed in");
    let cookies = AppendHeaders([
        (
            header::SET_COOKIE,
            session::cookie(SIGNIN_COOKIE, "", Duration::ZERO, console.secure),
        ),
        (
            header::SET_COOKIE,
            session::cookie(COOKIE, &id, LIFETIME, console.secure),
        ),
    ]);
    (cookies, Redirect::to("/console/")).into_response()
}

/// `POST /console/signout`: ends the session here and in the browser.
pub async fn signout(State(console): State<Arc<Console>>, posted: Posted) -> Response {
    console.sessions.close(&posted.signed.id);
    tracing::info!(token = posted.signed.who.id, "console: signed out");
    to_signin(&console)
}
