//! The console's live parts: an app's log lines as Server-Sent Events, and the
//! progress of long work (promote, rollback, env changes) streamed into the
//! page as it happens, so both work without polling.

use super::api::seg;
use super::auth::Signed;
use super::pages::{self, ProgressPage};
use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::header;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use berth_api::Event;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use std::collections::VecDeque;
use std::convert::Infallible;

/// The lines of an NDJSON body, as they arrive.
fn ndjson_lines(body: Body) -> impl Stream<Item = String> + Send {
    let state = (
        body.into_data_stream(),
        Vec::<u8>::new(),
        VecDeque::<String>::new(),
    );
    futures_util::stream::unfold(state, |(mut data, mut buf, mut ready)| async move {
        loop {
            if let Some(line) = ready.pop_front() {
                return Some((line, (data, buf, ready)));
            }
            match data.next().await {
                Some(Ok(chunk)) => {
                    buf.extend_from_slice(&chunk);
                    while let Some(end) = buf.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=end).collect();
                        let text = String::from_utf8_lossy(&line).trim().to_string();
                        if !text.is_empty() {
                            ready.push_back(text);
                        }
                    }
                }
                Some(Err(_)) | None => {
                    let rest = String::from_utf8_lossy(&buf).trim().to_string();
                    buf.clear();
                    if rest.is_empty() {
                        return None;
                    }
                    return Some((rest, (data, buf, ready)));
                }
            }
        }
    })
}

#[derive(Deserialize)]
pub struct StreamQuery {
    service: Option<String>,
    tail: Option<usize>,
}

/// `GET /console/apps/{app}/logs/stream[?service=S&tail=N]`: the last `tail`
/// lines, then every new one, each an SSE `message` whose data is the
/// [`berth_api::LogEntry`] as JSON. (A reconnecting browser gets the tail
/// again; the page starts its list over on each `open`.)
pub async fn log_stream(
    s: Signed,
    Path(app): Path<String>,
    Query(q): Query<StreamQuery>,
) -> Response {
    let mut path = format!(
        "/apps/{}/logs?follow=true&tail={}",
        seg(&app),
        q.tail.unwrap_or(super::read::LOG_TAIL)
    );
    if let Some(service) = q.service.filter(|s| !s.is_empty()) {
        path.push_str(&format!("&service={}", seg(&service)));
    }
    let response = match s.call(axum::http::Method::GET, &path, None).await {
        Ok(r) => r,
        Err(f) => return (f.status, f.message).into_response(),
    };
    // The stream ends with its session (signed out, expired): checked at each line.
    let (console, id) = (s.console.clone(), s.id.clone());
    let events = ndjson_lines(response.into_body())
        .take_while(move |_| std::future::ready(console.sessions.get(&id).is_some()))
        .map(|line| Ok::<_, Infallible>(SseEvent::default().data(line)));
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// One event of long work as a list item.
fn item(event: &Event) -> String {
    let esc = |s: &str| {
        askama::filters::escape(s, askama::filters::Html)
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    match event {
        Event::Build { text } => format!("<li class=\"build\"><code>{}</code></li>\n", esc(text)),
        Event::Step { text } => format!("<li>{}</li>\n", esc(text)),
        Event::Error { error, logs } => {
            let mut html = format!(
                "<li class=\"failed\" role=\"alert\"><strong>Failed:</strong> {}",
                esc(error)
            );
            if !logs.is_empty() {
                html.push_str("<pre class=\"output\">");
                html.push_str(&esc(&logs.join("\n")));
                html.push_str("</pre>");
            }
            html.push_str("</li>\n</ol><p id=\"outcome\" class=\"badge failed\">failed</p><ol hidden>\n");
            html
        }
        Event::Result { .. } => {
            "<li class=\"done\">Done.</li>\n</ol><p id=\"outcome\" class=\"badge healthy\">done</p><ol hidden>\n"
                .to_string()
        }
    }
}

/// The page of long work whose NDJSON events `work` answers: the page's head
/// at once, each event as it comes, then the rest of the page. Browsers show
/// a page while it arrives, so no script is needed to watch it.
pub fn progress(
    s: &Signed,
    app: &str,
    tab: &'static str,
    heading: String,
    back: String,
    work: Response,
) -> Response {
    let page = ProgressPage {
        frame: s.app_frame(app, tab, heading.clone()),
        heading,
        back,
    };
    let html = match askama::Template::render(&page) {
        Ok(html) => html,
        Err(e) => return pages::page(&page_error(e)),
    };
    let (head, tail) = html
        .split_once("<!--EVENTS-->")
        .map(|(h, t)| (h.to_string(), t.to_string()))
        .unwrap_or((html, String::new()));
    let events = ndjson_lines(work.into_body()).map(|line| {
        let html = match serde_json::from_str::<Event>(&line) {
            Ok(event) => item(&event),
            Err(_) => String::new(),
        };
        Ok::<_, Infallible>(Bytes::from(html))
    });
    let body = futures_util::stream::once(async move { Ok::<_, Infallible>(Bytes::from(head)) })
        .chain(events)
        .chain(futures_util::stream::once(
            async move { Ok(Bytes::from(tail)) },
        ));
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

fn page_error(e: askama::Error) -> pages::ErrorPage {
    pages::ErrorPage {
        frame: pages::Frame::new("Error", pages::Chrome::default()),
        heading: "The page could not be made".into(),
        message: e.to_string(),
        back: "/console/".into(),
    }
}
