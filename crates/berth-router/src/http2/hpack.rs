//! HPACK (RFC 7541), the header compression of HTTP/2: a decoder for request header
//! blocks that keeps the dynamic table the client fills, and an encoder for response
//! heads that uses the static table only (no state to keep in step, and nothing of one
//! response's values left behind for the next). Huffman-coded strings are decoded by
//! the `httlib-huffman` crate.

use std::collections::VecDeque;
use std::sync::LazyLock;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::HeaderName;
use http::{HeaderValue, StatusCode};

/// The dynamic table size the router's decoder allows (HTTP/2's default; the router's
/// SETTINGS leave it as it is).
pub(crate) const TABLE_SIZE: usize = 4096;

/// What a decoded field is called: one of the request's pseudo-headers, a header, or a
/// name that no request may carry (kept so the dynamic table stays in step).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Name {
    Authority,
    Method,
    Path,
    Scheme,
    /// Any other pseudo-header (`:status`, `:protocol`…): malformed in a request.
    OtherPseudo,
    Header(HeaderName),
    /// Not a valid lowercase header name.
    Invalid,
}

impl Name {
    fn parse(name: &[u8]) -> Name {
        match name {
            b":authority" => Name::Authority,
            b":method" => Name::Method,
            b":path" => Name::Path,
            b":scheme" => Name::Scheme,
            [b':', ..] => Name::OtherPseudo,
            // HTTP/2 names are lowercase; `HeaderName` would fold an uppercase one.
            _ if name.iter().any(u8::is_ascii_uppercase) => Name::Invalid,
            _ => HeaderName::from_bytes(name).map_or(Name::Invalid, Name::Header),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum HpackError {
    #[error("header block ends inside a field")]
    Truncated,
    #[error("integer too large")]
    IntegerOverflow,
    #[error("index {0} is in neither table")]
    BadIndex(usize),
    #[error("invalid Huffman code")]
    Huffman,
    #[error("table size update to {0}, above the allowed {TABLE_SIZE}")]
    TableTooLarge(usize),
    #[error("table size update after a field")]
    LateSizeUpdate,
}

struct Entry {
    name: Name,
    value: Bytes,
    /// Its size as the table counts it: both lengths on the wire, plus 32.
    size: usize,
}

static STATIC_TABLE: LazyLock<Vec<Entry>> = LazyLock::new(|| {
    STATIC_FIELDS
        .iter()
        .map(|(name, value)| Entry {
            name: Name::parse(name.as_bytes()),
            value: Bytes::from_static(value.as_bytes()),
            size: name.len() + value.len() + 32,
        })
        .collect()
});

/// RFC 7541, Appendix A.
const STATIC_FIELDS: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// The decoder of one connection's request header blocks.
pub(crate) struct Decoder {
    /// Newest first, as HPACK numbers them.
    table: VecDeque<Entry>,
    size: usize,
    max_size: usize,
    huffman: Vec<u8>,
}

impl Decoder {
    pub(crate) fn new() -> Self {
        Decoder {
            table: VecDeque::new(),
            size: 0,
            max_size: TABLE_SIZE,
            huffman: Vec::new(),
        }
    }

    /// Decodes a whole header block, handing each field to `field` with the length of
    /// its name on the wire (for the header list's size). Every field is decoded, even
    /// after one the request cannot use: the table must stay in step with the client's.
    pub(crate) fn decode(
        &mut self,
        block: &Bytes,
        mut field: impl FnMut(Name, usize, Bytes),
    ) -> Result<(), HpackError> {
        let mut at = 0;
        let mut any_field = false;
        while at < block.len() {
            let first = block[at];
            if first & 0x80 != 0 {
                let index = integer(block, &mut at, 7)?;
                let entry = self.entry(index)?;
                field(
                    entry.name.clone(),
                    entry.size - entry.value.len() - 32,
                    entry.value.clone(),
                );
            } else if first & 0xc0 == 0x40 {
                let (name, name_len, value) = self.literal(block, &mut at, 6)?;
                self.insert(Entry {
                    name: name.clone(),
                    value: value.clone(),
                    size: name_len + value.len() + 32,
                });
                field(name, name_len, value);
            } else if first & 0xe0 == 0x20 {
                if any_field {
                    return Err(HpackError::LateSizeUpdate);
                }
                let size = integer(block, &mut at, 5)?;
                if size > TABLE_SIZE {
                    return Err(HpackError::TableTooLarge(size));
                }
                self.max_size = size;
                self.evict();
                continue;
            } else {
                // Without indexing (0000) or never indexed (0001): both 4-bit prefixes.
                let (name, name_len, value) = self.literal(block, &mut at, 4)?;
                field(name, name_len, value);
            }
            any_field = true;
        }
        Ok(())
    }

    fn entry(&self, index: usize) -> Result<&Entry, HpackError> {
        match index {
            1..=61 => Ok(&STATIC_TABLE[index - 1]),
            _ => index
                .checked_sub(62)
                .and_then(|i| self.table.get(i))
                .ok_or(HpackError::BadIndex(index)),
        }
    }

    fn literal(
        &mut self,
        block: &Bytes,
        at: &mut usize,
        prefix: u8,
    ) -> Result<(Name, usize, Bytes), HpackError> {
        let index = integer(block, at, prefix)?;
        let (name, name_len) = if index == 0 {
            let raw = self.string(block, at)?;
            (Name::parse(&raw), raw.len())
        } else {
            let entry = self.entry(index)?;
            (entry.name.clone(), entry.size - entry.value.len() - 32)
        };
        let value = self.string(block, at)?;
        Ok((name, name_len, value))
    }

    fn string(&mut self, block: &Bytes, at: &mut usize) -> Result<Bytes, HpackError> {
        let huffman = *block.get(*at).ok_or(HpackError::Truncated)? & 0x80 != 0;
        let len = integer(block, at, 7)?;
        let end = at.checked_add(len).ok_or(HpackError::Truncated)?;
        if end > block.len() {
            return Err(HpackError::Truncated);
        }
        let raw = block.slice(*at..end);
        *at = end;
        if !huffman {
            return Ok(raw);
        }
        self.huffman.clear();
        httlib_huffman::decode(
            &raw,
            &mut self.huffman,
            httlib_huffman::DecoderSpeed::FourBits,
        )
        .map_err(|_| HpackError::Huffman)?;
        Ok(Bytes::copy_from_slice(&self.huffman))
    }

    fn insert(&mut self, entry: Entry) {
        if entry.size > self.max_size {
            // An entry larger than the table empties it and is not kept (RFC 7541, 4.4).
            self.table.clear();
            self.size = 0;
            return;
        }
        self.size += entry.size;
        self.table.push_front(entry);
        self.evict();
    }

    fn evict(&mut self) {
        while self.size > self.max_size {
            match self.table.pop_back() {
                Some(old) => self.size -= old.size,
                None => self.size = 0,
            }
        }
    }
}

/// An HPACK integer with an N-bit prefix (RFC 7541, 5.1), from `block[*at..]`.
fn integer(block: &[u8], at: &mut usize, prefix: u8) -> Result<usize, HpackError> {
    let max = (1usize << prefix) - 1;
    let first = *block.get(*at).ok_or(HpackError::Truncated)? as usize & max;
    *at += 1;
    if first < max {
        return Ok(first);
    }
    let mut value = max;
    let mut shift = 0;
    loop {
        let byte = *block.get(*at).ok_or(HpackError::Truncated)?;
        *at += 1;
        // Nothing in a header block is near 2^28; larger is an attack or garbage.
        if shift > 21 {
            return Err(HpackError::IntegerOverflow);
        }
        value += ((byte & 0x7f) as usize) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
}

fn put_integer(out: &mut BytesMut, first_bits: u8, prefix: u8, value: usize) {
    let max = (1usize << prefix) - 1;
    if value < max {
        out.put_u8(first_bits | value as u8);
        return;
    }
    out.put_u8(first_bits | max as u8);
    let mut rest = value - max;
    while rest >= 0x80 {
        out.put_u8((rest as u8 & 0x7f) | 0x80);
        rest >>= 7;
    }
    out.put_u8(rest as u8);
}

fn put_string(out: &mut BytesMut, value: &[u8]) {
    put_integer(out, 0, 7, value.len());
    out.put_slice(value);
}

/// Encodes any field as a literal with its name spelled out (tests build requests,
/// odd ones included, with it).
#[cfg(test)]
pub(crate) fn encode_literal(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.put_u8(0);
    put_string(out, name);
    put_string(out, value);
}

/// Encodes a response's `:status`.
pub(crate) fn encode_status(out: &mut BytesMut, status: StatusCode) {
    let indexed = match status.as_u16() {
        200 => 8,
        204 => 9,
        206 => 10,
        304 => 11,
        400 => 12,
        404 => 13,
        500 => 14,
        _ => 0,
    };
    if indexed != 0 {
        put_integer(out, 0x80, 7, indexed);
    } else {
        // Literal without indexing, the name `:status` (index 8).
        put_integer(out, 0, 4, 8);
        put_string(out, status.as_str().as_bytes());
    }
}

/// Encodes a header as a literal that is not indexed (or, for a sensitive value, that
/// no intermediary may index), naming it by its static table index where it has one.
pub(crate) fn encode_header(out: &mut BytesMut, name: &HeaderName, value: &HeaderValue) {
    let first_bits = if value.is_sensitive() { 0x10 } else { 0 };
    match static_name_index(name) {
        Some(index) => put_integer(out, first_bits, 4, index),
        None => {
            out.put_u8(first_bits);
            put_string(out, name.as_str().as_bytes());
        }
    }
    put_string(out, value.as_bytes());
}

fn static_name_index(name: &HeaderName) -> Option<usize> {
    use http::header::*;
    let index = match *name {
        ACCEPT_RANGES => 18,
        ACCESS_CONTROL_ALLOW_ORIGIN => 20,
        AGE => 21,
        ALLOW => 22,
        CACHE_CONTROL => 24,
        CONTENT_DISPOSITION => 25,
        CONTENT_ENCODING => 26,
        CONTENT_LANGUAGE => 27,
        CONTENT_LENGTH => 28,
        CONTENT_LOCATION => 29,
        CONTENT_RANGE => 30,
        CONTENT_TYPE => 31,
        DATE => 33,
        ETAG => 34,
        EXPIRES => 36,
        LAST_MODIFIED => 44,
        LINK => 45,
        LOCATION => 46,
        PROXY_AUTHENTICATE => 48,
        RETRY_AFTER => 53,
        SERVER => 54,
        SET_COOKIE => 55,
        STRICT_TRANSPORT_SECURITY => 56,
        VARY => 59,
        VIA => 60,
        WWW_AUTHENTICATE => 61,
        _ => return None,
    };
    Some(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(decoder: &mut Decoder, block: &[u8]) -> Result<Vec<(Name, Bytes)>, HpackError> {
        let mut fields = Vec::new();
        decoder.decode(&Bytes::copy_from_slice(block), |name, _, value| {
            fields.push((name, value))
        })?;
        Ok(fields)
    }

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn header(name: &str) -> Name {
        Name::Header(HeaderName::from_bytes(name.as_bytes()).unwrap())
    }

    /// RFC 7541, C.4: three requests with Huffman coding, sharing one dynamic table.
    #[test]
    fn decodes_the_rfc_examples_of_requests_with_huffman_coding() {
        let mut decoder = Decoder::new();
        let first = decode_all(
            &mut decoder,
            &hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff"),
        )
        .unwrap();
        assert_eq!(
            first,
            vec![
                (Name::Method, Bytes::from("GET")),
                (Name::Scheme, Bytes::from("http")),
                (Name::Path, Bytes::from("/")),
                (Name::Authority, Bytes::from("www.example.com")),
            ]
        );
        let second = decode_all(&mut decoder, &hex("8286 84be 5886 a8eb 1064 9cbf")).unwrap();
        assert_eq!(second[3], (Name::Authority, Bytes::from("www.example.com")));
        assert_eq!(
            second[4],
            (header("cache-control"), Bytes::from("no-cache"))
        );
        let third = decode_all(
            &mut decoder,
            &hex("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf"),
        )
        .unwrap();
        assert_eq!(third[1], (Name::Scheme, Bytes::from("https")));
        assert_eq!(third[2], (Name::Path, Bytes::from("/index.html")));
        assert_eq!(third[3], (Name::Authority, Bytes::from("www.example.com")));
        assert_eq!(
            third[4],
            (header("custom-key"), Bytes::from("custom-value"))
        );
        // The table holds what the RFC says: three entries, 164 octets.
        assert_eq!(decoder.table.len(), 3);
        assert_eq!(decoder.size, 164);
    }

    /// RFC 7541, C.3: the same requests without Huffman coding.
    #[test]
    fn decodes_the_rfc_examples_of_requests_without_huffman_coding() {
        let mut decoder = Decoder::new();
        decode_all(
            &mut decoder,
            &hex("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d"),
        )
        .unwrap();
        let second = decode_all(&mut decoder, &hex("8286 84be 5808 6e6f 2d63 6163 6865")).unwrap();
        assert_eq!(
            second[4],
            (header("cache-control"), Bytes::from("no-cache"))
        );
        assert_eq!(decoder.size, 110);
    }

    #[test]
    fn eviction_keeps_the_table_within_its_size() {
        let mut decoder = Decoder::new();
        // A size update to 64 octets, then two 40-octet entries: only the newer stays.
        let mut block = BytesMut::new();
        put_integer(&mut block, 0x20, 5, 64);
        for value in ["a", "b"] {
            block.put_u8(0x40);
            put_string(&mut block, b"x-k");
            put_string(&mut block, &value.as_bytes().repeat(5));
        }
        put_integer(&mut block, 0x80, 7, 62);
        let fields = decode_all(&mut decoder, &block).unwrap();
        assert_eq!(fields[2], (header("x-k"), Bytes::from("bbbbb")));
        assert_eq!(decoder.table.len(), 1);
        // The evicted entry's index is gone.
        let mut block = BytesMut::new();
        put_integer(&mut block, 0x80, 7, 63);
        assert_eq!(
            decode_all(&mut decoder, &block),
            Err(HpackError::BadIndex(63))
        );
    }

    #[test]
    fn refuses_what_is_not_hpack() {
        let mut decoder = Decoder::new();
        // Index 0, an index past both tables, a string longer than the block, an
        // integer without end, a size update above the setting and one after a field.
        assert_eq!(
            decode_all(&mut decoder, &[0x80]),
            Err(HpackError::BadIndex(0))
        );
        assert_eq!(
            decode_all(&mut decoder, &[0xff, 0x00]),
            Err(HpackError::BadIndex(127))
        );
        assert_eq!(
            decode_all(&mut decoder, &[0x04, 0x05, b'a']),
            Err(HpackError::Truncated)
        );
        assert_eq!(
            decode_all(&mut decoder, &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            Err(HpackError::IntegerOverflow)
        );
        assert_eq!(
            decode_all(&mut decoder, &[0x3f, 0xe2, 0x1f]),
            Err(HpackError::TableTooLarge(4097))
        );
        assert_eq!(
            decode_all(&mut decoder, &[0x82, 0x20]),
            Err(HpackError::LateSizeUpdate)
        );
        // A Huffman string holding the end-of-string code.
        assert_eq!(
            decode_all(&mut decoder, &[0x04, 0x84, 0xff, 0xff, 0xff, 0xff]),
            Err(HpackError::Huffman)
        );
    }

    #[test]
    fn names_are_sorted_into_pseudo_headers_headers_and_invalid_ones() {
        assert_eq!(Name::parse(b":path"), Name::Path);
        assert_eq!(Name::parse(b":status"), Name::OtherPseudo);
        assert_eq!(Name::parse(b"x-id"), header("x-id"));
        assert_eq!(Name::parse(b"X-Id"), Name::Invalid);
        assert_eq!(Name::parse(b"bad name"), Name::Invalid);
        assert_eq!(Name::parse(b""), Name::Invalid);
    }

    #[test]
    fn encoded_responses_decode_to_what_was_encoded() {
        let mut out = BytesMut::new();
        encode_status(&mut out, StatusCode::OK);
        encode_status(&mut out, StatusCode::IM_A_TEAPOT);
        encode_header(
            &mut out,
            &http::header::CONTENT_TYPE,
            &HeaderValue::from_static("text/plain"),
        );
        let mut id = HeaderValue::from_static("0123");
        id.set_sensitive(true);
        encode_header(&mut out, &HeaderName::from_static("x-request-id"), &id);
        let long = "v".repeat(300);
        encode_header(
            &mut out,
            &HeaderName::from_static("x-long"),
            &HeaderValue::from_str(&long).unwrap(),
        );
        let mut decoder = Decoder::new();
        let mut fields = Vec::new();
        decoder
            .decode(&out.freeze(), |name, _, value| fields.push((name, value)))
            .unwrap();
        assert_eq!(fields[0], (Name::OtherPseudo, Bytes::from("200")));
        assert_eq!(fields[1], (Name::OtherPseudo, Bytes::from("418")));
        assert_eq!(
            fields[2],
            (header("content-type"), Bytes::from("text/plain"))
        );
        assert_eq!(fields[3], (header("x-request-id"), Bytes::from("0123")));
        assert_eq!(fields[4], (header("x-long"), Bytes::from(long)));
        // Nothing was indexed.
        assert!(decoder.table.is_empty());
    }
}
