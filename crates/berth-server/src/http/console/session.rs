//! Console sessions, kept in the server's memory (a server restart ends them
//! all: sign in again): random ids from the OS-seeded CSPRNG, an absolute
//! expiry, a CSRF token each, and the cookie that carries the id.
//!
//! A session holds the token typed at sign-in, so every page is served by
//! calling the API with it: a revoked token ends its sessions at their next
//! request, and a session can never do more than its token.

use axum::http::{HeaderMap, HeaderValue, header};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The session cookie.
pub const COOKIE: &str = "berth_session";
/// The cookie of the sign-in form's own CSRF token (there is no session yet).
pub const SIGNIN_COOKIE: &str = "berth_signin";
/// Where the console lives; both cookies are sent only there.
pub const PATH: &str = "/console";
/// A session ends this long after sign-in, used or not.
pub const LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// At most this many sessions live at once; past it the oldest ends.
const MAX_SESSIONS: usize = 10_000;

/// What the server keeps of one signed-in browser.
#[derive(Clone)]
pub struct Session {
    /// The API token the session acts with.
    pub secret: String,
    /// Sent back with every form; a POST without it is refused.
    pub csrf: String,
    opened: Instant,
}

#[derive(Default)]
pub struct Sessions {
    /// SHA-256 of the cookie's id → session, so the map never holds ids.
    map: Mutex<HashMap<[u8; 32], Session>>,
}

/// 256 random bits from the thread's CSPRNG (ChaCha, seeded and reseeded from the OS), as hex.
pub fn random_id() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// Equal strings, compared in time that depends only on their lengths.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Sessions {
    /// A new session for `secret` under a new id (never one the browser chose).
    pub fn open(&self, secret: String) -> (String, Session) {
        let id = random_id();
        let session = Session {
            secret,
            csrf: random_id(),
            opened: Instant::now(),
        };
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| s.opened.elapsed() < LIFETIME);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map.iter().min_by_key(|(_, s)| s.opened).map(|(k, _)| *k)
        {
            map.remove(&oldest);
        }
        map.insert(key(&id), session.clone());
        (id, session)
    }

    /// The live session of `id`; an expired one is removed.
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let k = key(id);
        match map.get(&k) {
            Some(s) if s.opened.elapsed() < LIFETIME => Some(s.clone()),
            Some(_) => {
                map.remove(&k);
                None
            }
            None => None,
        }
    }

    pub fn close(&self, id: &str) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&key(id));
    }
}

/// A console cookie's `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, only
/// under [`PATH`], `Secure` when the API is served over TLS, gone after
/// `max_age` (zero: removed now). Values are hex, so nothing needs quoting.
/// (Written here rather than with the `cookie` crate, whose date parsing and
/// formatting cost the binary more than this whole function.)
pub fn cookie(name: &str, value: &str, max_age: Duration, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{name}={value}; Path={PATH}; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        max_age.as_secs()
    );
    HeaderValue::from_str(&text)
        .unwrap_or_else(|_| HeaderValue::from_static("berth_invalid=; Max-Age=0"))
}

/// The value of cookie `name` the browser sent (`Cookie: a=1; b=2`), if any.
pub fn read_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// Why a form post is refused as cross-site, if it is: the browser says it came
/// from another site (`Sec-Fetch-Site`), or its `Origin` is not this host.
pub fn cross_site(headers: &HeaderMap) -> Option<String> {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site")
        && !matches!(site, "same-origin" | "none")
    {
        return Some(format!(
            "the browser says this form came from a {site} page"
        ));
    }
    if let Some(origin) = text(header::ORIGIN.as_str()) {
        let host = text(header::HOST.as_str()).unwrap_or("");
        let authority = origin.split_once("://").map(|(_, a)| a).unwrap_or("");
        if authority.is_empty() || !authority.eq_ignore_ascii_case(host) {
            return Some(format!(
                "the form came from {origin}, not from this console ({host})"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_get_new_random_ids_and_end() {
        let sessions = Sessions::default();
        let (a, sa) = sessions.open("t".into());
        let (b, _) = sessions.open("t".into());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(sessions.get(&a).is_some_and(|s| same(&s.csrf, &sa.csrf)));
        sessions.close(&a);
        assert!(sessions.get(&a).is_none());
        assert!(sessions.get("made-up").is_none());
    }

    #[test]
    fn cross_site_posts_are_named() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:7070".parse().unwrap());
        assert_eq!(cross_site(&h), None);
        h.insert(header::ORIGIN, "http://127.0.0.1:7070".parse().unwrap());
        h.insert("sec-fetch-site", "same-origin".parse().unwrap());
        assert_eq!(cross_site(&h), None);
        h.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert!(cross_site(&h).is_some());
        h.insert(header::ORIGIN, "http://127.0.0.1:7070".parse().unwrap());
        h.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(cross_site(&h).is_some());
    }

    #[test]
    fn cookies_carry_their_flags_and_are_read_back() {
        let c = cookie(COOKIE, "x", LIFETIME, true);
        let c = c.to_str().unwrap();
        for flag in [
            "HttpOnly",
            "SameSite=Strict",
            "; Secure",
            "Path=/console",
            "Max-Age=28800",
        ] {
            assert!(c.contains(flag), "{c}");
        }
        let plain = cookie(COOKIE, "x", LIFETIME, false);
        assert!(!plain.to_str().unwrap().contains("Secure"));
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; berth_session=abc ;b=2".parse().unwrap(),
        );
        assert_eq!(read_cookie(&h, COOKIE), Some("abc"));
        assert_eq!(read_cookie(&h, "berth"), None);
    }
}
