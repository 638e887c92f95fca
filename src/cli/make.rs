//! `btvod make-torrent PATH -o OUT.torrent --announce URL`: hashes content into a .torrent.

use std::path::PathBuf;

use anyhow::Context;
use btvod::make_torrent::{MakeTorrentOptions, make_torrent};
use btvod::proto::metainfo::Metainfo;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Args, Debug)]
pub struct MakeArgs {
    /// The file or directory to describe.
    pub path: PathBuf,
    /// Where to write the .torrent (default: NAME.torrent in the current directory).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Tracker announce URL (repeatable; each becomes its own tier, in order).
    #[arg(short, long = "announce", value_name = "URL")]
    pub announce: Vec<String>,
    /// Web seed URL (BEP 19; repeatable). btvod's VoD client uses the first as its server.
    #[arg(long = "web-seed", value_name = "URL")]
    pub web_seeds: Vec<String>,
    /// Piece length, e.g. 256KiB or 1MiB (default: chosen from the content size).
    #[arg(long, value_parser = parse_piece_length)]
    pub piece_length: Option<u32>,
    /// Mark the torrent private (no DHT or peer exchange).
    #[arg(long)]
    pub private: bool,
    /// Free-text comment.
    #[arg(long)]
    pub comment: Option<String>,
    /// Leave out the creation date, so the same content always gives the same file.
    #[arg(long)]
    pub no_date: bool,
}

fn parse_piece_length(s: &str) -> Result<u32, String> {
    let n = btvod::units::parse_byte_size(s, 1).map_err(|e| e.to_string())?;
    u32::try_from(n).map_err(|_| format!("piece length {n} is too large"))
}

pub fn run(args: MakeArgs) -> anyhow::Result<()> {
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| super::default_torrent_path(&args.path));
    let creation_date = (!args.no_date).then(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    });
    let opts = MakeTorrentOptions {
        path: args.path.clone(),
        piece_length: args.piece_length,
        announce: args.announce,
        web_seeds: args.web_seeds,
        private: args.private,
        comment: args.comment,
        created_by: None,
        creation_date,
    };
    let bar = ProgressBar::hidden();
    bar.set_style(
        ProgressStyle::with_template(
            "hashing {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut shown = false;
    let bytes = make_torrent(&opts, &mut |done, total| {
        // A bar only for inputs that take a noticeable time to hash.
        if !shown && total >= 64 << 20 {
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            bar.set_length(total);
            shown = true;
        }
        bar.set_position(done);
    })
    .with_context(|| format!("cannot make a torrent of {}", args.path.display()))?;
    bar.finish_and_clear();
    std::fs::write(&output, &bytes)
        .with_context(|| format!("cannot write {}", output.display()))?;
    let meta = Metainfo::from_bytes(&bytes).context("the torrent just made does not parse")?;
    eprintln!(
        "wrote {} ({} pieces of {} bytes), info-hash {}",
        output.display(),
        meta.geometry.piece_count(),
        meta.geometry.piece_len(),
        meta.info_hash
    );
    Ok(())
}
