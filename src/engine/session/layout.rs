//! Where a torrent's bytes live on disk: the content the user named, mapped to a root
//! directory and the torrent's files under it.

use std::path::{Path, PathBuf};

use super::SessionError;
use crate::engine::storage::StorageLayout;
use crate::proto::metainfo::Metainfo;

/// Where the torrent's bytes live.
#[derive(Debug, Clone)]
pub enum Content {
    /// Download into this directory (the torrent's name is created inside it).
    DownloadDir(PathBuf),
    /// Existing content to seed: the file itself (single-file torrent) or the torrent's top
    /// directory (multi-file), under any name.
    Existing(PathBuf),
    /// Download to this path: the file itself (single-file torrent) or the torrent's top
    /// directory (multi-file), under any name.
    SaveAs(PathBuf),
}

/// Maps a torrent onto disk: files relative to a root directory.
pub fn layout(meta: &Metainfo, content: &Content) -> Result<(StorageLayout, bool), SessionError> {
    let (root, files, existing) = match content {
        Content::DownloadDir(dir) => {
            let files = (0..meta.files.len())
                .map(|i| (meta.relative_path(i), meta.files[i].length))
                .collect();
            (dir.clone(), files, false)
        }
        Content::Existing(path) | Content::SaveAs(path) => {
            let existing = matches!(content, Content::Existing(_));
            if meta.is_single_file {
                let parent = parent_of(path)?;
                let name = path
                    .file_name()
                    .ok_or_else(|| SessionError::BadContentPath(path.clone()))?;
                (
                    parent,
                    vec![(PathBuf::from(name), meta.total_len())],
                    existing,
                )
            } else {
                let files = meta
                    .files
                    .iter()
                    .map(|f| (f.path.iter().collect::<PathBuf>(), f.length))
                    .collect();
                (path.clone(), files, existing)
            }
        }
    };
    Ok((
        StorageLayout {
            root,
            files,
            geometry: meta.geometry.clone(),
            piece_hashes: meta.piece_hashes().to_vec(),
        },
        existing,
    ))
}

fn parent_of(path: &Path) -> Result<PathBuf, SessionError> {
    match path.parent() {
        Some(p) if p.as_os_str().is_empty() => Ok(PathBuf::from(".")),
        Some(p) => Ok(p.to_path_buf()),
        None => Err(SessionError::BadContentPath(path.to_path_buf())),
    }
}
