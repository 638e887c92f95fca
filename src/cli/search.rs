//! `btvod search NAME`: Nutella's search. A query multicast on the LAN; every answer printed on
//! its own line with a magnet link whose `x.pe` is the peer that answered.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use btvod::engine::search::ask;
use btvod::units::human_bytes;
use clap::Args;

#[derive(Args, Debug)]
pub struct SearchArgs {
    /// Words a torrent's name must all have (runs of letters and digits, any case).
    #[arg(required = true)]
    pub name: Vec<String>,
    /// Seconds to wait for answers.
    #[arg(long, default_value_t = 3.0)]
    pub wait: f64,
    /// The IPv4 address of the interface to ask on (127.0.0.1: this machine only). Default:
    /// the one the routing table picks for multicast.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind: IpAddr,
}

pub async fn run(args: SearchArgs) -> anyhow::Result<()> {
    if !args.wait.is_finite() || args.wait <= 0.0 || args.wait > 600.0 {
        bail!("--wait must be a number of seconds above 0 and at most 600");
    }
    let IpAddr::V4(interface) = args.bind else {
        bail!("--bind must be an IPv4 address (the search group is IPv4)");
    };
    let words = args.name.join(" ");
    let wait = Duration::from_secs_f64(args.wait);
    let found = ask(interface, &words, wait)
        .await
        .with_context(|| format!("cannot ask on {interface}"))?;
    if found.is_empty() {
        println!("nobody answered for \"{words}\" within {:.1} s", args.wait);
        return Ok(());
    }
    for (peer, answer) in found {
        let dn: String = url::form_urlencoded::byte_serialize(answer.name.as_bytes()).collect();
        let host = match peer.ip() {
            IpAddr::V6(v6) => format!("[{v6}]:{}", peer.port()),
            IpAddr::V4(v4) => format!("{v4}:{}", peer.port()),
        };
        println!(
            "{}  {}  {peer}  magnet:?xt=urn:btih:{}&dn={dn}&x.pe={host}",
            answer.name,
            human_bytes(answer.size),
            answer.info_hash
        );
    }
    Ok(())
}
