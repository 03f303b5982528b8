//! Reading YAML into a small tree whose every node keeps its line and column,
//! for both `berth.yml` and Pod specs. The reader runs under budgets tight
//! enough for a manifest, so YAML bombs and absurd nesting are refused quickly,
//! and its errors are worded for people writing a manifest.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, MessageFormatter, Spanned};
use std::fmt;

/// Largest manifest accepted, in bytes. A real `berth.yml` is a few KiB.
pub const MAX_MANIFEST_BYTES: usize = 1024 * 1024;
/// Deepest nesting of YAML collections accepted. A manifest needs about 6.
const MAX_DEPTH: usize = 32;
/// Events replayed from aliases (`*name`) across the whole file.
const MAX_ALIAS_REPLAY: usize = 10_000;

/// A YAML value and where it came from. Errors point at `referenced`, where the
/// value is used (for an alias, the `*name`); `defined` spans the text as written.
pub(super) type Node = Spanned<Raw>;

/// A YAML value as read, before validation. Every child keeps its location.
#[derive(Debug)]
pub(super) enum Raw {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RawVisitor;
        impl<'de> Visitor<'de> for RawVisitor {
            type Value = Raw;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a YAML value")
            }
            fn visit_unit<E>(self) -> Result<Raw, E> {
                Ok(Raw::Null)
            }
            fn visit_none<E>(self) -> Result<Raw, E> {
                Ok(Raw::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
                Raw::deserialize(d)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
                Ok(Raw::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
                Ok(Raw::Int(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
                Ok(Raw::Int(v.into()))
            }
            fn visit_i128<E>(self, v: i128) -> Result<Raw, E> {
                Ok(Raw::Int(v))
            }
            fn visit_u128<E>(self, v: u128) -> Result<Raw, E> {
                Ok(i128::try_from(v)
                    .map(Raw::Int)
                    .unwrap_or(Raw::Float(v as f64)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
                Ok(Raw::Float(v))
            }
            fn visit_char<E>(self, v: char) -> Result<Raw, E> {
                Ok(Raw::Str(v.to_string()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
                Ok(Raw::Str(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<Raw, E> {
                Ok(Raw::Str(v))
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Raw, E> {
                Ok(Raw::Str(String::from_utf8_lossy(v).into_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Node>()? {
                    items.push(item);
                }
                Ok(Raw::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Node>()? {
                    let value = map.next_value::<Node>()?;
                    entries.push((key, value));
                }
                Ok(Raw::Map(entries))
            }
        }
        d.deserialize_any(RawVisitor)
    }
}

/// An error before the file name is attached.
#[derive(Debug)]
pub(super) struct Fail {
    pub(super) line: usize,
    pub(super) column: usize,
    pub(super) message: String,
}

/// What the manifest readers return.
pub(super) type R<T> = Result<T, Fail>;

/// 1-based line and column; 1 where the parser has no position.
pub(super) fn pos(loc: &Location) -> (usize, usize) {
    let line = usize::try_from(loc.line()).unwrap_or(usize::MAX).max(1);
    let column = usize::try_from(loc.column()).unwrap_or(usize::MAX).max(1);
    (line, column)
}

/// An error pointing at `node`.
pub(super) fn at(node: &Node, message: impl Into<String>) -> Fail {
    let (line, column) = pos(&node.referenced);
    Fail {
        line,
        column,
        message: message.into(),
    }
}

/// The line of `node`, for messages such as "first on line 3".
pub(super) fn line_of(node: &Node) -> usize {
    pos(&node.referenced).0
}

/// Read the YAML into a span-carrying tree under budgets tight enough for a manifest.
pub(super) fn read_yaml(text: &str) -> R<Node> {
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: MAX_DEPTH,
            flow_nesting_limit: MAX_DEPTH,
            max_documents: 1,
            max_events: 200_000,
            max_nodes: 100_000,
            max_aliases: 1_000,
            max_anchors: 1_000,
            max_merge_keys: 1_000,
            max_total_scalar_bytes: MAX_MANIFEST_BYTES,
            max_recorded_anchor_events: 100_000,
            max_recorded_anchor_bytes: MAX_MANIFEST_BYTES,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: MAX_ALIAS_REPLAY,
            max_replay_stack_depth: 16,
        },
        strict_booleans: true,
        reject_unsupported_tags: true,
        with_snippet: false,
    };
    serde_saphyr::from_str_with_options::<Node>(text, options).map_err(|e| yaml_fail(&e))
}

/// A parser or budget error, reworded for someone writing a manifest.
fn yaml_fail(err: &serde_saphyr::Error) -> Fail {
    use serde_saphyr::Error as E;
    use serde_saphyr::budget::BudgetBreach;
    let (line, column) = err.location().map(|l| pos(&l)).unwrap_or((1, 1));
    let mut inner = err.without_snippet();
    while let E::AliasError { error, .. } | E::WithSnippet { error, .. } = inner {
        inner = error;
    }
    let base = serde_saphyr::UserMessageFormatter
        .format_message(inner)
        .into_owned();
    let nesting = format!(
        "YAML nested more than {MAX_DEPTH} levels deep; a manifest needs only a few levels. Check for unclosed brackets or runaway indentation"
    );
    let message = match inner {
        E::Budget { breach: BudgetBreach::Depth { .. }, .. } => nesting,
        E::Budget {
            breach:
                BudgetBreach::Aliases { .. }
                | BudgetBreach::Anchors { .. }
                | BudgetBreach::AliasAnchorRatio { .. }
                | BudgetBreach::RecordedAnchorEvents { .. }
                | BudgetBreach::RecordedAnchorBytes { .. }
                | BudgetBreach::MergeKeys { .. },
            ..
        }
        | E::AliasReplayLimitExceeded { .. }
        | E::AliasExpansionLimitExceeded { .. }
        | E::AliasReplayStackDepthExceeded { .. }
        | E::AliasReplayCounterOverflow { .. } => format!(
            "YAML aliases (`*name`) expand to too much data ({base}); this looks like a YAML bomb. Write the values out or use fewer aliases"
        ),
        E::Budget { breach: BudgetBreach::Documents { .. }, .. } | E::MultipleDocuments { .. } => {
            "the file holds more than one YAML document (`---`); a manifest is a single document. Remove the extra `---` sections".to_string()
        }
        E::Budget { .. } => format!(
            "the YAML is too large or complex for a manifest ({base}); check that this is the right file"
        ),
        _ if base.contains("recursion limit") => nesting,
        _ => format!("invalid YAML: {base}"),
    };
    Fail {
        line,
        column,
        message,
    }
}
