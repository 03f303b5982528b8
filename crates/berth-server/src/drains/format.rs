//! What a drain sends: one spooled [`Line`] per log entry, written out as an
//! RFC 5424 syslog message (octet-counted, RFC 6587) or as OTLP log records.
//!
//! The syslog message is formatted here by hand: the crates that format RFC
//! 5424 either own the transport and stamp the current time, process and host
//! themselves (`syslog`, `syslog-rs`, `tracing-rfc-5424`), while a drain must
//! carry the time the line was written, the app as APP-NAME and the process
//! as PROCID; the format is a few fields and one escaping rule (RFC 5424 6.3.3).

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde::{Deserialize, Serialize};

/// One log entry as a drain keeps it until sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// Unix nanoseconds.
    pub ts: i64,
    pub app: String,
    /// The entry's source (`web/web-3f9a2c`, `build/B2`, `router`, `berth`).
    pub source: String,
    pub text: String,
    #[serde(default)]
    pub service: Option<String>,
    /// The process (or one-off, build, timer) the line is from.
    #[serde(default)]
    pub process: Option<String>,
    #[serde(default)]
    pub release: Option<String>,
}

/// The SD-ID of berth's structured data. 32473 is the private enterprise
/// number RFC 5612 reserves for documentation and examples.
pub const SD_ID: &str = "berth@32473";

/// What kind of line it is, from its source: also the syslog MSGID.
pub fn kind(source: &str) -> &'static str {
    match source.split_once('/') {
        Some(("build", _)) => "build",
        Some(("timer", _)) => "timer",
        Some(_) => "process",
        None if source == "router" => "router",
        None => "system",
    }
}

/// One syslog message with its octet-counting frame (`LEN SP MSG`).
pub fn syslog_frame(line: &Line, hostname: &str) -> Vec<u8> {
    // facility user (1); severity notice (5) for berth's events, else info (6).
    let pri = 8 + if kind(&line.source) == "system" { 5 } else { 6 };
    let mut sd = format!("[{SD_ID}");
    for (name, value) in [
        ("service", line.service.as_deref()),
        ("release", line.release.as_deref()),
        ("source", Some(line.source.as_str())),
    ] {
        if let Some(value) = value {
            sd.push_str(&format!(" {name}=\"{}\"", sd_escape(value)));
        }
    }
    sd.push(']');
    let message = format!(
        "<{pri}>1 {} {} {} {} {} {sd} {}",
        timestamp(line.ts),
        header_field(hostname, 255),
        header_field(&line.app, 48),
        header_field(line.process.as_deref().unwrap_or("-"), 128),
        kind(&line.source),
        line.text.trim_end_matches(['\n', '\r'])
    );
    let mut frame = format!("{} ", message.len()).into_bytes();
    frame.extend_from_slice(message.as_bytes());
    frame
}

/// RFC 3339 in UTC with microseconds (RFC 5424 allows six digits at most).
fn timestamp(nanos: i64) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp_nanos(nanos.into()) else {
        return "-".into();
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// A header field: printable US-ASCII without spaces, at most `max` bytes, `-` if empty.
fn header_field(value: &str, max: usize) -> String {
    let clean: String = value
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if clean.is_empty() { "-".into() } else { clean }
}

/// A PARAM-VALUE: `"`, `\` and `]` escaped with a backslash.
fn sd_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// An OTLP export of `lines`: one resource per (app, service, release,
/// process), carrying `service.name` (the app), `berth.app`, `berth.service`,
/// `berth.release` and `berth.process`.
pub fn otlp_request(lines: &[Line]) -> ExportLogsServiceRequest {
    let mut resources: Vec<(ResourceKey, Vec<LogRecord>)> = Vec::new();
    for line in lines {
        let key = ResourceKey::of(line);
        let record = LogRecord {
            time_unix_nano: line.ts.max(0) as u64,
            observed_time_unix_nano: line.ts.max(0) as u64,
            severity_number: if kind(&line.source) == "system" {
                10
            } else {
                9
            },
            severity_text: if kind(&line.source) == "system" {
                "INFO2".into()
            } else {
                "INFO".into()
            },
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(
                    line.text.trim_end_matches(['\n', '\r']).into(),
                )),
            }),
            attributes: vec![
                string_kv("berth.source", &line.source),
                string_kv("berth.kind", kind(&line.source)),
            ],
            ..Default::default()
        };
        match resources.iter_mut().find(|(k, _)| *k == key) {
            Some((_, records)) => records.push(record),
            None => resources.push((key, vec![record])),
        }
    }
    ExportLogsServiceRequest {
        resource_logs: resources
            .into_iter()
            .map(|(key, records)| ResourceLogs {
                resource: Some(Resource {
                    attributes: key.attributes(),
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: "berth".into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                        ..Default::default()
                    }),
                    log_records: records,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
}

#[derive(PartialEq, Eq)]
struct ResourceKey {
    app: String,
    service: Option<String>,
    release: Option<String>,
    process: Option<String>,
}

impl ResourceKey {
    fn of(line: &Line) -> ResourceKey {
        ResourceKey {
            app: line.app.clone(),
            service: line.service.clone(),
            release: line.release.clone(),
            process: line.process.clone(),
        }
    }

    fn attributes(&self) -> Vec<KeyValue> {
        let mut out = vec![
            string_kv("service.name", &self.app),
            string_kv("berth.app", &self.app),
        ];
        for (key, value) in [
            ("berth.service", &self.service),
            ("berth.release", &self.release),
            ("berth.process", &self.process),
        ] {
            if let Some(value) = value {
                out.push(string_kv(key, value));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn line() -> Line {
        Line {
            ts: 1_714_564_800_123_456_789,
            app: "shop".into(),
            source: "web/web-3f9a2c".into(),
            text: "GET / \"ok\" done]\n".into(),
            service: Some("web".into()),
            process: Some("web-3f9a2c".into()),
            release: Some("R3".into()),
        }
    }

    #[test]
    fn a_syslog_frame_is_octet_counted_rfc_5424() {
        let frame = String::from_utf8(syslog_frame(&line(), "rack1")).expect("utf-8");
        let (len, message) = frame.split_once(' ').expect("a length");
        assert_eq!(len.parse::<usize>().ok(), Some(message.len()));
        assert_eq!(
            message,
            "<14>1 2024-05-01T12:00:00.123456Z rack1 shop web-3f9a2c process \
             [berth@32473 service=\"web\" release=\"R3\" source=\"web/web-3f9a2c\"] GET / \"ok\" done]"
        );
        let mut event = line();
        event.source = "berth".into();
        event.process = None;
        event.release = Some("R\"1]".into());
        event.service = None;
        let frame = String::from_utf8(syslog_frame(&event, "")).expect("utf-8");
        assert!(
            frame.contains("<13>1 2024-05-01T12:00:00.123456Z - shop - system [berth@32473 release=\"R\\\"1\\]\" source=\"berth\"]"),
            "{frame}"
        );
    }

    #[test]
    fn otlp_groups_lines_by_resource_and_round_trips_as_protobuf() {
        let mut other = line();
        other.process = Some("web-9z".into());
        let request = otlp_request(&[line(), other, line()]);
        let bytes = request.encode_to_vec();
        let back = ExportLogsServiceRequest::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(back.resource_logs.len(), 2);
        let first = &back.resource_logs[0];
        let attrs: Vec<(String, String)> = first
            .resource
            .as_ref()
            .map(|r| {
                r.attributes
                    .iter()
                    .map(|kv| {
                        let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                            Some(any_value::Value::StringValue(s)) => s.clone(),
                            _ => String::new(),
                        };
                        (kv.key.clone(), v)
                    })
                    .collect()
            })
            .unwrap_or_default();
        for (k, v) in [
            ("service.name", "shop"),
            ("berth.app", "shop"),
            ("berth.service", "web"),
            ("berth.release", "R3"),
            ("berth.process", "web-3f9a2c"),
        ] {
            assert!(attrs.contains(&(k.to_string(), v.to_string())), "{attrs:?}");
        }
        let records = &first.scope_logs[0].log_records;
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].time_unix_nano, 1_714_564_800_123_456_789);
    }
}
