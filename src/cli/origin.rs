//! `btvod origin --content PATH --port N`: the metered VoD origin, until Ctrl-C or SIGTERM,
//! then one line with what it served.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use btvod::service::origin::{OriginConfig, serve};
use clap::Args;

/// Serves a torrent's complete content as the paid VoD server: byte ranges, every body byte
/// metered (JSON at /stats, one line on exit).
#[derive(Args, Debug)]
pub struct OriginArgs {
    /// The content: the file of a single-file torrent (served at / and /<name>) or the top
    /// directory of a multi-file one (files at /<dir name>/<path> and /<path>, as BEP 19 web
    /// seeds are asked).
    #[arg(long, value_name = "PATH")]
    pub content: PathBuf,
    /// Port to serve on (0 = any free port; the chosen one is printed).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Address to serve on. Loopback by default: say 0.0.0.0 to serve other machines.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Wait this many milliseconds before answering each request (models a distant server).
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub latency_ms: u64,
    /// Total body rate for all clients together, in bytes per second unless a unit is given
    /// (1MiB, 500KB, 8Mbit). 0 = unlimited.
    #[arg(long, value_name = "BYTES_PER_S", default_value = "0", value_parser = parse_bytes_per_s)]
    pub rate: u64,
}

/// A bare number is bytes per second here (unlike peer limits, which are KiB/s).
fn parse_bytes_per_s(s: &str) -> Result<u64, String> {
    if s.trim() == "0" {
        return Ok(0);
    }
    btvod::units::parse_byte_size(s, 1).map_err(|e| e.to_string())
}

pub async fn run(args: OriginArgs) -> anyhow::Result<()> {
    std::fs::metadata(&args.content)
        .with_context(|| format!("cannot serve {}", args.content.display()))?;
    let addr = SocketAddr::new(args.bind, args.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    let mut config = OriginConfig::new(&args.content);
    config.latency = Duration::from_millis(args.latency_ms);
    config.rate = (args.rate > 0).then_some(args.rate);
    eprintln!(
        "origin: serving {} at http://{local}/ (meter at http://{local}/stats)",
        args.content.display()
    );
    let stats = serve(listener, config, stop_signal())
        .await
        .with_context(|| format!("origin for {} stopped", args.content.display()))?;
    eprintln!("origin: stopped; {stats}");
    Ok(())
}

/// Ctrl-C, or SIGTERM from a script stopping its world: both end with the meter line.
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(e) => {
            tracing::warn!("cannot watch for SIGTERM ({e}); stop with Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
