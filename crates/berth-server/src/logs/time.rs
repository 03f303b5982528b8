//! Timestamps of log lines: written with all nine digits of the fraction, so
//! text order is time order.

use berth_api::LogEntry;

/// RFC 3339 in UTC with all nine digits of the fraction
/// (`2024-05-01T12:00:00.120000000Z`): the `time` crate's RFC 3339 drops
/// trailing zeros, which made columns ragged and text order differ from time
/// order (`…:00Z` sorts after `…:00.5Z`).
pub fn format_ts(nanos: i128) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp_nanos(nanos) else {
        return String::new();
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond()
    )
}

pub fn now_nanos() -> i128 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos()
}

pub(super) fn parse_ts(ts: &str) -> Option<i128> {
    time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp_nanos())
}

/// An entry's time in Unix nanoseconds; the oldest possible if it has none.
pub fn entry_nanos(entry: &LogEntry) -> i128 {
    parse_ts(&entry.ts).unwrap_or(i128::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_one_width() {
        assert_eq!(format_ts(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            format_ts(1_714_564_800_120_000_000),
            "2024-05-01T12:00:00.120000000Z"
        );
        assert_eq!(
            parse_ts("2024-05-01T12:00:00.120000000Z"),
            Some(1_714_564_800_120_000_000)
        );
    }
}
