//! A drain's URL: which receiver, over what, and how it is shown.

/// The accepted forms, for error messages.
pub const FORMS: &str =
    "syslog+tcp://HOST:PORT, syslog+tls://HOST:PORT or otlp+http://HOST:PORT[/PATH]";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// RFC 5424 over TCP, octet-counted (RFC 6587).
    SyslogTcp { host: String, port: u16 },
    /// The same over TLS (RFC 5425).
    SyslogTls { host: String, port: u16 },
    /// OTLP/HTTP logs, protobuf, POSTed to `path`.
    Otlp {
        host: String,
        port: u16,
        path: String,
        /// `user:password` from the URL, sent as HTTP Basic credentials.
        userinfo: Option<String>,
    },
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, String> {
        let bad = |why: &str| format!("drain URL {}: {why}; use {FORMS}", mask(url));
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(bad("it has no scheme"));
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_string()), h),
            None => (None, authority),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let Some((host, port)) = v6.split_once(']') else {
                return Err(bad("its IPv6 address has no closing ]"));
            };
            (host, port.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(bad("it names no host"));
        }
        let Some(port) = port.filter(|p| !p.is_empty()) else {
            return Err(bad("it has no port"));
        };
        let port: u16 = match port.parse() {
            Ok(p) if p > 0 => p,
            _ => return Err(bad(&format!("{port:?} is not a port"))),
        };
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b))
        {
            return Err(bad(&format!("{host:?} is not a host name or address")));
        }
        let host = host.to_string();
        let syslog_path_ok = path.is_empty() || path == "/";
        match scheme {
            "syslog+tcp" | "syslog+tls" if !syslog_path_ok => {
                Err(bad("a syslog drain takes no path"))
            }
            "syslog+tcp" | "syslog+tls" if userinfo.is_some() => {
                Err(bad("a syslog drain takes no user or password"))
            }
            "syslog+tcp" => Ok(Target::SyslogTcp { host, port }),
            "syslog+tls" => Ok(Target::SyslogTls { host, port }),
            "otlp+http" => {
                if path.contains(['?', '#']) {
                    return Err(bad("an OTLP drain's path takes no query or fragment"));
                }
                let path = if path.is_empty() || path == "/" {
                    "/v1/logs".to_string()
                } else {
                    path.to_string()
                };
                Ok(Target::Otlp {
                    host,
                    port,
                    path,
                    userinfo,
                })
            }
            other => Err(bad(&format!("unknown scheme {other:?}"))),
        }
    }

    /// `host:port`, with brackets around an IPv6 address.
    pub fn authority(&self) -> String {
        let (Target::SyslogTcp { host, port }
        | Target::SyslogTls { host, port }
        | Target::Otlp { host, port, .. }) = self;
        if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        }
    }
}

/// The URL with any user and password replaced by `***`.
pub fn mask(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://***@{host}{}", &rest[end..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_forms_are_read() {
        assert_eq!(
            Target::parse("syslog+tcp://127.0.0.1:514"),
            Ok(Target::SyslogTcp {
                host: "127.0.0.1".into(),
                port: 514
            })
        );
        assert_eq!(
            Target::parse("syslog+tls://logs.example.com:6514/"),
            Ok(Target::SyslogTls {
                host: "logs.example.com".into(),
                port: 6514
            })
        );
        let otlp = Target::parse("otlp+http://u:p@[::1]:4318").expect("parsed");
        assert_eq!(
            otlp,
            Target::Otlp {
                host: "::1".into(),
                port: 4318,
                path: "/v1/logs".into(),
                userinfo: Some("u:p".into())
            }
        );
        assert_eq!(otlp.authority(), "[::1]:4318");
        let Ok(Target::Otlp { path, .. }) = Target::parse("otlp+http://h:1/otel/logs") else {
            panic!("parsed");
        };
        assert_eq!(path, "/otel/logs");
    }

    #[test]
    fn bad_urls_are_refused_naming_the_url_and_the_forms() {
        for (url, why) in [
            ("http://h:1", "unknown scheme"),
            ("syslog+tcp://h", "no port"),
            ("syslog+tcp://h:", "no port"),
            ("syslog+tcp://h:99999", "not a port"),
            ("syslog+udp://h:1", "unknown scheme"),
            ("h:1", "no scheme"),
            ("syslog+tcp://:1", "no host"),
            ("syslog+tls://h:1/x", "no path"),
            ("syslog+tcp://a b:1", "not a host"),
        ] {
            let err = Target::parse(url).expect_err(url);
            assert!(err.contains(why), "{url}: {err}");
            assert!(err.contains(FORMS), "{url}: {err}");
        }
        let err = Target::parse("otlp+https://user:secret@h:1").expect_err("refused");
        assert!(!err.contains("secret") && err.contains("***@h:1"), "{err}");
    }

    #[test]
    fn credentials_are_masked() {
        assert_eq!(
            mask("otlp+http://user:pw@h:4318/v1/logs"),
            "otlp+http://***@h:4318/v1/logs"
        );
        assert_eq!(mask("syslog+tcp://h:514"), "syslog+tcp://h:514");
    }
}
