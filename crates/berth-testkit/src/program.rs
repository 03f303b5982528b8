//! The programs a container can run, parsed from its command (the vocabulary
//! is documented in the crate doc). A tiny shell: `sh -c "..."` (the shell
//! form of `CMD`/`RUN`) is split into words with quotes, `$VAR` expansion,
//! `&&` and `;`.

use berth_runtime::LogStream;
use std::collections::BTreeMap;
use std::time::Duration;

/// Port `serve` listens on when neither `--port` nor `PORT` says.
pub(crate) const DEFAULT_PORT: u16 = 8080;

#[derive(Debug, Clone, Default)]
pub(crate) struct Program {
    /// Ignores SIGTERM: a stop waits out its grace and kills (137).
    pub stubborn: bool,
    /// Exits with the code after the time, whatever it is doing.
    pub crash_after: Option<(Duration, i64)>,
    /// Run in order; none: the program sleeps until stopped.
    pub steps: Vec<(Then, Step)>,
}

/// How a step follows the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Then {
    /// `;` (or the first step): always runs.
    Always,
    /// `&&`: runs only when the step before exited 0.
    OnSuccess,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    Serve(Serve),
    /// `None`: until stopped.
    Sleep(Option<Duration>),
    Exit(i64),
    Print {
        stream: LogStream,
        text: String,
    },
    /// `None`: stdin to stdout until stdin closes; else that file's content.
    Cat(Option<String>),
    Env,
    Write {
        path: String,
        content: String,
    },
    Oom,
    /// `true` (0) and `false` (1).
    Status(i64),
    /// Reads command lines from stdin and runs each, as an interactive shell.
    Shell,
    /// A command outside the vocabulary: `sh: NAME: not found`, 127.
    NotFound(String),
    /// Bad arguments: the message on stderr, exit 2.
    Usage(String),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Serve {
    /// Paths answered `500`.
    pub fail: Vec<String>,
    /// Wait before each answer.
    pub delay: Duration,
    /// Wait before listening.
    pub startup: Duration,
    pub port: Option<u16>,
}

/// The commands a program may start with; anything else is not found.
const COMMANDS: &[&str] = &[
    "serve",
    "sleep",
    "exit",
    "echo",
    "echo-err",
    "cat",
    "env",
    "write",
    "oom",
    "true",
    "false",
    "sh",
    "stubborn",
    "crash-after",
];

fn basename(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

/// The word an engine would look up as the executable: `None` when it is
/// known (the command runs), else the word (it cannot start).
pub(crate) fn missing_executable(argv: &[String]) -> Option<&str> {
    let first = argv.first()?;
    (!COMMANDS.contains(&basename(first))).then_some(first.as_str())
}

/// A command as a program; `env` expands `$VAR` in shell scripts.
pub(crate) fn parse(argv: &[String], env: &BTreeMap<String, String>) -> Program {
    let words: Vec<Word> = match argv {
        [sh, flag, script, ..] if basename(sh) == "sh" && flag == "-c" => shell_words(script, env),
        _ => argv
            .iter()
            .map(|w| match w.as_str() {
                "&&" => Word::And,
                ";" => Word::Semicolon,
                _ => Word::Text(w.clone()),
            })
            .collect(),
    };
    let mut program = Program::default();
    let mut segments = split(words).into_iter().peekable();
    // Wrappers come first and apply to the whole program.
    if let Some((_, first)) = segments.peek_mut() {
        loop {
            match first.first().map(|w| basename(w)) {
                Some("stubborn") => {
                    program.stubborn = true;
                    first.remove(0);
                }
                Some("crash-after") => {
                    let after = first.get(1).and_then(|t| duration(t));
                    let code = first.get(2).and_then(|c| c.parse::<i64>().ok());
                    let (Some(after), Some(code)) = (after, code) else {
                        let usage =
                            format!("crash-after: want SECONDS CODE, got {:?}", &first[1..]);
                        program.steps.push((Then::Always, Step::Usage(usage)));
                        return program;
                    };
                    program.crash_after = Some((after, code));
                    first.drain(..3);
                }
                _ => break,
            }
        }
    }
    for (then, segment) in segments {
        if let Some(step) = step(&segment) {
            program.steps.push((then, step));
        }
    }
    program
}

fn step(words: &[String]) -> Option<Step> {
    let (command, args) = words.split_first()?;
    // `>&2` sends the command's output to stderr, as in a shell.
    let to_stderr = args.iter().any(|a| a == ">&2" || a == "1>&2");
    let args: Vec<&String> = args
        .iter()
        .filter(|a| *a != ">&2" && *a != "1>&2")
        .collect();
    let joined = || {
        args.iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let stream = |stderr: bool| {
        if stderr || to_stderr {
            LogStream::Stderr
        } else {
            LogStream::Stdout
        }
    };
    Some(match basename(command) {
        "serve" => serve(&args),
        "sleep" => match args.first().map(|a| a.as_str()) {
            None | Some("infinity") => Step::Sleep(None),
            Some(text) => match duration(text) {
                Some(d) => Step::Sleep(Some(d)),
                None => Step::Usage(format!("sleep: invalid time interval '{text}'")),
            },
        },
        "exit" => match args.first().map(|a| a.parse::<i64>()) {
            None => Step::Exit(0),
            Some(Ok(code)) => Step::Exit(code & 0xff),
            Some(Err(_)) => Step::Usage(format!("sh: exit: Illegal number: {}", joined())),
        },
        "echo" => Step::Print {
            stream: stream(false),
            text: joined(),
        },
        "echo-err" => Step::Print {
            stream: stream(true),
            text: joined(),
        },
        "cat" => Step::Cat(args.first().map(|a| a.to_string())),
        "env" => Step::Env,
        "write" => match args.split_first() {
            Some((path, content)) => Step::Write {
                path: path.to_string(),
                content: content
                    .iter()
                    .map(|a| a.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
            },
            None => Step::Usage("write: want PATH CONTENT".into()),
        },
        "oom" => Step::Oom,
        "true" => Step::Status(0),
        "false" => Step::Status(1),
        "sh" => Step::Shell,
        _ => Step::NotFound(command.clone()),
    })
}

fn serve(args: &[&String]) -> Step {
    let mut options = Serve::default();
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let Some(value) = args.next() else {
            return Step::Usage(format!("serve: {flag} wants a value"));
        };
        let bad = || Step::Usage(format!("serve: bad value for {flag}: {value}"));
        match flag.as_str() {
            "--fail" => options.fail.push(value.to_string()),
            "--delay" => match duration(value) {
                Some(d) => options.delay = d,
                None => return bad(),
            },
            "--startup" => match duration(value) {
                Some(d) => options.startup = d,
                None => return bad(),
            },
            "--port" => match value.parse() {
                Ok(p) => options.port = Some(p),
                Err(_) => return bad(),
            },
            _ => {
                return Step::Usage(format!(
                    "serve: unknown option {flag}; know --fail PATH, --delay T, --startup T, --port N"
                ));
            }
        }
    }
    Step::Serve(options)
}

/// `2` and `1.5` are seconds; `250ms`, `2s`, `1m` say their unit.
pub(crate) fn duration(text: &str) -> Option<Duration> {
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number.parse().ok()?;
    (value.is_finite() && value >= 0.0).then(|| Duration::from_secs_f64(value * scale))
}

#[derive(Debug, Clone, PartialEq)]
enum Word {
    Text(String),
    And,
    Semicolon,
}

/// Words cut at `&&` and `;`, each segment with how it follows.
fn split(words: Vec<Word>) -> Vec<(Then, Vec<String>)> {
    let mut out = vec![(Then::Always, Vec::new())];
    for word in words {
        match word {
            Word::Text(text) => {
                if let Some((_, segment)) = out.last_mut() {
                    segment.push(text);
                }
            }
            Word::And => out.push((Then::OnSuccess, Vec::new())),
            Word::Semicolon => out.push((Then::Always, Vec::new())),
        }
    }
    out.retain(|(_, segment)| !segment.is_empty());
    out
}

/// Splits a shell script into words: `'...'` is literal, `"..."` expands
/// `$VAR`, a backslash escapes the next character, `&&` and `;` separate.
fn shell_words(script: &str, env: &BTreeMap<String, String>) -> Vec<Word> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut chars = script.chars().peekable();
    let finish = |words: &mut Vec<Word>, current: &mut String, in_word: &mut bool| {
        if *in_word {
            words.push(Word::Text(std::mem::take(current)));
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => finish(&mut words, &mut current, &mut in_word),
            ';' => {
                finish(&mut words, &mut current, &mut in_word);
                words.push(Word::Semicolon);
            }
            '&' if chars.peek() == Some(&'&') => {
                chars.next();
                finish(&mut words, &mut current, &mut in_word);
                words.push(Word::And);
            }
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    current.push(c);
                }
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => {
                            if let Some(next) = chars.next() {
                                if !matches!(next, '"' | '\\' | '$') {
                                    current.push('\\');
                                }
                                current.push(next);
                            }
                        }
                        '$' => current.push_str(&variable(&mut chars, env)),
                        other => current.push(other),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            '$' => {
                in_word = true;
                current.push_str(&variable(&mut chars, env));
            }
            other => {
                in_word = true;
                current.push(other);
            }
        }
    }
    finish(&mut words, &mut current, &mut in_word);
    words
}

/// The value of the variable named after a `$` (`NAME` or `{NAME}`); unset is
/// empty, and a lone `$` stays.
fn variable(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    env: &BTreeMap<String, String>,
) -> String {
    let mut name = String::new();
    if chars.peek() == Some(&'{') {
        chars.next();
        for c in chars.by_ref() {
            if c == '}' {
                break;
            }
            name.push(c);
        }
    } else {
        while let Some(&c) = chars.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
                chars.next();
            } else {
                break;
            }
        }
        if name.is_empty() {
            return "$".into();
        }
    }
    env.get(&name).cloned().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(argv: &[&str]) -> Vec<String> {
        argv.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn exec_form_with_wrappers_and_steps() {
        let p = parse(
            &words(&[
                "stubborn",
                "crash-after",
                "2",
                "3",
                "serve",
                "--fail",
                "/health",
            ]),
            &BTreeMap::new(),
        );
        assert!(p.stubborn);
        assert_eq!(p.crash_after, Some((Duration::from_secs(2), 3)));
        assert_eq!(
            p.steps,
            vec![(
                Then::Always,
                Step::Serve(Serve {
                    fail: vec!["/health".into()],
                    ..Default::default()
                })
            )]
        );
        let p = parse(
            &words(&["write", "/data/x", "hello", "&&", "sleep"]),
            &BTreeMap::new(),
        );
        assert_eq!(
            p.steps,
            vec![
                (
                    Then::Always,
                    Step::Write {
                        path: "/data/x".into(),
                        content: "hello".into()
                    }
                ),
                (Then::OnSuccess, Step::Sleep(None)),
            ]
        );
        assert!(
            parse(&words(&["stubborn"]), &BTreeMap::new())
                .steps
                .is_empty()
        );
    }

    #[test]
    fn shell_form_quotes_variables_and_separators() {
        let env = BTreeMap::from([("GREETING".to_string(), "hi there".to_string())]);
        let p = parse(
            &words(&[
                "/bin/sh",
                "-c",
                "echo \"greeting=$GREETING\" 'and $NOT';echo two >&2 && exit 3",
            ]),
            &env,
        );
        assert_eq!(
            p.steps,
            vec![
                (
                    Then::Always,
                    Step::Print {
                        stream: LogStream::Stdout,
                        text: "greeting=hi there and $NOT".into()
                    }
                ),
                (
                    Then::Always,
                    Step::Print {
                        stream: LogStream::Stderr,
                        text: "two".into()
                    }
                ),
                (Then::OnSuccess, Step::Exit(3)),
            ]
        );
    }

    #[test]
    fn unknown_commands_and_bad_arguments() {
        assert_eq!(missing_executable(&words(&["/bin/serve"])), None);
        assert_eq!(
            missing_executable(&words(&["./server", "--port", "8080"])),
            Some("./server")
        );
        let p = parse(&words(&["nope", "x"]), &BTreeMap::new());
        assert_eq!(p.steps, vec![(Then::Always, Step::NotFound("nope".into()))]);
        let p = parse(&words(&["exit", "x"]), &BTreeMap::new());
        assert!(matches!(p.steps[0].1, Step::Usage(_)));
        assert_eq!(duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(duration("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(duration("-1"), None);
    }
}
