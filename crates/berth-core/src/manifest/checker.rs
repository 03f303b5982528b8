//! Typed reads from the YAML tree for `berth.yml`: strings, numbers in a range,
//! booleans and mappings with a fixed set of keys, each failing with the field's
//! position, its dotted path, what was expected and what was found.

use super::hints::{did_you_mean, list_keys, truncate};
use super::yaml::{Fail, Node, R, Raw, at};

/// A key of a mapping, with its node and value.
pub(super) struct Entry<'n> {
    pub(super) key: &'n str,
    pub(super) key_node: &'n Node,
    pub(super) value: &'n Node,
}

/// The entries of a mapping whose keys are all among the allowed ones.
pub(super) struct Fields<'n> {
    entries: Vec<Entry<'n>>,
}

impl<'n> Fields<'n> {
    pub(super) fn get(&self, key: &str) -> Option<&Entry<'n>> {
        self.entries.iter().find(|e| e.key == key)
    }
    pub(super) fn value(&self, key: &str) -> Option<&'n Node> {
        self.get(key).map(|e| e.value)
    }
    /// Like `value`, but an empty value (`key:` with nothing after it) counts as absent.
    pub(super) fn value_or_empty(&self, key: &str) -> Option<&'n Node> {
        self.value(key).filter(|n| !matches!(n.value, Raw::Null))
    }
}

/// Reads values for `berth.yml`. It holds the source text to quote numbers as
/// written (`0x1F`, `1_000`), which the parsed tree no longer knows.
pub(super) struct Checker<'s> {
    pub(super) src: &'s str,
}

impl Checker<'_> {
    /// The source text of a scalar, as written (for numbers: `0x1F`, `1_000`).
    fn text(&self, node: &Node) -> Option<&str> {
        let span = node.defined.span();
        let start = usize::try_from(span.byte_offset()?).ok()?;
        let len = usize::try_from(span.byte_len()?).ok()?;
        let t = self.src.get(start..start.checked_add(len)?)?;
        (!t.is_empty() && !t.starts_with('*')).then_some(t)
    }

    /// How a value is named in "found ..." parts of messages.
    fn found(&self, node: &Node) -> String {
        match &node.value {
            Raw::Null => "nothing".into(),
            Raw::Bool(b) => b.to_string(),
            Raw::Int(i) => self
                .text(node)
                .map(|t| truncate(t, 40))
                .unwrap_or_else(|| i.to_string()),
            Raw::Float(f) => self
                .text(node)
                .map(|t| truncate(t, 40))
                .unwrap_or_else(|| f.to_string()),
            Raw::Str(s) => format!("{:?}", truncate(s, 60)),
            Raw::Seq(_) => "a list".into(),
            Raw::Map(_) => "a mapping".into(),
        }
    }

    pub(super) fn expected(&self, node: &Node, path: &str, what: &str) -> Fail {
        at(
            node,
            format!("{path}: expected {what}, found {}", self.found(node)),
        )
    }

    pub(super) fn entries<'n>(
        &self,
        node: &'n Node,
        path: &str,
        what: &str,
    ) -> R<&'n [(Node, Node)]> {
        match &node.value {
            Raw::Map(entries) => Ok(entries),
            _ => Err(self.expected(node, path, what)),
        }
    }

    /// A mapping key used as a name (of a service, a timer, a build arg...).
    pub(super) fn key_name<'n>(&self, key: &'n Node, path: &str) -> R<&'n str> {
        match &key.value {
            Raw::Str(s) => Ok(s),
            _ => Err(at(
                key,
                format!(
                    "{path}: expected a name as key, found {}; write a name such as `web`",
                    self.found(key)
                ),
            )),
        }
    }

    /// A mapping with a fixed set of keys; unknown keys are errors.
    pub(super) fn fields<'n>(
        &self,
        node: &'n Node,
        path: &str,
        what: &str,
        allowed: &[&str],
    ) -> R<Fields<'n>> {
        let entries = self.entries(node, path, what)?;
        let mut out = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            let key = self.key_name(k, path)?;
            if !allowed.contains(&key) {
                return Err(self.unknown_key(k, key, v, path, allowed));
            }
            out.push(Entry {
                key,
                key_node: k,
                value: v,
            });
        }
        Ok(Fields { entries: out })
    }

    fn unknown_key(&self, k: &Node, key: &str, value: &Node, path: &str, allowed: &[&str]) -> Fail {
        let place = if path.is_empty() {
            "at the top level".to_string()
        } else {
            format!("in `{path}`")
        };
        let mut msg = format!("unknown key `{key}` {place}");
        if let Some(close) = did_you_mean(key, allowed.iter().copied()) {
            msg.push_str(&format!("; did you mean `{close}`?"));
        } else {
            if path.is_empty() && looks_like_service(value) {
                msg.push_str(&format!(
                    "; services go under `services:` (indent `{key}:` below a `services:` line);"
                ));
            } else {
                msg.push(';');
            }
            msg.push_str(&format!(" valid keys are {}", list_keys(allowed)));
        }
        at(k, msg)
    }

    pub(super) fn string<'n>(&self, node: &'n Node, path: &str, what: &str) -> R<&'n str> {
        match &node.value {
            Raw::Str(s) => Ok(s),
            _ => Err(self.expected(node, path, what)),
        }
    }

    pub(super) fn nonempty_string<'n>(&self, node: &'n Node, path: &str, what: &str) -> R<&'n str> {
        let s = self.string(node, path, what)?;
        if s.trim().is_empty() {
            return Err(self.expected(node, path, what));
        }
        Ok(s)
    }

    /// A scalar used as text: strings as they are, numbers and booleans as written.
    pub(super) fn scalar_text(&self, node: &Node, path: &str, what: &str) -> R<String> {
        match &node.value {
            Raw::Str(s) => Ok(s.clone()),
            Raw::Bool(b) => Ok(b.to_string()),
            Raw::Int(i) => Ok(self
                .text(node)
                .map(str::to_string)
                .unwrap_or_else(|| i.to_string())),
            Raw::Float(f) => Ok(self
                .text(node)
                .map(str::to_string)
                .unwrap_or_else(|| f.to_string())),
            _ => Err(self.expected(node, path, what)),
        }
    }

    /// A whole number in `min..=max`. A quoted number ("8080") is accepted too.
    pub(super) fn uint(&self, node: &Node, path: &str, min: u64, max: u64, what: &str) -> R<u64> {
        let n = match &node.value {
            Raw::Int(i) => Some(*i),
            Raw::Str(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
            _ => None,
        };
        match n {
            Some(n) if n >= i128::from(min) && n <= i128::from(max) => {
                u64::try_from(n).map_err(|_| self.expected(node, path, what))
            }
            _ => Err(self.expected(node, path, what)),
        }
    }

    pub(super) fn u32_in(&self, node: &Node, path: &str, min: u32, max: u32, what: &str) -> R<u32> {
        let v = self.uint(node, path, min.into(), max.into(), what)?;
        u32::try_from(v).map_err(|_| self.expected(node, path, what))
    }

    pub(super) fn seconds(&self, node: &Node, path: &str, min: u32, max: u32) -> R<u32> {
        self.u32_in(
            node,
            path,
            min,
            max,
            &format!("a number of seconds from {min} to {max}"),
        )
    }

    pub(super) fn boolean(&self, node: &Node, path: &str) -> R<bool> {
        match node.value {
            Raw::Bool(b) => Ok(b),
            _ => Err(self.expected(node, path, "`true` or `false`")),
        }
    }
}

/// A mapping with `build` or `image`: a service written at the top level,
/// so the hint can point at the missing `services:` line.
fn looks_like_service(node: &Node) -> bool {
    match &node.value {
        Raw::Map(entries) => entries
            .iter()
            .any(|(k, _)| matches!(&k.value, Raw::Str(s) if s == "build" || s == "image")),
        _ => false,
    }
}
