//! Streams of newline-delimited JSON: the events of long work, and log lines.

use crate::{Error, root_cause};
use futures_util::stream::{BoxStream, StreamExt};
use reqwest::Response;
use serde::de::DeserializeOwned;

/// Splits a response body into lines and decodes each non-empty one as a `T`.
pub(crate) fn ndjson<T: DeserializeOwned + Send + 'static>(
    resp: Response,
    url: String,
) -> BoxStream<'static, Result<T, Error>> {
    let bytes = resp.bytes_stream().boxed();
    let parser = LineParser {
        url,
        buf: Vec::new(),
    };
    futures_util::stream::unfold(Some((bytes, parser)), |state| async move {
        let (mut bytes, mut parser) = state?;
        loop {
            if let Some(item) = parser.next_line::<T>() {
                return Some((item, Some((bytes, parser))));
            }
            match bytes.next().await {
                Some(Ok(chunk)) => parser.buf.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    let err = Error::Request {
                        url: parser.url.clone(),
                        reason: format!("the response broke off: {}", root_cause(&e)),
                    };
                    return Some((Err(err), None));
                }
                None => {
                    return parser.rest::<T>().map(|item| (item, None));
                }
            }
        }
    })
    .boxed()
}

struct LineParser {
    url: String,
    buf: Vec<u8>,
}

impl LineParser {
    /// The next complete, non-empty line, decoded.
    fn next_line<T: DeserializeOwned>(&mut self) -> Option<Result<T, Error>> {
        while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=pos).collect();
            if let Some(item) = self.parse(&line) {
                return Some(item);
            }
        }
        None
    }

    /// What is left after the body ended without a final newline.
    fn rest<T: DeserializeOwned>(&mut self) -> Option<Result<T, Error>> {
        let line = std::mem::take(&mut self.buf);
        self.parse(&line)
    }

    fn parse<T: DeserializeOwned>(&self, line: &[u8]) -> Option<Result<T, Error>> {
        let line = line.trim_ascii();
        if line.is_empty() {
            return None;
        }
        Some(serde_json::from_slice(line).map_err(|e| Error::Decode {
            url: self.url.clone(),
            reason: format!("bad line {:?}: {e}", String::from_utf8_lossy(line)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::Event;

    #[test]
    fn ndjson_lines() {
        let mut p = LineParser {
            url: "u".into(),
            buf: Vec::new(),
        };
        p.buf
            .extend_from_slice(b"{\"type\":\"step\",\"text\":\"a\"}\n\n{\"type\":\"bu");
        let first: Option<Result<Event, Error>> = p.next_line();
        assert!(matches!(first, Some(Ok(Event::Step { text })) if text == "a"));
        assert!(p.next_line::<Event>().is_none());
        p.buf.extend_from_slice(b"ild\",\"text\":\"b\"}");
        assert!(p.next_line::<Event>().is_none());
        assert!(matches!(p.rest::<Event>(), Some(Ok(Event::Build { text })) if text == "b"));
        assert!(p.rest::<Event>().is_none());
        p.buf.extend_from_slice(b"garbage\n");
        assert!(matches!(
            p.next_line::<Event>(),
            Some(Err(Error::Decode { .. }))
        ));
    }
}
