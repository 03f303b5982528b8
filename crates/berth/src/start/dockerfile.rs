//! Where a Dockerfile's `COPY` and `ADD` put the files of its build context in the
//! image, so that `berth start` can copy a changed file straight to the same place
//! in the running containers.
//!
//! Only the final stage counts (each `FROM` starts over), `--from` copies come from
//! another stage or image and are left out, and so are sources with wildcards and
//! URLs: a change under those rebuilds instead.

/// One source of a `COPY`/`ADD` of the final stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    /// Relative to the build context, cleaned, `/`-separated; empty for the context itself.
    pub src: String,
    /// Absolute path in the image.
    pub dest: String,
    /// Whether `dest` is a directory that `src` goes into (a trailing `/`, or several
    /// sources) rather than the file's new name.
    pub dest_is_dir: bool,
}

/// The copies of the Dockerfile `text`, in order.
pub fn copies(text: &str) -> Vec<Copy> {
    let mut out = Vec::new();
    let mut workdir = String::from("/");
    for line in instructions(text) {
        let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
        let rest = rest.trim();
        match word.to_ascii_uppercase().as_str() {
            "FROM" => {
                out.clear();
                workdir = "/".into();
            }
            "WORKDIR" => workdir = join_abs(&workdir, rest),
            "COPY" | "ADD" => {
                let Some(args) = arguments(rest) else {
                    continue;
                };
                let flags = args.iter().take_while(|a| a.starts_with("--")).count();
                if args[..flags].iter().any(|f| f.starts_with("--from")) {
                    continue;
                }
                let args = &args[flags..];
                let Some((dest, srcs)) = args.split_last() else {
                    continue;
                };
                let dest_is_dir = dest.ends_with('/') || srcs.len() > 1;
                let dest = join_abs(&workdir, dest);
                for src in srcs {
                    if src.contains(['*', '?', '[']) || src.contains("://") {
                        continue;
                    }
                    out.push(Copy {
                        src: clean(src),
                        dest: dest.clone(),
                        dest_is_dir,
                    });
                }
            }
            _ => {}
        }
    }
    out
}

/// Where the file `rel` (relative to the build context, cleaned) is in the image:
/// every place a copy puts it (a file two `COPY`s take is in both).
pub fn targets(copies: &[Copy], rel: &str) -> Vec<String> {
    let mut out: Vec<String> = copies
        .iter()
        .filter_map(|c| {
            if c.src.is_empty() {
                Some(join_abs(&c.dest, rel))
            } else if rel == c.src {
                let name = rel.rsplit('/').next().unwrap_or(rel);
                Some(if c.dest_is_dir {
                    join_abs(&c.dest, name)
                } else {
                    c.dest.clone()
                })
            } else {
                rel.strip_prefix(&c.src)
                    .and_then(|r| r.strip_prefix('/'))
                    .map(|below| join_abs(&c.dest, below))
            }
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The Dockerfile's instructions, one string each: comments and blank lines
/// dropped, `\` continuations joined.
fn instructions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for raw in text.lines() {
        let line = raw.trim();
        if current.is_empty() && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.trim().is_empty() {
        out.push(current);
    }
    out
}

/// The arguments of a `COPY`/`ADD`: the JSON form, else split on whitespace.
fn arguments(rest: &str) -> Option<Vec<String>> {
    // Flags may come before the JSON form: `COPY --chown=a ["x", "y"]`.
    let mut args = Vec::new();
    let mut remaining = rest;
    while remaining.starts_with("--") {
        let (flag, after) = remaining
            .split_once(char::is_whitespace)
            .unwrap_or((remaining, ""));
        args.push(flag.to_string());
        remaining = after.trim_start();
    }
    if remaining.starts_with('[') {
        let json: Vec<String> = serde_json::from_str(remaining).ok()?;
        args.extend(json);
    } else {
        args.extend(remaining.split_whitespace().map(str::to_string));
    }
    Some(args)
}

/// `path` made absolute against `base` and cleaned.
fn join_abs(base: &str, path: &str) -> String {
    let joined = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{base}/{path}")
    };
    format!("/{}", clean(&joined))
}

/// A `/`-separated path without `.`, empty parts, leading `/` or `..` (popped).
pub fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_of_the_final_stage() {
        let text = "FROM golang AS build\nCOPY . /src\nRUN go build\n\
            FROM scratch\n# a comment\nCOPY busybox /bin/busybox\nWORKDIR /srv\n\
            COPY --chown=1:1 www ./www\nCOPY --from=build /out/app /app\n\
            ADD [\"conf/a.conf\", \"conf/b.conf\", \"/etc/app/\"]\nCOPY *.txt /t/\n\
            ADD https://example.com/x /x\nCOPY static \\\n  /static\n";
        let got = copies(text);
        let want = [
            ("busybox", "/bin/busybox", false),
            ("www", "/srv/www", false),
            ("conf/a.conf", "/etc/app", true),
            ("conf/b.conf", "/etc/app", true),
            ("static", "/static", false),
        ];
        assert_eq!(
            got.iter()
                .map(|c| (c.src.as_str(), c.dest.as_str(), c.dest_is_dir))
                .collect::<Vec<_>>(),
            want
        );
    }

    #[test]
    fn targets_in_the_image() {
        let c = copies(
            "FROM scratch\nCOPY busybox /bin/busybox\nCOPY www /www\nCOPY conf/ /etc/\nCOPY one.txt /docs/\n",
        );
        assert_eq!(targets(&c, "www/index.html"), ["/www/index.html"]);
        assert_eq!(targets(&c, "www/a/b.css"), ["/www/a/b.css"]);
        assert_eq!(targets(&c, "busybox"), ["/bin/busybox"]);
        assert_eq!(targets(&c, "conf/x.conf"), ["/etc/x.conf"]);
        assert_eq!(targets(&c, "one.txt"), ["/docs/one.txt"]);
        assert!(targets(&c, "wwwx/a").is_empty());
        assert!(targets(&c, "src/main.rs").is_empty());
        let all = copies("FROM scratch\nWORKDIR /app\nCOPY www /www\nCOPY . .\n");
        assert_eq!(targets(&all, "lib/a.py"), ["/app/lib/a.py"]);
        assert_eq!(
            targets(&all, "www/i.html"),
            ["/app/www/i.html", "/www/i.html"]
        );
    }
}
