//! `file:` VoD servers: a complete copy of the content on this machine, read with positional
//! reads off the async runtime (as the original course framework copied from a full copy).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{VodServerError, VodServerMeter};
use crate::proto::geometry::FileSlice;
use crate::proto::metainfo::Metainfo;

pub(super) struct LocalCopy {
    root: PathBuf,
    /// Where each file of the torrent is, with its torrent length.
    files: Vec<(PathBuf, u64)>,
}

impl LocalCopy {
    /// `rest` is what follows `file:`: `//host/path` is read as a URL, anything else as a path.
    pub(super) fn new(url: &str, rest: &str, meta: &Metainfo) -> Result<LocalCopy, VodServerError> {
        let invalid = |reason: &str| VodServerError::InvalidUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let root = if rest.starts_with("//") {
            let parsed = url::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
            parsed
                .to_file_path()
                .map_err(|()| invalid("not a path on this machine"))?
        } else if rest.is_empty() {
            return Err(invalid("no path after `file:`"));
        } else {
            PathBuf::from(rest)
        };
        let files = if meta.is_single_file {
            let length = meta.files.first().map_or(0, |f| f.length);
            vec![(root.clone(), length)]
        } else {
            meta.files
                .iter()
                .map(|entry| {
                    let mut path = root.clone();
                    path.extend(&entry.path);
                    (path, entry.length)
                })
                .collect()
        };
        Ok(LocalCopy { root, files })
    }

    pub(super) fn root(&self) -> &Path {
        &self.root
    }

    /// Every non-empty file exists, is a regular file and has its torrent length.
    pub(super) async fn check(&self) -> Result<(), VodServerError> {
        let files = self.files.clone();
        run_blocking(move || {
            for (path, expected) in files.into_iter().filter(|(_, len)| *len > 0) {
                let meta = std::fs::metadata(&path).map_err(|source| VodServerError::FileIo {
                    path: path.clone(),
                    source,
                })?;
                if !meta.is_file() || meta.len() != expected {
                    return Err(VodServerError::LengthMismatch {
                        what: path.display().to_string(),
                        expected,
                        actual: meta.len(),
                    });
                }
            }
            Ok(())
        })
        .await
    }

    /// Appends the slices' bytes to `out` (returned), counting each slice once it is read.
    pub(super) async fn read(
        &self,
        slices: Vec<FileSlice>,
        mut out: Vec<u8>,
        meter: &VodServerMeter,
    ) -> Result<Vec<u8>, VodServerError> {
        for slice in slices {
            let Some((path, _)) = self.files.get(slice.file) else {
                // file_slices only names files of this torrent.
                return Err(VodServerError::Task(format!("no file {}", slice.file)));
            };
            let path = path.clone();
            let start = out.len();
            // The caller capped the whole fetch, so the slice length fits in usize.
            out.resize(start + slice.len as usize, 0);
            out = run_blocking(move || {
                let io_err = |source| VodServerError::FileIo {
                    path: path.clone(),
                    source,
                };
                let file = File::open(&path).map_err(io_err)?;
                let buf = out.get_mut(start..).unwrap_or_default();
                file.read_exact_at(buf, slice.file_offset).map_err(io_err)?;
                Ok(out)
            })
            .await?;
            meter.add_request();
            meter.add_bytes(slice.len);
        }
        Ok(out)
    }
}

async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, VodServerError> + Send + 'static,
) -> Result<T, VodServerError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| VodServerError::Task(e.to_string()))?
}
