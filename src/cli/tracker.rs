//! `btvod tracker --port 6969`: the built-in tracker, HTTP and UDP on the same port, until
//! Ctrl-C.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use btvod::service::tracker::{TrackerConfig, serve_with_udp};
use clap::Args;

#[derive(Args, Debug)]
pub struct TrackerArgs {
    /// Port to serve HTTP and UDP on (0 = any free port; the chosen one is printed).
    #[arg(long, default_value_t = 6969)]
    pub port: u16,
    /// Address to serve on. Loopback by default: say 0.0.0.0 to serve other machines.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Seconds peers are told to wait between announces.
    #[arg(long, default_value_t = 60)]
    pub interval: u64,
}

pub async fn run(args: TrackerArgs) -> anyhow::Result<()> {
    let addr = SocketAddr::new(args.bind, args.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    // UDP (BEP 15) on the same port, as opentracker does; HTTP alone if that port is taken.
    let udp = match tokio::net::UdpSocket::bind(local).await {
        Ok(socket) => Some(socket),
        Err(e) => {
            eprintln!("tracker: no UDP on {local} ({e}); serving HTTP only");
            None
        }
    };
    eprintln!("tracker: announce URL http://{local}/announce, status page http://{local}/");
    if udp.is_some() {
        eprintln!("tracker: UDP announce URL udp://{local}/announce");
    }
    let config = TrackerConfig {
        interval: Duration::from_secs(args.interval.max(1)),
        ..TrackerConfig::default()
    };
    serve_with_udp(listener, udp, config, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .context("tracker stopped")?;
    eprintln!("tracker: stopped");
    Ok(())
}
