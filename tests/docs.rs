//! The documentation's shell examples, run as a reader would run them.
//!
//! Every ```sh block of README.md and docs/*.md runs, in the order of its file, in one bash
//! session per file (what a block `export`s is seen by the blocks after it), against a fresh
//! embedded server started from the release's own binary. The reader's spellings are kept:
//! `cargo run --release --` and `sentinel` both run this build's binary, on the server's data
//! dir, and `127.0.0.1:8080` / `localhost:8080` reach the server's port.
//!
//! A block preceded by `<!-- docs-test: parse-only (why) -->` needs what a test cannot have (a
//! cluster, an identity provider, a container engine): it is only checked to be valid bash. A
//! block preceded by `<!-- docs-test: fails -->` shows an error on purpose and must exit non-zero.
//! A fence without a language whose first line is a command is refused: tag it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Run,
    ParseOnly,
    Fails,
}

struct Block {
    file: String,
    line: usize,
    mode: Mode,
    text: String,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The issuer of server and commands alike: what both derive from the default `listen` when a
/// reader runs them, while the test's server listens on a port of its own.
const ISSUER: &str = "http://127.0.0.1:8080";

const COMMANDS: [&str; 6] = [
    "grpcurl ",
    "curl ",
    "sentinel ",
    "cargo ",
    "bash ",
    "export ",
];

/// The shell blocks of one markdown file.
fn blocks(path: &Path) -> Vec<Block> {
    let name = path
        .strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string();
    let text = std::fs::read_to_string(path).expect("markdown file");
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut pending = Mode::Run;
    while i < lines.len() {
        let line = lines[i].trim();
        if let Some(rest) = line.strip_prefix("<!-- docs-test:") {
            pending = if rest.trim_start().starts_with("parse-only") {
                Mode::ParseOnly
            } else if rest.trim_start().starts_with("fails") {
                Mode::Fails
            } else {
                panic!("{name}:{}: unknown docs-test marker", i + 1)
            };
            i += 1;
            continue;
        }
        if let Some(lang) = line.strip_prefix("```") {
            let start = i + 1;
            let mut end = start;
            while end < lines.len() && !lines[end].trim_start().starts_with("```") {
                end += 1;
            }
            // Indented fences (inside a list item) hold indented lines.
            let indent = lines[i].len() - lines[i].trim_start().len();
            let body = lines[start..end]
                .iter()
                .map(|l| {
                    l.get(indent.min(l.len() - l.trim_start().len())..)
                        .unwrap_or(l)
                })
                .collect::<Vec<_>>()
                .join("\n");
            if matches!(lang, "sh" | "bash" | "shell") {
                out.push(Block {
                    file: name.clone(),
                    line: start + 1,
                    mode: pending,
                    text: body,
                });
            } else if lang.is_empty() {
                let first = body.lines().next().unwrap_or_default().trim_start();
                assert!(
                    !COMMANDS.iter().any(|c| first.starts_with(c)),
                    "{name}:{start}: a command in an untagged fence; tag it ```sh"
                );
            } else {
                assert_eq!(
                    pending,
                    Mode::Run,
                    "{name}:{start}: marker before a {lang} block"
                );
            }
            pending = Mode::Run;
            i = end + 1;
            continue;
        }
        i += 1;
    }
    out
}

fn rewrite(text: &str, addr: &str) -> String {
    text.replace("cargo run --release --", "sentinel")
        .replace("127.0.0.1:8080", addr)
        .replace("localhost:8080", addr)
}

fn bash_parses(block: &Block) {
    let output = Command::new("bash")
        .args(["-n", "-c", &block.text])
        .output()
        .expect("bash");
    assert!(
        output.status.success(),
        "{}:{}: not valid bash: {}",
        block.file,
        block.line,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Where grpcurl is: on PATH, or where scripts/test.sh installs it.
fn grpcurl_dir() -> Option<PathBuf> {
    let installed = root().join("target/docs-tools/bin");
    if installed.join("grpcurl").exists() {
        return Some(installed);
    }
    let found = Command::new("sh")
        .args(["-c", "command -v grpcurl"])
        .output()
        .ok()?;
    let path = String::from_utf8(found.stdout).ok()?;
    Path::new(path.trim()).parent().map(Path::to_path_buf)
}

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(data_dir: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sentinel"))
        .arg("serve")
        .env("SENTINEL_DATA_DIR", data_dir)
        .env("SENTINEL_LISTEN", "127.0.0.1:0")
        .env("SENTINEL_ISSUER", ISSUER)
        .env("SENTINEL_LOG", "info")
        .env("SENTINEL_LOG_FORMAT", "text")
        .env_remove("SENTINEL_DATABASE_URL")
        .env_remove("SENTINEL_REDIS_URL")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start the server");
    let addr = common::process::announced_address(child.stderr.take().expect("stderr"));
    Server { child, addr }
}

/// Runs the blocks of one file in one bash session; returns what failed.
fn run_file(blocks: &[Block], grpcurl: &Path) -> Vec<String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_sentinel"), bin.join("sentinel"))
        .expect("link the binary");
    let server = start_server(&data);
    let path = format!(
        "{}:{}:{}",
        bin.display(),
        grpcurl.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // Each block runs in a subshell under `set -e`, so it stops at its first failing command
    // without ending the session; what it exported is handed to the blocks after it.
    let mut script = String::from("set -uo pipefail\ntouch .exported\n");
    for (n, block) in blocks.iter().enumerate() {
        let body = rewrite(&block.text, &server.addr);
        script.push_str(&format!(
            "echo '--- {}:{}'\n( . ./.exported; set -e\n{body}\nexport -p > .exported\n)\n\
             status=$?\n",
            block.file, block.line
        ));
        let wrong = if block.mode == Mode::Fails {
            "[ $status -eq 0 ]"
        } else {
            "[ $status -ne 0 ]"
        };
        script.push_str(&format!(
            "if {wrong}; then echo \"DOCS-FAILED {n} status $status\" >&2; fi\n"
        ));
    }
    let started = Instant::now();
    let output = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("PATH", path)
        .env("SENTINEL_DATA_DIR", &data)
        .env("SENTINEL_ISSUER", ISSUER)
        .env("SENTINEL_LOG", "warn")
        .env_remove("SENTINEL_DATABASE_URL")
        .env_remove("SENTINEL_REDIS_URL")
        .stdin(Stdio::null())
        .output()
        .expect("bash");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    eprintln!("ran {} blocks in {:?}", blocks.len(), started.elapsed());
    drop(server);
    let mut failed: Vec<String> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("DOCS-FAILED "))
        .filter_map(|rest| rest.split_whitespace().next()?.parse::<usize>().ok())
        .map(|n| {
            let b = &blocks[n];
            let want = if b.mode == Mode::Fails {
                "should fail but succeeded"
            } else {
                "failed"
            };
            format!("{}:{} {want}", b.file, b.line)
        })
        .collect();
    if !output.status.success() {
        failed.push(format!("the session itself exited with {}", output.status));
    }
    failed
}

#[test]
fn every_shell_example_in_the_docs_runs() {
    let grpcurl = match grpcurl_dir() {
        Some(dir) => dir,
        None => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(!ci, "grpcurl is needed (scripts/test.sh installs it)");
            eprintln!("SKIPPED docs examples: grpcurl not found (scripts/test.sh installs it)");
            return;
        }
    };
    let mut failures = Vec::new();
    let mut ran = 0;
    for file in markdown_files() {
        let all = blocks(&file);
        for block in &all {
            bash_parses(block);
        }
        let runnable: Vec<Block> = all
            .into_iter()
            .filter(|b| b.mode != Mode::ParseOnly)
            .collect();
        if runnable.is_empty() {
            continue;
        }
        ran += runnable.len();
        failures.extend(run_file(&runnable, &grpcurl));
    }
    assert!(ran >= 10, "only {ran} runnable examples found");
    assert!(
        failures.is_empty(),
        "examples that do not work:\n{}",
        failures.join("\n")
    );
}

#[test]
fn markers_and_fences_are_read_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("x.md");
    std::fs::write(
        &file,
        "text\n```sh\necho one\n```\n<!-- docs-test: parse-only (needs a cluster) -->\n```sh\n\
         kubectl get pods\n```\n<!-- docs-test: fails -->\n```sh\nfalse\n```\n```toml\na = 1\n```\n",
    )
    .unwrap();
    let found = blocks(&file);
    let modes: Vec<Mode> = found.iter().map(|b| b.mode).collect();
    assert_eq!(modes, [Mode::Run, Mode::ParseOnly, Mode::Fails]);
    assert_eq!(found[0].text, "echo one");
    assert_eq!(found[0].line, 3);
    assert_eq!(
        rewrite(
            "cargo run --release -- token issue; curl http://127.0.0.1:8080/x",
            "1.2.3.4:5"
        ),
        "sentinel token issue; curl http://1.2.3.4:5/x"
    );
}
