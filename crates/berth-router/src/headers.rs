//! Header handling: the host of a request, hop-by-hop headers, `X-Forwarded-*`, request
//! ids, and the writers of the heads the fast path builds by hand.

use std::borrow::Cow;
use std::cell::Cell;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{CONNECTION, HOST, TE, TRAILER, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue, Request};

pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Headers that describe one connection, never forwarded (RFC 9110 §7.6.1).
static HOP_BY_HOP: [HeaderName; 7] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
];

/// A header HTTP/2 forbids in a request (RFC 9113, 8.2.2): the hop-by-hop ones but
/// `TE` (allowed as `trailers`) and `Trailer`.
pub(crate) fn is_connection_specific(name: &HeaderName) -> bool {
    *name != TE && *name != TRAILER && HOP_BY_HOP.contains(name)
}

/// The host the client asked for, as sent: the authority of an absolute-form URI, else
/// the `Host` header. The flag says it came from the URI (the `Host` header must then be
/// replaced by it).
pub(crate) fn requested_host<B>(req: &Request<B>) -> Option<(HeaderValue, bool)> {
    if let Some(authority) = req.uri().authority() {
        // Drop any userinfo: `user@host:port` → `host:port`.
        let hostport = authority
            .as_str()
            .rsplit('@')
            .next()
            .unwrap_or(authority.as_str());
        let value = HeaderValue::from_str(hostport).ok()?;
        return Some((value, true));
    }
    req.headers().get(HOST).map(|h| (h.clone(), false))
}

/// `Shop.Example.com:8080` → `shop.example.com`; `[::1]:80` → `[::1]`. Borrows unless
/// the name has upper-case letters.
pub(crate) fn normalize_host(value: &HeaderValue) -> Option<Cow<'_, str>> {
    normalize_host_str(value.to_str().ok()?)
}

/// [`normalize_host`] for a header value already known to be text.
pub(crate) fn normalize_host_str(s: &str) -> Option<Cow<'_, str>> {
    let s = s.trim();
    let host = if s.starts_with('[') {
        let end = s.find(']')?;
        &s[..=end]
    } else {
        s.split(':').next().unwrap_or(s)
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() {
        return None;
    }
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(Cow::Owned(host.to_ascii_lowercase()))
    } else {
        Some(Cow::Borrowed(host))
    }
}

/// A host name as the router keys its tables by (routes, certificates): lower-case,
/// without surrounding space or trailing dots.
pub(crate) fn canonical_name(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// The comma-separated tokens of a header value (`Connection: keep-alive, Upgrade`),
/// trimmed, empty ones left out.
pub(crate) fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

fn has_token(value: &HeaderValue, token: &[u8]) -> bool {
    tokens(value.as_bytes()).any(|t| t.eq_ignore_ascii_case(token))
}

/// The protocol a request asks to switch to (`Connection: upgrade` plus `Upgrade: x`).
pub(crate) fn upgrade_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    let protocol = headers.get(UPGRADE)?;
    headers
        .get_all(CONNECTION)
        .iter()
        .any(|v| has_token(v, b"upgrade"))
        .then(|| protocol.clone())
}

/// The message's `Content-Length`, if it has one that reads as a number.
pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Removes the hop-by-hop headers, including those named in `Connection`.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One look at each name present says which hop-by-hop names to remove: most
    // messages carry none, or only `Connection`, and a removal is a hash lookup.
    let mut present = 0u8;
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == name) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    if let Some(connection) = headers.get(CONNECTION) {
        // Fast path: the common values name no other header.
        let plain = headers.get_all(CONNECTION).iter().count() == 1
            && ["keep-alive", "close", "upgrade"]
                .iter()
                .any(|t| connection.as_bytes().eq_ignore_ascii_case(t.as_bytes()));
        if !plain {
            let mut named: Vec<HeaderName> = Vec::new();
            for value in headers.get_all(CONNECTION) {
                for token in tokens(value.as_bytes()) {
                    if let Ok(name) = HeaderName::from_bytes(token) {
                        // Never let a client make us drop the Host header.
                        if name != HOST {
                            named.push(name);
                        }
                    }
                }
            }
            for name in named {
                headers.remove(name);
            }
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
}

/// Marks a request or a 101 response as switching to `protocol`.
pub(crate) fn set_upgrade(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, protocol);
}

/// Appends the client's address to `X-Forwarded-For` (joining repeated headers).
pub(crate) fn append_forwarded_for(headers: &mut HeaderMap, client_ip: &HeaderValue) {
    let value = {
        let mut existing = headers.get_all(&X_FORWARDED_FOR).iter();
        match existing.next() {
            None => client_ip.clone(),
            Some(first) => {
                let mut buf = Vec::with_capacity(first.len() + 2 + client_ip.len() + 16);
                buf.extend_from_slice(first.as_bytes());
                for v in existing {
                    buf.extend_from_slice(b", ");
                    buf.extend_from_slice(v.as_bytes());
                }
                buf.extend_from_slice(b", ");
                buf.extend_from_slice(client_ip.as_bytes());
                HeaderValue::from_maybe_shared(Bytes::from(buf))
                    .unwrap_or_else(|_| client_ip.clone())
            }
        }
    };
    headers.insert(X_FORWARDED_FOR, value);
}

// The three below write heads on the fast path, per response and per header:
// `#[inline]` lets them be inlined there, in another module.

/// Writes an HTTP/1.1 status line, `HTTP/1.1 200 OK`.
#[inline]
pub(crate) fn put_status_line(out: &mut Vec<u8>, status: u16, reason: &str) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends `name: value` and its line end to a head being written.
#[inline]
pub(crate) fn put_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Ends a response head the router writes to a client itself with the headers it adds
/// to every response (`X-Request-Id`, and `Connection: close` when the connection
/// closes after it) and the empty line.
#[inline]
pub(crate) fn end_response_head(out: &mut Vec<u8>, request_id: &[u8], close: bool) {
    out.extend_from_slice(b"x-request-id: ");
    out.extend_from_slice(request_id);
    if close {
        out.extend_from_slice(b"\r\nconnection: close");
    }
    out.extend_from_slice(b"\r\n\r\n");
}

/// The client address as a header value, computed once per connection.
pub(crate) fn ip_header(ip: IpAddr) -> HeaderValue {
    let ip = ip.to_canonical();
    HeaderValue::from_maybe_shared(Bytes::from(ip.to_string()))
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// Keeps the client's `X-Request-Id`, or sets a new one; returns it.
pub(crate) fn ensure_request_id(headers: &mut HeaderMap) -> HeaderValue {
    if let Some(id) = headers.get(&X_REQUEST_ID).filter(|id| !id.is_empty()) {
        return id.clone();
    }
    let id = new_request_id();
    headers.insert(X_REQUEST_ID, id.clone());
    id
}

/// A random 128-bit id as 32 lower-case hex digits.
pub(crate) fn new_request_id() -> HeaderValue {
    HeaderValue::from_maybe_shared(Bytes::copy_from_slice(&new_request_id_bytes()))
        .unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// [`new_request_id`] as bytes, without allocating.
pub(crate) fn new_request_id_bytes() -> [u8; 32] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 32];
    for (i, word) in [random_u64(), random_u64()].into_iter().enumerate() {
        for j in 0..16 {
            let nibble = (word >> (60 - 4 * j)) & 0xf;
            buf[i * 16 + j] = HEX[nibble as usize];
        }
    }
    buf
}

/// A fast, non-cryptographic random number (splitmix64 on a per-thread state seeded from
/// the std hasher's random keys, the clock and a global counter).
pub(crate) fn random_u64() -> u64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new(seed());
    }
    STATE.with(|state| {
        let s = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        state.set(s);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

fn seed() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    if let Ok(now) = SystemTime::now().duration_since(UNIX_EPOCH) {
        hasher.write_u128(now.as_nanos());
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_hosts() {
        let n =
            |s: &'static str| normalize_host(&HeaderValue::from_static(s)).map(|h| h.into_owned());
        assert_eq!(
            n("Shop.Example.COM:8080").as_deref(),
            Some("shop.example.com")
        );
        assert_eq!(n("shop.localhost").as_deref(), Some("shop.localhost"));
        assert_eq!(n("shop.localhost.").as_deref(), Some("shop.localhost"));
        assert_eq!(n("[::1]:80").as_deref(), Some("[::1]"));
        assert_eq!(n(":80"), None);
        assert_eq!(n(""), None);
    }

    #[test]
    fn strips_hop_by_hop_and_named() {
        let mut h = HeaderMap::new();
        h.insert(
            CONNECTION,
            HeaderValue::from_static("keep-alive, X-Secret, host"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert(HOST, HeaderValue::from_static("a"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        let mut names: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["host", "x-kept"]);
    }

    #[test]
    fn detects_upgrades() {
        let mut h = HeaderMap::new();
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        assert!(upgrade_protocol(&h).is_none());
        h.insert(CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        assert_eq!(
            upgrade_protocol(&h),
            Some(HeaderValue::from_static("websocket"))
        );
    }

    #[test]
    fn appends_forwarded_for() {
        let ip = ip_header("::ffff:10.0.0.9".parse().unwrap());
        assert_eq!(ip, "10.0.0.9");
        let mut h = HeaderMap::new();
        append_forwarded_for(&mut h, &ip);
        assert_eq!(h[&X_FORWARDED_FOR], "10.0.0.9");
        let mut h = HeaderMap::new();
        h.append(&X_FORWARDED_FOR, HeaderValue::from_static("1.1.1.1"));
        h.append(&X_FORWARDED_FOR, HeaderValue::from_static("2.2.2.2"));
        append_forwarded_for(&mut h, &ip);
        assert_eq!(h[&X_FORWARDED_FOR], "1.1.1.1, 2.2.2.2, 10.0.0.9");
    }

    #[test]
    fn request_ids_are_hex_and_distinct() {
        let a = new_request_id();
        let b = new_request_id();
        assert_eq!(a.len(), 32);
        assert!(a.as_bytes().iter().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        let mut h = HeaderMap::new();
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("client-id"));
        assert_eq!(ensure_request_id(&mut h), "client-id");
    }
}
