//! `build_image`: a Dockerfile run as the classic builder runs it, step by
//! step with its output, `RUN` commands executed as programs.

use crate::dockerfile::{self, Command, Instruction};
use crate::fs::{Files, normalize};
use crate::images::{ImageConfig, Layer, describe_layer, sha256_hex, short};
use crate::output::{Output, Phase, follow_lines};
use crate::process::{self, Context, Writer};
use crate::program::{self, Step};
use crate::state::Engine;
use berth_runtime::{BuildRequest, Result, RuntimeError, chain_ids};
use futures_util::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::Arc;
use tokio::sync::mpsc;

/// The engine's default for images that set none.
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A step's outcome; the error is the engine's message for the failed build.
type StepResult<T> = std::result::Result<T, String>;

/// The files of a build context: path → content (`None` for a directory).
type BuildContext = BTreeMap<String, Option<Vec<u8>>>;

fn read_context(tar: &[u8]) -> std::io::Result<BuildContext> {
    let mut files = BTreeMap::new();
    for entry in tar::Archive::new(tar).entries()? {
        let mut entry = entry?;
        let Some(path) = normalize(&entry.path()?.to_string_lossy()) else {
            continue;
        };
        if entry.header().entry_type().is_dir() {
            files.insert(path, None);
        } else {
            let mut data = Vec::new();
            entry.read_to_end(&mut data)?;
            files.insert(path, Some(data));
        }
    }
    Ok(files)
}

/// One `FROM` and what follows it.
#[derive(Clone, Default)]
struct Stage {
    name: Option<String>,
    /// The image it starts `FROM`; `None` for `scratch`.
    parent: Option<String>,
    config: ImageConfig,
    /// Whether this stage set `CMD` (an `ENTRYPOINT` clears an inherited one).
    cmd_set: bool,
    layers: Vec<Layer>,
    args: BTreeMap<String, String>,
}

impl Stage {
    /// What `$VAR` means in this stage: its build args, then its env.
    fn vars(&self) -> BTreeMap<String, String> {
        let mut vars = self.args.clone();
        for entry in &self.config.env {
            if let Some((key, value)) = entry.split_once('=') {
                vars.insert(key.to_string(), value.to_string());
            }
        }
        vars
    }

    fn set_env(&mut self, key: &str, value: &str) {
        self.config
            .env
            .retain(|e| e.split_once('=').map(|(k, _)| k) != Some(key));
        self.config.env.push(format!("{key}={value}"));
    }

    /// A layer for this step, on top of the stage's: the same step on the same
    /// layers gives the same one.
    fn add_layer(&mut self, step: &str) -> std::io::Result<()> {
        let below = chain_ids(&self.config.diff_ids).pop().unwrap_or_default();
        let layer = describe_layer(&format!("{below}\n{step}\n"))?;
        self.config.diff_ids.push(layer.diff_id.clone());
        self.layers.push(layer);
        Ok(())
    }
}

struct Builder<'a> {
    engine: &'a Arc<Engine>,
    request: &'a BuildRequest<'a>,
    context: BuildContext,
    output: &'a mpsc::Sender<String>,
    /// `ARG`s before the first `FROM`, usable in `FROM`.
    global_args: BTreeMap<String, String>,
    finished: HashMap<String, Stage>,
    stage: Option<Stage>,
    stages: usize,
}

pub(crate) async fn build(
    engine: &Arc<Engine>,
    request: BuildRequest<'_>,
    output: mpsc::Sender<String>,
) -> Result<String> {
    engine.check()?;
    let data = tokio::fs::read(request.context_tar).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("build context {}: {e}", request.context_tar.display()),
        )
    })?;
    let outcome = run(engine, &request, &data, &output).await;
    if let Err(RuntimeError::Build(message)) = &outcome {
        // The engine's message ends the output, as a failed build's does.
        let _ = output.send(message.clone()).await;
    }
    outcome
}

async fn run(
    engine: &Arc<Engine>,
    request: &BuildRequest<'_>,
    data: &[u8],
    output: &mpsc::Sender<String>,
) -> Result<String> {
    let failed = RuntimeError::Build;
    let context =
        read_context(data).map_err(|e| failed(format!("Error processing tar file: {e}")))?;
    let wanted = normalize(&request.dockerfile).unwrap_or_default();
    let text = match context.get(&wanted) {
        Some(Some(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
        _ => {
            return Err(failed(format!(
                "Cannot locate specified Dockerfile: {}",
                request.dockerfile
            )));
        }
    };
    let instructions = dockerfile::parse(&text).map_err(failed)?;
    if instructions.is_empty() {
        return Err(failed(format!(
            "the Dockerfile ({}) cannot be empty",
            request.dockerfile
        )));
    }
    let mut builder = Builder {
        engine,
        request,
        context,
        output,
        global_args: BTreeMap::new(),
        finished: HashMap::new(),
        stage: None,
        stages: 0,
    };
    let count = instructions.len();
    for (index, instruction) in instructions.iter().enumerate() {
        builder
            .say(format!(
                "Step {}/{count} : {}",
                index + 1,
                instruction.original
            ))
            .await;
        builder.step(instruction).await.map_err(failed)?;
    }
    builder.finish().await
}

impl Builder<'_> {
    async fn say(&self, line: String) {
        // A dropped receiver means nobody watches; the build goes on.
        let _ = self.output.send(line).await;
    }

    fn stage(&mut self) -> StepResult<&mut Stage> {
        self.stage
            .as_mut()
            .ok_or_else(|| "no build stage in current context".to_string())
    }

    async fn step(&mut self, instruction: &Instruction) -> StepResult<()> {
        let args = instruction.args.as_str();
        if instruction.keyword == "FROM" {
            return self.from(args).await;
        }
        if instruction.keyword == "ARG" && self.stage.is_none() {
            for (name, value) in self.arg_values(args, &BTreeMap::new()) {
                self.global_args.insert(name, value);
            }
            return Ok(());
        }
        let stage = self.stage()?;
        let vars = stage.vars();
        match instruction.keyword.as_str() {
            "ARG" => {
                let global = self.global_args.clone();
                let values = self.arg_values(args, &vars);
                let stage = self.stage()?;
                for (name, value) in values {
                    let value = if value.is_empty() {
                        global.get(&name).cloned().unwrap_or_default()
                    } else {
                        value
                    };
                    stage.args.insert(name, value);
                }
            }
            "ENV" => {
                for (key, value) in dockerfile::key_values(&dockerfile::substitute(args, &vars)) {
                    stage.set_env(&key, &value);
                }
            }
            "LABEL" => {
                for (key, value) in dockerfile::key_values(&dockerfile::substitute(args, &vars)) {
                    stage.config.labels.insert(key, value);
                }
            }
            "EXPOSE" => {
                for port in dockerfile::words(&dockerfile::substitute(args, &vars)) {
                    let (number, protocol) = port.split_once('/').unwrap_or((&port, "tcp"));
                    if number.parse::<u16>().is_err() {
                        return Err(format!("Invalid containerPort: {port}"));
                    }
                    stage.config.exposed.insert(format!("{number}/{protocol}"));
                }
            }
            "CMD" => {
                stage.config.cmd = Some(Command::parse(args).argv());
                stage.cmd_set = true;
            }
            "ENTRYPOINT" => {
                stage.config.entrypoint = Some(Command::parse(args).argv());
                if !stage.cmd_set {
                    stage.config.cmd = None;
                }
            }
            "RUN" => self.run_command(args).await?,
            "COPY" | "ADD" => self.copy(instruction, &vars)?,
            // The rest changes nothing this engine models.
            _ => {}
        }
        let digest = self
            .stage
            .as_ref()
            .map(|s| sha256_hex(&s.config.to_json()))
            .unwrap_or_default();
        self.say(format!(" ---> {}", short(&digest))).await;
        Ok(())
    }

    /// `ARG a=1 b`: each name with its value (a build arg wins over the default).
    fn arg_values(&self, args: &str, vars: &BTreeMap<String, String>) -> Vec<(String, String)> {
        dockerfile::words(args)
            .into_iter()
            .map(|word| {
                let (name, default) = match word.split_once('=') {
                    Some((name, default)) => {
                        (name.to_string(), dockerfile::substitute(default, vars))
                    }
                    None => (word, String::new()),
                };
                let value = self.request.args.get(&name).cloned().unwrap_or(default);
                (name, value)
            })
            .collect()
    }

    async fn from(&mut self, args: &str) -> StepResult<()> {
        if let Some(done) = self.stage.take() {
            self.finished.insert(self.stages.to_string(), done.clone());
            if let Some(name) = done.name.clone() {
                self.finished.insert(name, done);
            }
            self.stages += 1;
        }
        let (_, words) =
            dockerfile::flags_and_words(&dockerfile::substitute(args, &self.global_args));
        let image = words.first().cloned().unwrap_or_default();
        let name = match words.as_slice() {
            [_, as_word, name] if as_word.eq_ignore_ascii_case("as") => Some(name.clone()),
            _ => None,
        };
        let mut stage = if image == "scratch" {
            let mut stage = Stage::default();
            stage.config.env.push(DEFAULT_PATH.into());
            stage
        } else if let Some(earlier) = self.finished.get(&image) {
            Stage {
                layers: earlier.layers.clone(),
                ..earlier.clone()
            }
        } else {
            let state = self.engine.lock();
            let Some(found) = state.images.resolve(&image) else {
                let repository = image.rsplit_once(':').map_or(image.as_str(), |(r, _)| r);
                return Err(format!(
                    "pull access denied for {repository}, repository does not exist or may require 'docker login': denied: requested access to the resource is denied"
                ));
            };
            Stage {
                parent: Some(found.id.clone()),
                config: found.config.clone(),
                ..Stage::default()
            }
        };
        stage.name = name;
        stage.cmd_set = false;
        stage.args.clear();
        let shown = stage
            .parent
            .as_deref()
            .map(short)
            .unwrap_or_default()
            .to_string();
        self.stage = Some(stage);
        self.say(format!(" ---> {shown}")).await;
        Ok(())
    }

    async fn run_command(&mut self, args: &str) -> StepResult<()> {
        let stage = self.stage()?;
        let command = Command::parse(args);
        let env = stage.vars();
        let mut program = program::parse(&command.argv(), &env);
        // Build steps install and configure with tools this engine does not
        // have; those succeed silently, and only the vocabulary runs.
        for (_, step) in &mut program.steps {
            if matches!(step, Step::NotFound(_)) {
                *step = Step::Status(0);
            }
        }
        let container = hex::encode(rand::random::<[u8; 6]>());
        self.say(format!(" ---> Running in {container}")).await;
        let output = Output::new(Phase::Live);
        let context = Context {
            name: format!("build-{container}"),
            ip: None,
            env,
            out: Writer {
                output: output.clone(),
                tty: false,
            },
            stdin: None,
            files: Files::default(),
        };
        // Kept so the program never sees its signals closed.
        let (_signals, receiver) = mpsc::unbounded_channel();
        let mut lines = follow_lines(output.follow());
        let running = async {
            let exit = process::run(program, context, receiver).await;
            output.set_phase(Phase::Ended);
            exit
        };
        let forward = async {
            while let Some(line) = lines.next().await {
                let _ = self.output.send(line.text).await;
            }
        };
        let (exit, ()) = tokio::join!(running, forward);
        if exit.code != 0 {
            return Err(format!(
                "The command '{}' returned a non-zero code: {}",
                command.shown(),
                exit.code
            ));
        }
        self.say(format!("Removing intermediate container {container}"))
            .await;
        self.stage()?
            .add_layer(&format!("RUN {args}"))
            .map_err(|e| e.to_string())
    }

    fn copy(
        &mut self,
        instruction: &Instruction,
        vars: &BTreeMap<String, String>,
    ) -> StepResult<()> {
        let (flags, mut words) =
            dockerfile::flags_and_words(&dockerfile::substitute(&instruction.args, vars));
        if words.len() < 2 {
            return Err(format!(
                "{} requires at least two arguments, but only one was provided. Destination could not be determined.",
                instruction.keyword
            ));
        }
        words.pop();
        let mut digest = String::new();
        for source in &words {
            let url = source.starts_with("http://") || source.starts_with("https://");
            let glob = source.contains(['*', '?', '[']);
            if flags.contains_key("from") || url || glob {
                continue;
            }
            let path = normalize(source).unwrap_or_default();
            let prefix = format!("{path}/");
            let mut found = path.is_empty();
            for (name, content) in &self.context {
                if *name == path || path.is_empty() || name.starts_with(&prefix) {
                    found = true;
                    digest.push_str(name);
                    digest.push_str(&sha256_hex(content.as_deref().unwrap_or_default()));
                }
            }
            if !found {
                return Err(format!(
                    "{} failed: file not found in build context or excluded by .dockerignore: stat {source}: file does not exist",
                    instruction.keyword
                ));
            }
        }
        let step = format!(
            "{} {} {}",
            instruction.keyword,
            instruction.args,
            sha256_hex(digest.as_bytes())
        );
        self.stage()?.add_layer(&step).map_err(|e| e.to_string())
    }

    async fn finish(mut self) -> Result<String> {
        let mut stage = self
            .stage
            .take()
            .ok_or_else(|| RuntimeError::Build("the Dockerfile has no FROM instruction".into()))?;
        stage.config.labels.extend(self.request.labels.clone());
        stage.config.created = time::OffsetDateTime::now_utc().unix_timestamp();
        let raw = stage.config.to_json();
        let id = {
            let mut state = self.engine.lock();
            let id = state
                .images
                .insert(raw, stage.config, stage.parent, stage.layers);
            state.images.tag(&self.request.tag, &id);
            id
        };
        self.say(format!("Successfully built {}", short(&id))).await;
        self.say(format!("Successfully tagged {}", self.request.tag))
            .await;
        Ok(id)
    }
}
