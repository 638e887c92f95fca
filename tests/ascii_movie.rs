//! The generated movie (`scripts/make_ascii_movie.py`) reads, with btvod's own parser, as
//! numbered frames in order, whatever prefix of it has arrived.

use std::process::Command;

use btvod::proto::ascii_movie::{MovieFormat, frames};

#[test]
fn the_generated_walk_parses_into_numbered_frames_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("walk.txt");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/make_ascii_movie.py");
    let made = Command::new("/usr/bin/python3")
        .args([script, "--minutes", "0.2", "--fps", "5", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let movie = std::fs::read(&out).unwrap();
    let format = MovieFormat::Nutella {
        delimiter: "end".into(),
    };
    let all = frames(&movie, &format, true).unwrap();
    assert_eq!(all.len(), 60);
    for (n, f) in all.iter().enumerate() {
        let last = f.text.lines().last().unwrap_or_default();
        assert!(last.contains(&format!("frame {n:05}")), "frame {n}: {last}");
    }
    // Half the file gives the frames whose delimiter is in that half, nothing more.
    let half = &movie[..movie.len() / 2];
    let some = frames(half, &format, false).unwrap();
    let ended = all.iter().filter(|f| f.end <= half.len() as u64).count();
    assert!(ended > 10 && ended < 50, "{ended}");
    assert_eq!(some, all[..ended]);
}
