//! The `import` scenario: a JSON-lines file of resources (one folder per 1,000, each item under
//! its folder) and two user grants per item, imported with `sentinel import resources`'s code
//! while clients Check imported items; the import's rate and the Checks' latencies during it.

use std::io::Write;
use std::time::{Duration, Instant};

use sentinel::proto::v1::permission_service_client::PermissionServiceClient;
use sentinel::proto::v1::{CheckRequest, ResourceRef};
use tonic::transport::Channel;

use super::{authorize, percentile};

/// What the scenario needs of the fixtures.
pub struct Setup<'a> {
    pub url: String,
    pub key: String,
    pub workspace: String,
    /// (access token, user id) of the workspace's members.
    pub users: &'a [(String, String)],
    pub channels: &'a [Channel],
    /// Items to import (each with two grants).
    pub items: usize,
    pub dir: &'a std::path::Path,
}

fn write_file(setup: &Setup<'_>) -> anyhow::Result<(std::path::PathBuf, usize)> {
    let path = setup.dir.join("import.jsonl");
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
    let ws = &setup.workspace;
    let mut lines = 0;
    for i in 0..setup.items {
        let folder = i / 1000;
        if i % 1000 == 0 {
            writeln!(
                out,
                r#"{{"kind":"resource","resource_type":"folder","resource_id":"f-{folder:05}","workspace_id":"{ws}","visibility":"private"}}"#
            )?;
            lines += 1;
        }
        writeln!(
            out,
            r#"{{"kind":"resource","resource_type":"item","resource_id":"i-{i:07}","workspace_id":"{ws}","visibility":"private","parent_type":"folder","parent_id":"f-{folder:05}"}}"#
        )?;
        for (n, permission) in [(i, "view"), (i + 1, "edit")] {
            let user = &setup.users[n % setup.users.len()].1;
            writeln!(
                out,
                r#"{{"kind":"grant","resource_type":"item","resource_id":"i-{i:07}","user_id":"{user}","permission":"{permission}"}}"#
            )?;
        }
        lines += 3;
    }
    out.flush()?;
    Ok((path, lines))
}

/// Runs the scenario and prints its rows.
pub async fn run(setup: Setup<'_>) -> anyhow::Result<()> {
    let started = Instant::now();
    let (file, lines) = write_file(&setup)?;
    println!(
        "import file: {lines} lines ({} MB) written in {:.1} s",
        std::fs::metadata(&file)?.len() >> 20,
        started.elapsed().as_secs_f64()
    );
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let checkers: Vec<_> = (0..4)
        .map(|c| {
            let (token, _) = setup.users[c % setup.users.len()].clone();
            let (key, channel) = (
                setup.key.clone(),
                setup.channels[c % setup.channels.len()].clone(),
            );
            let (done, items) = (done.clone(), setup.items.max(1));
            tokio::spawn(async move {
                let mut client = PermissionServiceClient::new(channel);
                let mut rng = fastrand::Rng::with_seed(c as u64);
                let mut latencies = Vec::new();
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let mut request = tonic::Request::new(CheckRequest {
                        resource: Some(ResourceRef {
                            resource_type: "item".into(),
                            resource_id: format!("i-{:07}", rng.usize(..items)),
                        }),
                        action: "view".into(),
                        consistency: None,
                    });
                    authorize(&mut request, &key, &token);
                    let t = Instant::now();
                    if client.check(request).await.is_ok() {
                        latencies.push(t.elapsed());
                    }
                    // About 400 checks a second a client: a read load beside the import.
                    tokio::time::sleep(Duration::from_micros(2500)).await;
                }
                latencies
            })
        })
        .collect();
    let options = sentinel::import::Options {
        file,
        format: None,
        server: setup.url.clone(),
        service_key: setup.key.clone(),
        batch: 5000,
        checkpoint: 1_000_000,
        resume: false,
        progress: true,
    };
    let summary = sentinel::import::run(&options).await;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut latencies = Vec::new();
    for checker in checkers {
        latencies.extend(checker.await?);
    }
    latencies.sort_unstable();
    let summary = summary?;
    println!("{summary}");
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("| scenario | items | seconds | items/s | Check p50 ms | Check p99 ms | checks |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| import | {} | {:.1} | {:.0} | {:.2} | {:.2} | {} |",
        summary.items,
        summary.elapsed.as_secs_f64(),
        summary.items as f64 / summary.elapsed.as_secs_f64(),
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        latencies.len()
    );
    Ok(())
}
