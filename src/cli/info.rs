//! `btvod info FILE.torrent`: prints what a torrent holds, or one clear line if it is bad.

use std::path::PathBuf;

use anyhow::Context;
use btvod::proto::metainfo::Metainfo;
use clap::Args;

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// The .torrent file.
    pub torrent: PathBuf,
}

pub fn run(args: InfoArgs) -> anyhow::Result<()> {
    let meta = Metainfo::load(&args.torrent)
        .with_context(|| format!("{} is not a usable torrent", args.torrent.display()))?;
    println!("{}", meta.describe().trim_end());
    for w in &meta.warnings {
        eprintln!("warning: {w}");
    }
    Ok(())
}
