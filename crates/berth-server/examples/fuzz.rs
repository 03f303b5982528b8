//! A mutation fuzzer over the manifest parser, the upload sniffer and the tar
//! checker: seeds are mutated at random (bytes flipped, cut, spliced, repeated)
//! for a fixed time; any panic is a finding. Run by `bench/fuzz.sh`.
//!
//! `cargo run --release -p berth-server --example fuzz -- SECONDS [SEED]`

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: fast, deterministic per seed, good enough to drive mutations.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const MANIFESTS: &[&str] = &[
    include_str!("../../../examples/hello/berth.yml"),
    "app: shop\nservices:\n  web:\n    build: .\n    port: 8080\n    health: /health\n    scale: {count: 2, memory: 256}\n  worker:\n    image: busybox\n    command: [sh, -c, 'sleep 1']\n",
    "services:\n  web:\n    image: x\n    environment: [A=1, B]\n    termination: {grace: 5}\n",
    "a: &a [1, 2]\nb: &b [*a, *a, *a, *a]\nc: &c [*b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c]\n",
    "services: {web: {image: x, port: 99999999999999999999}}\n",
    "kind: Pod\nspec:\n  containers:\n  - name: web\n    image: x\n    ports: [{containerPort: 80}]\n",
];

const TOKENS: &[&str] = &[
    "\n",
    ": ",
    "- ",
    "[",
    "]",
    "{",
    "}",
    "&a ",
    "*a",
    "!!str ",
    "? ",
    "|\n",
    ">\n",
    "'",
    "\"",
    "\t",
    "#",
    "~",
    "null",
    "0x",
    "-1",
    "1e999",
    "services:",
    "port:",
    "image:",
    "<<: *a\n",
    "\u{feff}",
    "\u{0}",
    "é",
    "%YAML 1.2\n",
    "---\n",
    "...\n",
];

fn mutate(rng: &mut Rng, seed: &[u8], pool: &[&[u8]]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..=rng.below(8) {
        let at = rng.below(data.len() + 1);
        match rng.below(7) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 => data.truncate(at),
            2 => {
                let end = (at + rng.below(64)).min(data.len());
                data.drain(at..end);
            }
            3 => {
                let t = TOKENS[rng.below(TOKENS.len())].as_bytes();
                data.splice(at..at, t.iter().copied());
            }
            4 => {
                let other = pool[rng.below(pool.len())];
                let from = rng.below(other.len());
                let len = rng.below(other.len() - from + 1);
                data.splice(at..at, other[from..from + len].iter().copied());
            }
            5 => {
                let end = (at + rng.below(16)).min(data.len());
                let piece = data[at..end].to_vec();
                for _ in 0..rng.below(50) {
                    data.splice(at..at, piece.iter().copied());
                }
            }
            _ => {
                let i = rng.below(data.len() + 1);
                data.insert(i, rng.next() as u8);
            }
        }
    }
    data
}

fn tar_seeds() -> Vec<Vec<u8>> {
    let mut seeds = vec![];
    let mut b = tar::Builder::new(Vec::new());
    for (name, body) in [
        ("berth.yml", MANIFESTS[0]),
        ("www/index.html", "<h1>hi</h1>"),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        let _ = b.append_data(&mut h, name, body.as_bytes());
    }
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    let _ = b.append_link(&mut h, "link", "www/index.html");
    if let Ok(t) = b.into_inner() {
        seeds.push(t);
    }
    seeds
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let secs: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(30);
    let seed: u64 = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15);
    let mut rng = Rng(seed | 1);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let scratch = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: no temp dir: {e}");
            std::process::exit(2);
        }
    };
    // Panics are findings: report them, don't print each backtrace.
    std::panic::set_hook(Box::new(|_| {}));
    let manifest_pool: Vec<&[u8]> = MANIFESTS.iter().map(|m| m.as_bytes()).collect();
    let tars = tar_seeds();
    let tar_pool: Vec<&[u8]> = tars.iter().map(Vec::as_slice).collect();
    let (mut manifests, mut uploads, mut panics, mut refused) = (0u64, 0u64, 0u64, 0u64);
    // Fixed bombs first: deep nesting and alias fan-out must be refused, not crash.
    let bombs = [
        "a: ".to_string() + &"[".repeat(100_000),
        "a: ".to_string() + &"{b: ".repeat(50_000),
        (0..12)
            .map(|i| {
                if i == 0 {
                    "l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n".to_string()
                } else {
                    format!(
                        "l{i}: &l{i} [{}]\n",
                        vec![format!("*l{}", i - 1); 10].join(", ")
                    )
                }
            })
            .collect::<String>(),
    ];
    for bomb in &bombs {
        let t = Instant::now();
        let r = catch_unwind(|| berth_core::parse_manifest("berth.yml", bomb));
        manifests += 1;
        match r {
            Err(_) => panics += 1,
            Ok(Ok(_)) => {}
            Ok(Err(_)) => refused += 1,
        }
        println!(
            "bomb of {} bytes: answered in {:?}",
            bomb.len(),
            t.elapsed()
        );
    }
    let mut n = 0u64;
    while Instant::now() < deadline {
        n += 1;
        if n.is_multiple_of(2) {
            let seed = manifest_pool[rng.below(manifest_pool.len())];
            let input = mutate(&mut rng, seed, &manifest_pool);
            let text = String::from_utf8_lossy(&input);
            manifests += 1;
            match catch_unwind(|| berth_core::parse_manifest("berth.yml", &text)) {
                Err(_) => {
                    panics += 1;
                    eprintln!("PANIC in parse_manifest on {:?}", text);
                }
                Ok(Err(_)) => refused += 1,
                Ok(Ok(_)) => {}
            }
        } else {
            let seed = tar_pool[rng.below(tar_pool.len())];
            let input = mutate(&mut rng, seed, &tar_pool);
            uploads += 1;
            let path = scratch.path().join("upload.tar");
            let dest = scratch.path().join(format!("out{}", n % 4));
            let _ = std::fs::remove_dir_all(&dest);
            if std::fs::write(&path, &input).is_err() || std::fs::create_dir_all(&dest).is_err() {
                eprintln!("error: cannot write to the scratch dir");
                std::process::exit(2);
            }
            let r = catch_unwind(AssertUnwindSafe(|| {
                berth_server::builds::sniff(&input[..input.len().min(512)])?;
                berth_server::builds::extract_source(&path, &dest).map(|_| ())
            }));
            match r {
                Err(_) => {
                    panics += 1;
                    eprintln!("PANIC in the tar checker; input kept at {}", path.display());
                    let _ = std::fs::copy(&path, format!("fuzz-crash-{n}.tar"));
                }
                Ok(Err(_)) => refused += 1,
                Ok(Ok(())) => {}
            }
        }
    }
    println!(
        "fuzz: {secs}s seed {seed}: {} inputs ({manifests} manifests, {uploads} uploads), {refused} refused with an error, {panics} panics",
        manifests + uploads
    );
    if panics > 0 {
        std::process::exit(1);
    }
}
