//! An rsyslogd of the test's own for the log drain tests (Debian's
//! `rsyslog`, and `rsyslog-gnutls` for TLS): never the system's.

use super::{eventually, free_port, write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// An rsyslogd of the test's own (never the system's): one TCP input on a
/// loopback port, plain or TLS, writing APP-NAME, PROCID, MSGID, structured
/// data and MSG of each message as a line of `out.log`.
pub struct Rsyslog {
    dir: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

impl Rsyslog {
    pub fn start(dir: &Path, tls: Option<&Path>) -> Rsyslog {
        std::fs::create_dir_all(dir.join("work")).expect("rsyslog work dir");
        let port = free_port();
        let d = dir.display();
        let input = match tls {
            None => "module(load=\"imtcp\")\n".to_string(),
            Some(certs) => {
                let c = certs.display();
                format!(
                    "global(DefaultNetstreamDriver=\"gtls\" DefaultNetstreamDriverCAFile=\"{c}/ca.pem\" \
                     DefaultNetstreamDriverCertFile=\"{c}/server.pem\" DefaultNetstreamDriverKeyFile=\"{c}/server.key\")\n\
                     module(load=\"imtcp\" StreamDriver.Name=\"gtls\" StreamDriver.Mode=\"1\" StreamDriver.AuthMode=\"anon\")\n"
                )
            }
        };
        let conf = format!(
            "global(workDirectory=\"{d}/work\")\n{input}\
             input(type=\"imtcp\" port=\"{port}\" address=\"127.0.0.1\")\n\
             template(name=\"drn\" type=\"string\" string=\"%app-name% %procid% %msgid% %structured-data% %msg%\\n\")\n\
             action(type=\"omfile\" file=\"{d}/out.log\" template=\"drn\")\n"
        );
        write(dir, "rsyslog.conf", &conf);
        let mut r = Rsyslog {
            dir: dir.to_path_buf(),
            port,
            child: None,
        };
        r.spawn();
        r
    }

    pub fn spawn(&mut self) {
        let _ = std::fs::remove_file(self.dir.join("rsyslog.pid"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("rsyslogd.log"))
            .expect("rsyslogd log");
        // Debian puts it in /usr/sbin, which a user's PATH may not have.
        let exe = if Path::new("/usr/sbin/rsyslogd").exists() {
            "/usr/sbin/rsyslogd"
        } else {
            "rsyslogd"
        };
        let child = Command::new(exe)
            .arg("-n")
            .arg("-f")
            .arg(self.dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(self.dir.join("rsyslog.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("start rsyslogd (apt-get install rsyslog rsyslog-gnutls; scripts/setup-test-host.sh does)");
        self.child = Some(child);
        let up = eventually(Duration::from_secs(15), || {
            TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        });
        assert!(
            up,
            "rsyslogd did not listen on {}:\n{}",
            self.port,
            self.log()
        );
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("rsyslogd.log")).unwrap_or_default()
    }

    pub fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("out.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// How many received lines end with `text`.
    pub fn count(&self, text: &str) -> usize {
        self.lines().iter().filter(|l| l.ends_with(text)).count()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.kill();
    }
}
