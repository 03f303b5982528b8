//! Packing a source directory into the tar the CLI uploads, honouring `.dockerignore`.
//!
//! `.dockerignore` follows Docker's rules (moby `patternmatcher` and the CLI's
//! `dockerignore.ReadAll`):
//! - a line starting with `#` (in column 1) is a comment; other lines are trimmed and
//!   blank ones skipped;
//! - `!pattern` is an exception that re-includes what earlier patterns excluded;
//! - patterns are cleaned like Go's `filepath.Clean` (`./a//b/` → `a/b`) and a leading
//!   `/` is dropped, so every pattern is relative to the source directory;
//! - `*` matches any run of characters except `/`, `?` one character except `/`,
//!   `[...]` a character class (`[^...]` negated, `a-z` ranges), `\` escapes the next
//!   character, and `**` matches any number of directories (`**/x`, `a/**/b`, `a/**`);
//! - a pattern that matches a directory excludes everything below it;
//! - the last pattern that matches a path decides.
//!
//! As Docker does for the Dockerfile and `.dockerignore`, a few files are always sent
//! even when ignored (see [`ALWAYS_SENT`]), because the server needs them to build.
//!
//! Symlinks are stored as symlinks and never followed; sockets, FIFOs and devices are
//! skipped; modes, owners and modification times are kept. Entries are written in
//! sorted order, so the same tree always gives the same archive.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Files packed even when `.dockerignore` excludes them: Docker always sends the
/// ignore file and the Dockerfile, and the server reads the manifest from the upload.
pub const ALWAYS_SENT: &[&str] = &[".dockerignore", "Dockerfile", "berth.yml"];

/// Files never packed unless `.dockerignore` re-includes them (`!.env`): the local
/// secrets `berth start` reads (`.env`) and its private data dir (`.berth/start`).
pub const NOT_SENT: &[&str] = &[".env", ".berth/start"];

/// Why packing the source failed. Each message names the path and what to do.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: not a directory; give the directory that holds your source (and berth.yml)")]
    NotADirectory { path: PathBuf },

    #[error(
        "can't read {path}: {source}; check that it exists and that you may read it, or list it in .dockerignore"
    )]
    Read { path: PathBuf, source: io::Error },

    #[error("{path}:{line}: bad pattern {pattern:?}: {reason}; fix or remove that line")]
    Pattern {
        path: PathBuf,
        line: usize,
        pattern: String,
        reason: String,
    },

    #[error(
        "{path} changed while it was being packed; run the command again once nothing is writing to it, or list it in .dockerignore"
    )]
    Changed { path: PathBuf },

    #[error("can't write the source archive: {source}")]
    Write { source: io::Error },
}

/// Writes a tar of `dir` (paths relative to it, honouring `dir/.dockerignore`) into `out`;
/// returns (files, bytes) packed: the number of regular files and symlinks, and the total
/// size of the regular files' contents.
pub fn pack_source(dir: &Path, out: &mut impl Write) -> Result<(u64, u64), SourceError> {
    pack_source_keeping(dir, &[], &[], out)
}

/// A file that is not in the source directory but goes into the upload (a
/// manifest kept elsewhere): its path in the archive and its bytes.
pub struct ExtraFile<'a> {
    pub path: &'a str,
    pub bytes: &'a [u8],
}

/// An upload of `files` alone (a manifest that builds nothing needs no source).
pub fn pack_files(files: &[ExtraFile], out: &mut impl Write) -> Result<(u64, u64), SourceError> {
    let mut builder = tar::Builder::new(out);
    let bytes = append_extra(&mut builder, files)?;
    let out = builder
        .into_inner()
        .map_err(|source| SourceError::Write { source })?;
    out.flush()
        .map_err(|source| SourceError::Write { source })?;
    Ok((files.len() as u64, bytes))
}

fn append_extra<W: Write>(
    builder: &mut tar::Builder<W>,
    files: &[ExtraFile],
) -> Result<u64, SourceError> {
    let mut bytes = 0;
    for file in files {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_size(file.bytes.len() as u64);
        builder
            .append_data(&mut header, file.path, file.bytes)
            .map_err(|source| SourceError::Write { source })?;
        bytes += file.bytes.len() as u64;
    }
    Ok(bytes)
}

/// Like [`pack_source`], and also sends each path in `keep` (relative to `dir`, with `/`
/// separators) even if `.dockerignore` excludes it, for example a Dockerfile that a
/// manifest names with `build: {dockerfile: ...}`. [`ALWAYS_SENT`] is always kept.
/// `extra` files are added after the directory's.
pub fn pack_source_keeping(
    dir: &Path,
    keep: &[&str],
    extra: &[ExtraFile],
    out: &mut impl Write,
) -> Result<(u64, u64), SourceError> {
    let meta = fs::metadata(dir).map_err(|source| SourceError::Read {
        path: dir.into(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(SourceError::NotADirectory { path: dir.into() });
    }
    let mut rules = load_dockerignore(dir)?;
    for path in ALWAYS_SENT.iter().chain(keep) {
        rules.keep(path);
    }

    let mut packer = Packer {
        builder: tar::Builder::new(out),
        rules,
        files: 0,
        bytes: 0,
    };
    packer.walk(dir, Path::new(""), "")?;
    packer.bytes += append_extra(&mut packer.builder, extra)?;
    packer.files += extra.len() as u64;
    let out = packer
        .builder
        .into_inner()
        .map_err(|source| SourceError::Write { source })?;
    out.flush()
        .map_err(|source| SourceError::Write { source })?;
    Ok((packer.files, packer.bytes))
}

/// The rules of `dir/.dockerignore` (none when absent) after [`NOT_SENT`]'s, so
/// the file can still send those with an exception (`!.env`).
pub fn load_dockerignore(dir: &Path) -> Result<Dockerignore, SourceError> {
    let ignore_path = dir.join(".dockerignore");
    let mut rules = Dockerignore::not_sent();
    match fs::read(&ignore_path) {
        Ok(bytes) => {
            let text = String::from_utf8(bytes).map_err(|_| SourceError::Read {
                path: ignore_path.clone(),
                source: io::Error::new(io::ErrorKind::InvalidData, "it is not UTF-8 text"),
            })?;
            let file = Dockerignore::parse(&text).map_err(|e| SourceError::Pattern {
                path: ignore_path.clone(),
                line: e.line,
                pattern: e.pattern,
                reason: e.reason,
            })?;
            rules.patterns.extend(file.patterns);
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(SourceError::Read {
                path: ignore_path,
                source,
            });
        }
    }
    Ok(rules)
}

struct Packer<W: Write> {
    builder: tar::Builder<W>,
    rules: Dockerignore,
    files: u64,
    bytes: u64,
}

impl<W: Write> Packer<W> {
    /// Pack the contents of `abs` (whose path in the archive is `rel`, or `rel_str`
    /// with `/` separators; both empty for the root).
    fn walk(&mut self, abs: &Path, rel: &Path, rel_str: &str) -> Result<(), SourceError> {
        let read_err = |source| SourceError::Read {
            path: abs.to_path_buf(),
            source,
        };
        let mut names = Vec::new();
        for entry in fs::read_dir(abs).map_err(read_err)? {
            names.push(entry.map_err(read_err)?.file_name());
        }
        names.sort();
        for name in names {
            let abs = abs.join(&name);
            let rel = rel.join(&name);
            let name_str = name.to_string_lossy();
            let rel_str = if rel_str.is_empty() {
                name_str.into_owned()
            } else {
                format!("{rel_str}/{name_str}")
            };
            let meta = fs::symlink_metadata(&abs).map_err(|source| SourceError::Read {
                path: abs.clone(),
                source,
            })?;
            let kind = meta.file_type();
            let excluded = self.rules.is_excluded(&rel_str);
            if kind.is_dir() {
                if !excluded {
                    self.append_dir(&meta, &rel)?;
                    self.walk(&abs, &rel, &rel_str)?;
                } else if self.rules.may_include_below(&rel_str) {
                    self.walk(&abs, &rel, &rel_str)?;
                }
            } else if excluded {
                continue;
            } else if kind.is_symlink() {
                self.append_symlink(&abs, &meta, &rel)?;
            } else if kind.is_file() {
                self.append_file(&abs, &rel)?;
            }
            // Sockets, FIFOs and devices are skipped: they can't be sent.
        }
        Ok(())
    }

    fn header(meta: &fs::Metadata) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
        header
    }

    fn append_dir(&mut self, meta: &fs::Metadata, rel: &Path) -> Result<(), SourceError> {
        let mut header = Self::header(meta);
        header.set_entry_type(tar::EntryType::Directory);
        header.set_size(0);
        self.builder
            .append_data(&mut header, rel, io::empty())
            .map_err(|source| SourceError::Write { source })
    }

    fn append_symlink(
        &mut self,
        abs: &Path,
        meta: &fs::Metadata,
        rel: &Path,
    ) -> Result<(), SourceError> {
        let target = fs::read_link(abs).map_err(|source| SourceError::Read {
            path: abs.to_path_buf(),
            source,
        })?;
        let mut header = Self::header(meta);
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        self.builder
            .append_link(&mut header, rel, &target)
            .map_err(|source| SourceError::Write { source })?;
        self.files += 1;
        Ok(())
    }

    fn append_file(&mut self, abs: &Path, rel: &Path) -> Result<(), SourceError> {
        let read_err = |source| SourceError::Read {
            path: abs.to_path_buf(),
            source,
        };
        let file = fs::File::open(abs).map_err(read_err)?;
        // Describe the file we opened, not the name we listed earlier.
        let meta = file.metadata().map_err(read_err)?;
        if !meta.is_file() {
            return Err(SourceError::Changed {
                path: abs.to_path_buf(),
            });
        }
        let size = meta.len();
        let mut header = Self::header(&meta);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(size);
        let mut reader = ExactReader {
            inner: file,
            remaining: size,
            failure: None,
        };
        match self.builder.append_data(&mut header, rel, &mut reader) {
            Ok(()) => {}
            Err(source) => {
                return Err(match reader.failure.take() {
                    Some(ReadFailure::Short) => SourceError::Changed {
                        path: abs.to_path_buf(),
                    },
                    Some(ReadFailure::Io(source)) => read_err(source),
                    None => SourceError::Write { source },
                });
            }
        }
        self.files += 1;
        self.bytes += size;
        Ok(())
    }
}

enum ReadFailure {
    /// The file ended before the size written in its header.
    Short,
    Io(io::Error),
}

/// Yields exactly `remaining` bytes of `inner` (the size already written in the tar
/// header), so a file that grows or shrinks while packing can't corrupt the archive.
/// Records read failures, so they are told apart from write failures.
struct ExactReader<R> {
    inner: R,
    remaining: u64,
    failure: Option<ReadFailure>,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        match self.inner.read(&mut buf[..want]) {
            Ok(0) => {
                self.failure = Some(ReadFailure::Short);
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shrank while packing",
                ))
            }
            Ok(n) => {
                self.remaining -= n as u64;
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                let copy = io::Error::new(e.kind(), e.to_string());
                self.failure = Some(ReadFailure::Io(e));
                Err(copy)
            }
        }
    }
}

// ---------------------------------------------------------------------------
// .dockerignore

/// A parse error in a `.dockerignore`: its 1-based line, the pattern and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    pub line: usize,
    pub pattern: String,
    pub reason: String,
}

/// The rules of one `.dockerignore`, in file order.
#[derive(Debug, Clone, Default)]
pub struct Dockerignore {
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone)]
struct Pattern {
    /// `!pattern`: re-include what matches.
    exception: bool,
    tokens: Vec<Token>,
    /// The text before the first wildcard, to decide whether an exception could
    /// apply below an excluded directory.
    literal_prefix: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Char(char),
    /// `?`: one character other than `/`.
    AnyChar,
    /// `*`: any run of characters other than `/`.
    Star,
    /// `**` before more pattern: any number of whole directories, `(.*/)?`.
    Dirs,
    /// `**` at the end: anything at all, `.*`.
    Rest,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Dockerignore {
    /// The rules excluding [`NOT_SENT`], before any of a `.dockerignore`.
    pub fn not_sent() -> Self {
        let text = NOT_SENT.join("\n");
        Self::parse(&text).unwrap_or_default()
    }

    /// Parse the text of a `.dockerignore`.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            if raw.starts_with('#') {
                continue;
            }
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            let err = |reason: &str| PatternError {
                line: i + 1,
                pattern: line.to_string(),
                reason: reason.into(),
            };
            let (exception, body) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            if body.is_empty() {
                return Err(err(
                    "a lone `!` excludes nothing; write `!path` to re-include a path",
                ));
            }
            let mut cleaned = clean(body);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            let tokens = compile(&cleaned).map_err(|reason| err(&reason))?;
            let literal_prefix = cleaned
                .find(['*', '?', '[', '\\'])
                .map_or(cleaned.as_str(), |i| &cleaned[..i])
                .to_string();
            patterns.push(Pattern {
                exception,
                tokens,
                literal_prefix,
            });
        }
        Ok(Dockerignore { patterns })
    }

    /// Whether `path` (relative, `/`-separated) is excluded: the last pattern that
    /// matches it or one of its parent directories decides.
    pub fn is_excluded(&self, path: &str) -> bool {
        let chars: Vec<char> = path.chars().collect();
        // The ends of each parent directory ("a", "a/b" for "a/b/c").
        let parents: Vec<usize> = chars
            .iter()
            .enumerate()
            .filter(|(_, c)| **c == '/')
            .map(|(i, _)| i)
            .collect();
        let mut excluded = false;
        for p in &self.patterns {
            // Only a pattern that could change the answer needs evaluating.
            if p.exception != excluded {
                continue;
            }
            let hit = matches(&p.tokens, &chars)
                || parents.iter().any(|&end| matches(&p.tokens, &chars[..end]));
            if hit {
                excluded = !p.exception;
            }
        }
        excluded
    }

    /// Whether an exception could re-include something below the excluded directory
    /// `dir`, so that it must still be walked.
    fn may_include_below(&self, dir: &str) -> bool {
        let dir_slash = format!("{dir}/");
        self.patterns.iter().any(|p| {
            p.exception
                && (p.literal_prefix.starts_with(&dir_slash)
                    || dir_slash.starts_with(&p.literal_prefix))
        })
    }

    /// Make sure `path` is sent even if excluded, as Docker does for the Dockerfile.
    fn keep(&mut self, path: &str) {
        let path = clean(path);
        if !self.is_excluded(&path) {
            return;
        }
        let tokens: Vec<Token> = path.chars().map(Token::Char).collect();
        self.patterns.push(Pattern {
            exception: true,
            tokens,
            literal_prefix: path,
        });
    }
}

/// Go's `filepath.Clean` for `/`-separated paths.
fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Translate a cleaned pattern the way Docker's `patternmatcher` does.
fn compile(pattern: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                if chars.peek() == Some(&'/') {
                    chars.next();
                }
                tokens.push(if chars.peek().is_none() {
                    Token::Rest
                } else {
                    Token::Dirs
                });
            }
            '*' => tokens.push(Token::Star),
            '?' => tokens.push(Token::AnyChar),
            '\\' => match chars.next() {
                Some(e) => tokens.push(Token::Char(e)),
                None => return Err("it ends with a lone `\\`; escape it as `\\\\`".into()),
            },
            '[' => {
                let negated = chars.peek() == Some(&'^');
                if negated {
                    chars.next();
                }
                let mut ranges = Vec::new();
                loop {
                    let lo = match chars.next() {
                        None => {
                            return Err(
                                "a `[` is never closed; close it with `]` or escape it as `\\[`"
                                    .into(),
                            );
                        }
                        Some(']') if !ranges.is_empty() => break,
                        Some(']' | '-') => {
                            return Err("a `[...]` class starts with `]` or `-` or is empty; escape them with `\\`".into());
                        }
                        Some('\\') => chars.next().ok_or("a `[` is never closed")?,
                        Some(c) => c,
                    };
                    let hi = if chars.peek() == Some(&'-') {
                        chars.next();
                        match chars.next() {
                            Some('\\') => chars.next().ok_or("a `[` is never closed")?,
                            Some(']') | None => {
                                return Err(
                                    "a range in `[...]` has no end; write it like `a-z`".into()
                                );
                            }
                            Some(c) => c,
                        }
                    } else {
                        lo
                    };
                    if lo > hi {
                        return Err(format!(
                            "the range `{lo}-{hi}` runs backwards; write it as `{hi}-{lo}`"
                        ));
                    }
                    ranges.push((lo, hi));
                }
                tokens.push(Token::Class { negated, ranges });
            }
            c => tokens.push(Token::Char(c)),
        }
    }
    Ok(tokens)
}

/// Whether `tokens` match all of `s`, by dynamic programming over positions
/// (linear in the pattern times the path, whatever the wildcards).
fn matches(tokens: &[Token], s: &[char]) -> bool {
    let n = s.len();
    // reach[j]: the tokens so far can match s[..j].
    let mut reach = vec![false; n + 1];
    reach[0] = true;
    let mut next = vec![false; n + 1];
    for token in tokens {
        next.iter_mut().for_each(|x| *x = false);
        match token {
            Token::Char(c) => {
                for j in 0..n {
                    next[j + 1] = reach[j] && s[j] == *c;
                }
            }
            Token::AnyChar => {
                for j in 0..n {
                    next[j + 1] = reach[j] && s[j] != '/';
                }
            }
            Token::Class { negated, ranges } => {
                for j in 0..n {
                    let inside = ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&s[j]));
                    next[j + 1] = reach[j] && inside != *negated;
                }
            }
            Token::Star => {
                for j in 0..=n {
                    next[j] = reach[j] || (j > 0 && next[j - 1] && s[j - 1] != '/');
                }
            }
            Token::Rest => {
                for j in 0..=n {
                    next[j] = reach[j] || (j > 0 && next[j - 1]);
                }
            }
            Token::Dirs => {
                // Empty, or anything that ends with '/'.
                let mut seen = false;
                for j in 0..=n {
                    if j > 0 {
                        seen |= reach[j - 1];
                    }
                    next[j] = reach[j] || (j > 0 && seen && s[j - 1] == '/');
                }
            }
        }
        std::mem::swap(&mut reach, &mut next);
        if !reach.iter().any(|x| *x) {
            return false;
        }
    }
    reach[n]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn ignore(text: &str) -> Dockerignore {
        Dockerignore::parse(text).unwrap()
    }

    fn write(root: &Path, rel: &str, data: &str) {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, data).unwrap();
    }

    #[derive(Debug, PartialEq)]
    enum Kind {
        File(String, u32),
        Dir,
        Link(String),
    }

    /// Pack `root` and list the archive: path → kind.
    fn pack(root: &Path) -> (BTreeMap<String, Kind>, (u64, u64), Vec<String>) {
        let mut out = Vec::new();
        let counts = pack_source(root, &mut out).unwrap();
        let mut listing = BTreeMap::new();
        let mut order = Vec::new();
        let mut archive = tar::Archive::new(out.as_slice());
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry
                .path()
                .unwrap()
                .to_string_lossy()
                .trim_end_matches('/')
                .to_string();
            let mode = entry.header().mode().unwrap();
            let kind = match entry.header().entry_type() {
                tar::EntryType::Regular => {
                    let mut s = String::new();
                    entry.read_to_string(&mut s).unwrap();
                    Kind::File(s, mode & 0o777)
                }
                tar::EntryType::Directory => Kind::Dir,
                tar::EntryType::Symlink => Kind::Link(
                    entry
                        .link_name()
                        .unwrap()
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                ),
                other => panic!("unexpected entry type {other:?} for {path}"),
            };
            order.push(path.clone());
            listing.insert(path, kind);
        }
        (listing, counts, order)
    }

    fn paths(listing: &BTreeMap<String, Kind>) -> Vec<&str> {
        listing.keys().map(String::as_str).collect()
    }

    #[test]
    fn matching_follows_docker() {
        let d = ignore("*.log\n");
        assert!(d.is_excluded("a.log"));
        assert!(
            !d.is_excluded("sub/a.log"),
            "`*` does not cross directories"
        );

        let d = ignore("**/*.log\n");
        assert!(d.is_excluded("a.log") && d.is_excluded("x/y/a.log"));
        assert!(!d.is_excluded("a.txt"));

        let d = ignore("a/**/b\n");
        assert!(d.is_excluded("a/b") && d.is_excluded("a/x/y/b") && d.is_excluded("a/x/b/c"));
        assert!(!d.is_excluded("a/xb"));

        let d = ignore("docs/**\n");
        assert!(d.is_excluded("docs/a") && d.is_excluded("docs/a/b"));

        let d = ignore("?.txt\n[a-c]x\n[^0-9]y\n");
        assert!(d.is_excluded("a.txt") && !d.is_excluded("ab.txt"));
        assert!(d.is_excluded("bx") && !d.is_excluded("dx"));
        assert!(d.is_excluded("zy") && !d.is_excluded("5y"));

        let d = ignore("{a,b}\n\\*.md\n");
        assert!(
            d.is_excluded("{a,b}") && !d.is_excluded("a"),
            "no brace alternation in Docker"
        );
        assert!(d.is_excluded("*.md") && !d.is_excluded("x.md"));

        // Cleaning: leading `/` and `./`, doubled and trailing slashes.
        let d = ignore("/build\n./dist/\ntmp//x/../y\n");
        assert!(d.is_excluded("build") && d.is_excluded("build/a"));
        assert!(d.is_excluded("dist/a/b"));
        assert!(d.is_excluded("tmp/y") && !d.is_excluded("tmp/x"));

        // Last match wins, in both directions.
        let d = ignore("*.md\n!README.md\n");
        assert!(d.is_excluded("a.md") && !d.is_excluded("README.md"));
        let d = ignore("!README.md\n*.md\n");
        assert!(d.is_excluded("README.md"));

        // Comments only in column 1; lines are trimmed.
        let d = ignore("# secret\n  \n   secret  \n \t\n");
        assert!(d.is_excluded("secret") && !d.is_excluded("# secret"));
        let d = ignore(" # x\n");
        assert!(
            d.is_excluded("# x"),
            "Docker: only a `#` in column 1 starts a comment"
        );
    }

    #[test]
    fn bad_patterns_are_reported_with_their_line() {
        for (text, want) in [
            ("ok\n[a-\n", "no end"),
            ("a\nb\n!\n", "lone `!`"),
            ("x[\n", "never closed"),
            ("z-a\n[z-a]\n", "backwards"),
            ("a\\\n", "lone `\\`"),
        ] {
            let e = Dockerignore::parse(text).unwrap_err();
            assert_eq!(e.line, text.lines().count(), "{text:?}: {e:?}");
            assert!(e.reason.contains(want), "{text:?}: {e:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), ".dockerignore", "# x\nfoo[\n");
        let e = pack_source(dir.path(), &mut Vec::new()).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(".dockerignore:2: bad pattern \"foo[\"") && msg.contains("fix or remove"),
            "{msg}"
        );
    }

    #[test]
    fn packs_with_excludes_exceptions_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            root,
            ".dockerignore",
            "# build output\n\n/node_modules\n*.log\n**/*.tmp\ndocs\n!docs/keep.md\nsecret*\n!secret-ok\n.git\nDockerfile\n",
        );
        write(root, "Dockerfile", "FROM scratch\n");
        write(root, "app.js", "console.log(1)\n");
        write(root, "a.log", "x");
        write(root, "src/b.log", "kept: `*.log` matches at the top only");
        write(root, "src/c.tmp", "x");
        write(root, "src/deep/d.tmp", "x");
        write(root, "src/main.rs", "fn main() {}\n");
        write(root, "node_modules/left-pad/index.js", "x");
        write(root, "docs/keep.md", "keep");
        write(root, "docs/drop.md", "drop");
        write(root, "secret.txt", "x");
        write(root, "secret-ok", "ok");
        write(root, ".git/HEAD", "x");
        fs::create_dir(root.join("empty")).unwrap();
        fs::set_permissions(root.join("app.js"), fs::Permissions::from_mode(0o751)).unwrap();

        let (listing, (files, bytes), order) = pack(root);
        assert_eq!(
            paths(&listing),
            [
                ".dockerignore",
                "Dockerfile",
                "app.js",
                "docs/keep.md",
                "empty",
                "secret-ok",
                "src",
                "src/b.log",
                "src/deep",
                "src/main.rs",
            ]
        );
        assert_eq!(
            listing["app.js"],
            Kind::File("console.log(1)\n".into(), 0o751),
            "mode kept"
        );
        assert_eq!(listing["empty"], Kind::Dir);
        assert!(
            matches!(&listing["Dockerfile"], Kind::File(s, _) if s == "FROM scratch\n"),
            "ignored, but always sent"
        );
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted, "entries are written in sorted order");
        assert_eq!(files, 7);
        let expected_bytes: u64 = listing
            .values()
            .map(|k| match k {
                Kind::File(s, _) => s.len() as u64,
                _ => 0,
            })
            .sum();
        assert_eq!(bytes, expected_bytes);

        // The same tree gives the same archive.
        let (mut a, mut b) = (Vec::new(), Vec::new());
        pack_source(root, &mut a).unwrap();
        pack_source(root, &mut b).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn env_file_and_start_data_stay_out_unless_re_included() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "Dockerfile", "FROM scratch\n");
        write(root, ".env", "SECRET=1\n");
        write(root, "sub/.env", "kept: only the top one is left out\n");
        write(root, ".berth/start/berth.db", "x");
        write(root, ".berth/other", "x");
        let (listing, _, _) = pack(root);
        assert_eq!(
            paths(&listing),
            [".berth", ".berth/other", "Dockerfile", "sub", "sub/.env"]
        );
        write(root, ".dockerignore", "!.env\n");
        let (listing, _, _) = pack(root);
        assert!(listing.contains_key(".env"), "re-included by !.env");
        assert!(!listing.contains_key(".berth/start/berth.db"));
    }

    #[test]
    fn whole_tree_excluded_with_exception() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, ".dockerignore", "*\n!src\n!**/*.keep\nsrc/gen\n");
        write(root, "top.txt", "x");
        write(root, "src/a.rs", "a");
        write(root, "src/gen/out.rs", "x");
        write(root, "other/deep/x.keep", "k");
        write(root, "other/deep/y", "y");
        let (listing, _, _) = pack(root);
        assert_eq!(
            paths(&listing),
            [".dockerignore", "other/deep/x.keep", "src", "src/a.rs"]
        );
    }

    #[test]
    fn symlinks_are_kept_as_symlinks_and_special_files_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "real/file.txt", "data");
        symlink("real/file.txt", root.join("link")).unwrap();
        symlink("/etc/passwd", root.join("outside")).unwrap();
        symlink("missing", root.join("dangling")).unwrap();
        symlink("real", root.join("dirlink")).unwrap();
        let _socket = std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();

        let (listing, (files, bytes), _) = pack(root);
        assert_eq!(listing["link"], Kind::Link("real/file.txt".into()));
        assert_eq!(
            listing["outside"],
            Kind::Link("/etc/passwd".into()),
            "not followed"
        );
        assert_eq!(listing["dangling"], Kind::Link("missing".into()));
        assert_eq!(listing["dirlink"], Kind::Link("real".into()));
        assert!(!listing.contains_key("sock"));
        assert!(
            !listing.contains_key("dirlink/file.txt"),
            "a symlinked directory is not walked"
        );
        assert_eq!((files, bytes), (5, 4));
    }

    #[test]
    fn kept_paths_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, ".dockerignore", "docker\nberth.yml\n.dockerignore\n");
        write(root, "berth.yml", "services: {}\n");
        write(root, "docker/Dockerfile.web", "FROM x\n");
        write(root, "docker/other", "x");
        let mut out = Vec::new();
        pack_source_keeping(root, &["docker/Dockerfile.web"], &[], &mut out).unwrap();
        let mut names: Vec<String> = tar::Archive::new(out.as_slice())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [".dockerignore", "berth.yml", "docker/Dockerfile.web"]
        );

        let e = pack_source(&root.join("berth.yml"), &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
        let e = pack_source(&root.join("nope"), &mut Vec::new()).unwrap_err();
        assert!(
            matches!(e, SourceError::Read { .. }) && e.to_string().contains("nope"),
            "{e}"
        );

        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let e = pack_source(root, &mut Broken).unwrap_err();
        assert!(
            matches!(e, SourceError::Write { .. }) && e.to_string().contains("disk full"),
            "{e}"
        );
    }

    #[test]
    fn exact_reader_detects_a_shrunk_file() {
        let mut r = ExactReader {
            inner: &b"abc"[..],
            remaining: 5,
            failure: None,
        };
        let mut buf = Vec::new();
        assert!(r.read_to_end(&mut buf).is_err());
        assert!(matches!(r.failure, Some(ReadFailure::Short)));
        let mut r = ExactReader {
            inner: &b"abcdef"[..],
            remaining: 4,
            failure: None,
        };
        let mut buf = Vec::new();
        r.read_to_end(&mut buf).unwrap();
        assert_eq!(buf, b"abcd", "a grown file is cut at the header's size");
    }
}
