//! What commands print: JSON for scripts; tables, ages and sizes for people to read.

use serde::Serialize;
use std::io::Write;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `value` as one pretty-printed JSON document on stdout.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// A list as one JSON array (`json`), else as a table of a `row` per item.
pub fn print_list<T: Serialize>(
    items: &[T],
    json: bool,
    headers: &[&str],
    row: impl Fn(&T) -> Vec<String>,
) -> anyhow::Result<()> {
    if json {
        return print_json(&items);
    }
    let rows: Vec<Vec<String>> = items.iter().map(row).collect();
    print!("{}", table(headers, &rows));
    Ok(())
}

/// `text` on stdout as it is, ending in a newline.
pub fn print_text(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    if !text.is_empty() && !text.ends_with('\n') {
        writeln!(out)?;
    }
    out.flush()?;
    Ok(())
}

/// An aligned table: upper-case headers, columns two spaces apart, no trailing blanks.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let cols = headers.len();
    // Cells are single-line; a newline would break the alignment.
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| c.replace(['\n', '\r'], " ")).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate().take(cols) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header_row: Vec<String> = headers.iter().map(|h| h.to_uppercase()).collect();
    for row in std::iter::once(&header_row).chain(&rows) {
        let mut line = String::new();
        for (i, width) in widths.iter().enumerate() {
            let cell = row.get(i).map(String::as_str).unwrap_or("");
            line.push_str(cell);
            if i + 1 < cols {
                let pad = width.saturating_sub(cell.chars().count()) + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `Key  value` lines with the values aligned.
pub fn key_values(pairs: &[(&str, String)]) -> String {
    let width = pairs
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (k, v) in pairs {
        let line = format!("{k:<width$}  {v}");
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

pub fn parse_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

/// `12s`, `5m`, `3h`, `4d`: a compact span.
pub fn short_span(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// `45s`, `12m30s`, `3h12m`, `2d4h`: a span with two units.
pub fn long_span(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d{h}h")
    } else if h > 0 {
        format!("{h}h{m}m")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

fn secs_between(from: OffsetDateTime, to: OffsetDateTime) -> u64 {
    u64::try_from((to - from).whole_seconds()).unwrap_or(0)
}

/// `12s ago` for an RFC 3339 time, relative to `now`; the text itself when unparsable,
/// `-` when absent.
pub fn age_at(time: Option<&str>, now: OffsetDateTime) -> String {
    match time {
        None => "-".into(),
        Some(t) => match parse_time(t) {
            Some(t) => format!("{} ago", short_span(secs_between(t, now))),
            None => t.to_string(),
        },
    }
}

pub fn age(time: Option<&str>) -> String {
    age_at(time, OffsetDateTime::now_utc())
}

/// How long something took (`finished` set) or has taken so far.
pub fn elapsed(start: &str, finished: Option<&str>) -> String {
    let Some(start) = parse_time(start) else {
        return "-".into();
    };
    let end = finished
        .and_then(parse_time)
        .unwrap_or_else(OffsetDateTime::now_utc);
    long_span(secs_between(start, end))
}

/// `1.2 MiB`
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

/// A command as a shell would take it back: words with spaces, quotes or other
/// characters a shell treats specially are single-quoted (`sh -c 'echo a b'`).
pub fn shell_words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| shell_word(w))
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        return word.to_string();
    }
    // Inside single quotes nothing is special but the quote itself: end the
    // quoting, add an escaped quote, and quote again.
    format!("'{}'", word.replace('\'', r"'\''"))
}

pub fn or_dash(v: Option<impl ToString>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_trim() {
        let rows = vec![
            vec!["web-3f9a2c".to_string(), "web".into(), "".into()],
            vec!["w".to_string(), "worker-long".into(), "x".into()],
        ];
        let t = table(&["id", "service", "address"], &rows);
        let want =
            "ID          SERVICE      ADDRESS\nweb-3f9a2c  web\nw           worker-long  x\n";
        assert_eq!(t, want);
        assert_eq!(table(&["NAME", "STATUS"], &[]), "NAME  STATUS\n");
    }

    #[test]
    fn tables_count_chars_not_bytes() {
        let rows = vec![
            vec!["é".to_string(), "1".into()],
            vec!["ab".to_string(), "2".into()],
        ];
        assert_eq!(table(&["K", "V"], &rows), "K   V\né   1\nab  2\n");
    }

    #[test]
    fn key_value_lines() {
        let kv = key_values(&[("Name", "shop".into()), ("Release", "".into())]);
        assert_eq!(kv, "Name     shop\nRelease\n");
    }

    #[test]
    fn ages() -> Result<(), time::error::Parse> {
        let now = OffsetDateTime::parse("2025-01-02T00:00:00Z", &Rfc3339)?;
        assert_eq!(age_at(Some("2025-01-01T23:59:48Z"), now), "12s ago");
        assert_eq!(
            age_at(Some("2025-01-01T23:55:00.123456789Z"), now),
            "4m ago"
        );
        assert_eq!(age_at(Some("2025-01-01T21:00:00+00:00"), now), "3h ago");
        assert_eq!(age_at(Some("2024-12-28T00:00:00Z"), now), "5d ago");
        assert_eq!(age_at(Some("2025-01-02T00:00:05Z"), now), "0s ago");
        assert_eq!(age_at(None, now), "-");
        assert_eq!(age_at(Some("yesterday"), now), "yesterday");
        Ok(())
    }

    #[test]
    fn commands_are_quoted_as_a_shell_reads_them() {
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            shell_words(&words(&["sh", "-c", "echo timer ran; exit 5"])),
            "sh -c 'echo timer ran; exit 5'"
        );
        assert_eq!(
            shell_words(&words(&["./migrate", "--to=v2"])),
            "./migrate --to=v2"
        );
        assert_eq!(
            shell_words(&words(&["echo", "it's", ""])),
            r"echo 'it'\''s' ''"
        );
        assert_eq!(
            shell_words(&words(&["echo", "$HOME", "*"])),
            "echo '$HOME' '*'"
        );
    }

    #[test]
    fn spans_and_sizes() {
        assert_eq!(long_span(45), "45s");
        assert_eq!(long_span(750), "12m30s");
        assert_eq!(long_span(3 * 3600 + 12 * 60 + 5), "3h12m");
        assert_eq!(long_span(2 * 86_400 + 4 * 3600), "2d4h");
        assert_eq!(
            elapsed("2025-01-01T00:00:00Z", Some("2025-01-01T00:01:05Z")),
            "1m5s"
        );
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 * 1024 * 1024), "5.0 MiB");
    }
}
