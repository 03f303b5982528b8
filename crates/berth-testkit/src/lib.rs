//! [`MemoryRuntime`]: a small container engine in memory behind berth's
//! [`Runtime`](berth_runtime::Runtime) trait, so the reconciler, rollouts and
//! the HTTP API can be tested without Docker. It keeps real state (images with
//! layers, networks, volumes with files, containers with output, execs) and
//! answers as `DockerRuntime` does: the same errors for the same mistakes,
//! the same events, labels inherited from images, names reused after removal.
//! For tests only: berth-server takes it as a dev-dependency.
//!
//! [`InProcessRouter`] is the other half: berth's real router inside the test
//! process, behind the `RouterHandle` the server holds its router by.
//!
//! # Programs
//!
//! No process runs; a container runs a *program* named by its command (the
//! spec's `command`, else the image's `ENTRYPOINT` + `CMD`). A command whose
//! first word is not in this vocabulary cannot start, as an executable missing
//! from the image cannot (`start_container` fails with the engine's
//! "executable file not found" error). A leading path is ignored
//! (`/bin/serve` is `serve`).
//!
//! | command | what it does |
//! |---|---|
//! | `serve [--fail PATH]… [--delay T] [--startup T] [--port N]` | HTTP/1.1 on the container's address at port `--port`, else `$PORT`, else 8080; answers every request `200` with the container's name as body (and in `X-Served-By`); `--fail` paths answer `500`; `--delay` waits before each answer; `--startup` waits before listening. Prints `listening on IP:PORT`. |
//! | `sleep [T]` | waits `T`, then exits 0; without `T` (or `infinity`) runs until stopped: a worker |
//! | `exit N` | exits with `N` |
//! | `echo WORDS…` / `echo-err WORDS…` | prints one line to stdout / stderr (`echo … >&2` works too) |
//! | `cat` | copies stdin to stdout until stdin closes |
//! | `cat PATH` | prints a file (from a mounted volume or the container's own files) |
//! | `env` | prints the environment, `KEY=value` lines |
//! | `write PATH CONTENT…` | writes a file; under a volume's mount path, into the volume |
//! | `oom` | ends as killed for lack of memory: 137, `oom_killed`, an `oom` event |
//! | `true` / `false` | exit 0 / 1 |
//! | `sh` | reads command lines from stdin and runs each; `exit N` ends it |
//! | `sh -c "SCRIPT"` | the script's words, with quotes, `$VAR` from the env, `&&` and `;` |
//!
//! Steps chain with `&&` (next only after success) or `;` in one command, e.g.
//! `["write", "/data/x", "hello", "&&", "sleep"]`. Two wrappers go first and
//! apply to the whole program: `stubborn` ignores SIGTERM (a stop waits out the
//! grace and kills: 137), and `crash-after T CODE` exits with `CODE` after
//! `T`. Alone, either sleeps: `["stubborn"]`, `["crash-after", "2", "1"]`,
//! `["crash-after", "2", "1", "serve"]`. `T` is seconds (`2`, `1.5`) or has a
//! unit (`250ms`, `2s`, `1m`).
//!
//! SIGTERM (`stop_container`) ends a program with 143, SIGKILL (the grace
//! passed, or `remove_container` of a running one) with 137.
//!
//! `exec` runs the same vocabulary inside a running container; a command
//! outside it prints `sh: NAME: not found` to stderr and exits 127.
//!
//! # Images and builds
//!
//! `build_image` reads the context tar and runs the Dockerfile step by step,
//! printing `Step i/N : ...` and `Successfully built`/`tagged` lines as the
//! classic builder does. `FROM scratch` or an image in this engine (or an
//! earlier stage); anything else fails as a pull would. `CMD`, `ENTRYPOINT`
//! (exec or shell form), `ENV`, `LABEL`, `EXPOSE` and `ARG` take effect and are
//! inherited from the `FROM` image; `RUN` runs its command with the vocabulary
//! above (other commands succeed silently; a non-zero exit fails the build);
//! `COPY`/`ADD` check their sources are in the context. Every `RUN`/`COPY`/`ADD`
//! adds a small layer, the same for the same step on the same layers, so
//! `export_image`/`load_image` (the `docker save` layout) and `layer_chains`
//! work as with the engine. [`MemoryRuntime::add_image`] adds an image directly.
//!
//! # Networks
//!
//! Each network gets its own /24 inside 127.0.0.0/8 that no other network in
//! the test process has; a running container gets an address there
//! (`ContainerInfo::ip`), and `serve` really listens on it, so health checks and
//! a router on the host reach it. Aliases are recorded; there is no DNS.
//!
//! # Failure injection
//!
//! [`MemoryRuntime::set_unreachable`] makes every call fail with
//! `RuntimeError::Connect` and ends event streams, as a stopped dockerd does;
//! [`MemoryRuntime::kill`] makes a running program exit with a code (a crash).

mod build;
mod dockerfile;
mod fs;
mod http;
mod image_archive;
mod images;
mod lifecycle;
mod network;
mod output;
mod process;
mod program;
mod router;
mod runtime;
mod sessions;
mod state;
mod sync;
mod volumes;

pub use router::InProcessRouter;
pub use runtime::{ImageSpec, MemoryRuntime, NetworkInfo};
