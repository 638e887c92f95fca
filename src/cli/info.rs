//! `btvod info TORRENT`: prints what a torrent or a magnet link holds (a magnet's metadata with
//! `--fetch`), or one clear line if it is bad.

use anyhow::Context;
use btvod::proto::magnet::Magnet;
use btvod::proto::metainfo::Metainfo;
use clap::Args;

use super::PeerOptions;

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// The .torrent file, or a magnet link (quote it: it holds `&`).
    pub torrent: String,
    /// For a magnet link: fetch its metadata from the swarm and describe the torrent. It is
    /// saved as INFOHASH.torrent in the current directory.
    #[arg(long)]
    pub fetch: bool,
    #[command(flatten)]
    pub common: PeerOptions,
}

pub async fn run(mut args: InfoArgs) -> anyhow::Result<()> {
    let link = super::source::magnet(&args.torrent)?;
    let meta = match (&link, args.fetch) {
        (Some(link), false) => {
            println!("{}", describe_magnet(link).trim_end());
            return Ok(());
        }
        (Some(_), true) => {
            let here = std::path::Path::new(".");
            let dht = args.common.dht().await;
            super::source::load(&args.torrent, here, &mut args.common, dht.as_ref())
                .await?
                .meta
        }
        (None, _) => Metainfo::load(std::path::Path::new(&args.torrent))
            .with_context(|| format!("{} is not a usable torrent", args.torrent))?,
    };
    println!("{}", meta.describe().trim_end());
    for w in &meta.warnings {
        eprintln!("warning: {w}");
    }
    Ok(())
}

/// What the link says; the hints it dropped were already logged as warnings.
fn describe_magnet(m: &Magnet) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "Magnet link (metadata not fetched: add --fetch)");
    let _ = writeln!(out, "Info-hash:    {}", m.info_hash);
    if let Some(name) = &m.display_name {
        let _ = writeln!(out, "Name:         {name}");
    }
    if let Some(len) = m.exact_length {
        let size = btvod::units::human_bytes(len);
        let _ = writeln!(out, "Total size:   {len} bytes ({size})");
    }
    if let Some(so) = m.selection() {
        let _ = writeln!(out, "Files:        only {so}");
    }
    let lists: [(&str, Vec<String>); 3] = [
        ("Trackers", m.trackers.clone()),
        ("Peers", m.peers.iter().map(ToString::to_string).collect()),
        ("Web seeds", m.web_seeds.clone()),
    ];
    for (label, items) in lists.iter().filter(|(_, items)| !items.is_empty()) {
        let _ = writeln!(out, "{label} ({}):", items.len());
        for item in items {
            let _ = writeln!(out, "  {item}");
        }
    }
    out
}
