//! Dockerfile syntax: instructions with continuation lines and comments,
//! `$VAR` substitution, `key=value` lists, and the exec and shell forms.

use std::collections::BTreeMap;

const KEYWORDS: &[&str] = &[
    "FROM",
    "RUN",
    "CMD",
    "ENTRYPOINT",
    "EXPOSE",
    "LABEL",
    "ENV",
    "ARG",
    "COPY",
    "ADD",
    "WORKDIR",
    "USER",
    "VOLUME",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
    "ONBUILD",
    "MAINTAINER",
];

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Instruction {
    /// Upper case.
    pub keyword: String,
    pub args: String,
    /// As written (continuations joined), for the `Step i/N : ...` lines.
    pub original: String,
}

/// The instructions of a Dockerfile; `Err` is the engine's parse error.
pub(crate) fn parse(text: &str) -> Result<Vec<Instruction>, String> {
    let mut instructions = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_none()) {
            continue;
        }
        let (continues, body) = match trimmed.strip_suffix('\\') {
            Some(body) => (true, body),
            None => (false, trimmed),
        };
        let (line, mut joined) = pending.take().unwrap_or((index + 1, String::new()));
        if !joined.is_empty() && !body.is_empty() {
            joined.push(' ');
        }
        joined.push_str(body.trim());
        if continues {
            pending = Some((line, joined));
        } else if !joined.is_empty() {
            instructions.push(instruction(line, &joined)?);
        }
    }
    if let Some((line, joined)) = pending
        && !joined.is_empty()
    {
        instructions.push(instruction(line, &joined)?);
    }
    Ok(instructions)
}

fn instruction(line: usize, text: &str) -> Result<Instruction, String> {
    let (word, args) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let keyword = word.to_ascii_uppercase();
    if !KEYWORDS.contains(&keyword.as_str()) {
        return Err(format!(
            "dockerfile parse error line {line}: unknown instruction: {keyword}"
        ));
    }
    Ok(Instruction {
        keyword,
        args: args.trim().to_string(),
        original: text.to_string(),
    })
}

/// `$NAME`, `${NAME}` and `${NAME:-default}` replaced by their values (unset:
/// empty, or the default); `\$` is a literal `$`.
pub(crate) fn substitute(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'$') => {
                chars.next();
                out.push('$');
            }
            '$' if chars.peek() == Some(&'{') => {
                chars.next();
                let mut inner = String::new();
                for c in chars.by_ref() {
                    if c == '}' {
                        break;
                    }
                    inner.push(c);
                }
                let (name, default) = match inner.split_once(":-") {
                    Some((name, default)) => (name, Some(default)),
                    None => (inner.as_str(), None),
                };
                match (vars.get(name).filter(|v| !v.is_empty()), default) {
                    (Some(value), _) => out.push_str(value),
                    (None, Some(default)) => out.push_str(default),
                    (None, None) => out.push_str(vars.get(name).map_or("", String::as_str)),
                }
            }
            '$' if chars
                .peek()
                .is_some_and(|c| c.is_ascii_alphabetic() || *c == '_') =>
            {
                let mut name = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        name.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push_str(vars.get(&name).map_or("", String::as_str));
            }
            other => out.push(other),
        }
    }
    out
}

/// Words with quotes removed: `a "b c" 'd'` → `a`, `b c`, `d`.
pub(crate) fn words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => {
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            (Some(_), c) => current.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '\\') => {
                if let Some(next) = chars.next() {
                    current.push(next);
                    in_word = true;
                }
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            (None, c) => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(current);
    }
    words
}

/// `LABEL`/`ENV` arguments: `k=v k2="v 2"`, or the old `key value with spaces`.
pub(crate) fn key_values(args: &str) -> Vec<(String, String)> {
    let all = words(args);
    if all.first().is_some_and(|w| !w.contains('=')) {
        let (key, value) = args.split_once(char::is_whitespace).unwrap_or((args, ""));
        return vec![(key.to_string(), words(value).join(" "))];
    }
    all.into_iter()
        .filter_map(|w| {
            w.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// A command in exec form (a JSON array of strings) or shell form.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Command {
    Exec(Vec<String>),
    Shell(String),
}

impl Command {
    pub(crate) fn parse(args: &str) -> Command {
        match serde_json::from_str::<Vec<String>>(args) {
            Ok(argv) if args.trim_start().starts_with('[') => Command::Exec(argv),
            _ => Command::Shell(args.to_string()),
        }
    }

    /// What the engine runs: the shell form through `/bin/sh -c`.
    pub(crate) fn argv(&self) -> Vec<String> {
        match self {
            Command::Exec(argv) => argv.clone(),
            Command::Shell(script) => vec!["/bin/sh".into(), "-c".into(), script.clone()],
        }
    }

    /// As the engine quotes it in a failed `RUN`'s message.
    pub(crate) fn shown(&self) -> String {
        self.argv().join(" ")
    }
}

/// Leading `--name=value` flags, then the rest (in JSON form or as words).
pub(crate) fn flags_and_words(args: &str) -> (BTreeMap<String, String>, Vec<String>) {
    let mut flags = BTreeMap::new();
    let mut rest = args.trim();
    while let Some(flag) = rest.strip_prefix("--") {
        let (flag, after) = flag.split_once(char::is_whitespace).unwrap_or((flag, ""));
        let (name, value) = flag.split_once('=').unwrap_or((flag, ""));
        flags.insert(name.to_string(), value.to_string());
        rest = after.trim_start();
    }
    let words = match Command::parse(rest) {
        Command::Exec(argv) => argv,
        Command::Shell(text) => words(&text),
    };
    (flags, words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_with_continuations_and_comments() {
        let text = "# a comment\nFROM scratch\nrun echo a \\\n  && echo b\n\nCMD [\"serve\"]\n";
        let parsed = parse(text).unwrap();
        let keywords: Vec<&str> = parsed.iter().map(|i| i.keyword.as_str()).collect();
        assert_eq!(keywords, vec!["FROM", "RUN", "CMD"]);
        assert_eq!(parsed[1].args, "echo a && echo b");
        assert_eq!(parsed[1].original, "run echo a && echo b");
        let err = parse("FROM scratch\nFROBNICATE x\n").unwrap_err();
        assert_eq!(
            err,
            "dockerfile parse error line 2: unknown instruction: FROBNICATE"
        );
    }

    #[test]
    fn substitution_and_key_values() {
        let vars = BTreeMap::from([("A".to_string(), "1".to_string())]);
        assert_eq!(
            substitute("x$A ${A} ${B:-two} \\$A $B.", &vars),
            "x1 1 two $A ."
        );
        assert_eq!(
            key_values("a=1 b=\"two words\" c='x'"),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "two words".into()),
                ("c".into(), "x".into())
            ]
        );
        assert_eq!(
            key_values("maintainer Jane Doe"),
            vec![("maintainer".into(), "Jane Doe".into())]
        );
    }

    #[test]
    fn command_forms_and_flags() {
        assert_eq!(
            Command::parse("[\"serve\", \"--port\", \"80\"]"),
            Command::Exec(vec!["serve".into(), "--port".into(), "80".into()])
        );
        let shell = Command::parse("echo hi && exit 1");
        assert_eq!(shell.shown(), "/bin/sh -c echo hi && exit 1");
        let (flags, words) = flags_and_words("--from=build --chown=1:1 a b /dest");
        assert_eq!(flags.get("from").map(String::as_str), Some("build"));
        assert_eq!(words, vec!["a", "b", "/dest"]);
    }
}
