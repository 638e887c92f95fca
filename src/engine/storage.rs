//! Pieces on disk: maps a torrent's pieces onto its files, writes verified pieces, reads blocks
//! for uploads, and rechecks what is already there to resume. Synchronous, positional std I/O
//! (`pread`/`pwrite`), safe to share as `Arc<Storage>` among blocking tasks.

mod error;
mod handles;
mod paths;
mod recheck;

use std::collections::HashSet;
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use sha1::{Digest, Sha1};

use crate::proto::geometry::{BlockRef, Geometry, PieceIndex};

pub use error::StorageError;
use handles::HandleCache;
use paths::Access;
pub use recheck::default_recheck_threads;

/// Open file handles kept at most; more files than this are reopened on demand.
pub const OPEN_FILES_LIMIT: usize = 64;

/// Where a torrent's content lives, in plain values (no dependency on the metainfo type).
///
/// Single-file torrent: `root` = download directory, `files` = `[(name, length)]`.
/// Multi-file torrent: `root` = download directory, each path = `name/<path components>`.
#[derive(Clone, Debug)]
pub struct StorageLayout {
    pub root: PathBuf,
    /// Relative paths (plain `Normal` components only; checked again on open) and lengths, in
    /// the torrent's order.
    pub files: Vec<(PathBuf, u64)>,
    pub geometry: Geometry,
    pub piece_hashes: Vec<[u8; 20]>,
}

impl StorageLayout {
    pub fn new(
        root: impl Into<PathBuf>,
        files: Vec<(PathBuf, u64)>,
        geometry: Geometry,
        piece_hashes: Vec<[u8; 20]>,
    ) -> Self {
        Self {
            root: root.into(),
            files,
            geometry,
            piece_hashes,
        }
    }

    /// Files, geometry and hashes must describe the same torrent; paths must stay under root.
    fn validate(&self) -> Result<(), StorageError> {
        let extents = self.geometry.files();
        if extents.len() != self.files.len() {
            return Err(StorageError::FileCountMismatch {
                listed: self.files.len(),
                in_geometry: extents.len(),
            });
        }
        let mut seen = HashSet::new();
        for ((path, len), extent) in self.files.iter().zip(extents) {
            paths::check_relative(&self.root, path)?;
            if *len != extent.length {
                return Err(StorageError::FileLengthMismatch {
                    path: path.clone(),
                    listed: *len,
                    in_geometry: extent.length,
                });
            }
            if !seen.insert(path.as_path()) {
                return Err(StorageError::DuplicatePath { path: path.clone() });
            }
        }
        let pieces = self.geometry.piece_count();
        if self.piece_hashes.len() != pieces as usize {
            return Err(StorageError::HashCountMismatch {
                pieces,
                hashes: self.piece_hashes.len(),
            });
        }
        Ok(())
    }
}

/// A torrent's files opened for downloading ([`Storage::open`]) or seeding
/// ([`Storage::open_existing`]).
pub struct Storage {
    layout: StorageLayout,
    access: Access,
    handles: HandleCache,
    /// Files written since the last `sync`, so `sync` also reaches files whose handle was
    /// evicted (fsync through a fresh descriptor flushes the file's dirty pages).
    dirty: Vec<AtomicBool>,
    /// Per file, the region `open` itself created (a sparse hole with no data) while the file
    /// has not been written since: a recheck need not read it, since it cannot hold a piece.
    fresh: Vec<Option<Range<u64>>>,
    /// Per file, whether anything was written since `open` (never cleared, unlike `dirty`).
    written: Vec<AtomicBool>,
    /// The first write that failed (disk full, quota, read-only or failing disk). It is not
    /// retried: every later write is refused without touching the disk, so a full disk is
    /// reported once instead of buying the same piece again and again, and the caller
    /// ([`Storage::write_failure`]) stops with it.
    write_failure: OnceLock<String>,
}

/// Whether a read filled the whole buffer, or stopped at a missing or short file.
enum ReadOutcome {
    Complete,
    Incomplete { file: usize },
}

impl Storage {
    /// Opens for downloading: creates missing directories and files, extends short files with
    /// `set_len` (sparse), refuses longer files, paths out of root and symlinks on the way.
    pub fn open(layout: StorageLayout) -> Result<Storage, StorageError> {
        layout.validate()?;
        let mut fresh = Vec::with_capacity(layout.files.len());
        for (path, len) in &layout.files {
            fresh.push(paths::prepare_for_download(&layout.root, path, *len)?);
        }
        tracing::debug!(root = %layout.root.display(), files = layout.files.len(), "storage opened for download");
        let mut storage = Self::new(layout, Access::ReadWrite);
        storage.fresh = fresh;
        Ok(storage)
    }

    /// Opens existing content read-only for seeding: every file must be there with its length.
    pub fn open_existing(layout: StorageLayout) -> Result<Storage, StorageError> {
        layout.validate()?;
        for (path, len) in &layout.files {
            paths::check_for_seeding(&layout.root, path, *len)?;
        }
        tracing::debug!(root = %layout.root.display(), files = layout.files.len(), "storage opened for seeding");
        Ok(Self::new(layout, Access::ReadOnly))
    }

    fn new(layout: StorageLayout, access: Access) -> Self {
        let layout_files = layout.files.len();
        let dirty = layout
            .files
            .iter()
            .map(|_| AtomicBool::new(false))
            .collect();
        Self {
            layout,
            access,
            handles: HandleCache::new(OPEN_FILES_LIMIT),
            dirty,
            fresh: Vec::new(),
            written: (0..layout_files).map(|_| AtomicBool::new(false)).collect(),
            write_failure: OnceLock::new(),
        }
    }

    pub fn geometry(&self) -> &Geometry {
        &self.layout.geometry
    }

    pub fn root(&self) -> &Path {
        &self.layout.root
    }

    /// Whether `data` is exactly the piece the torrent describes (length and SHA-1).
    pub fn verify(&self, piece: PieceIndex, data: &[u8]) -> bool {
        let size = self.geometry().piece_size(piece) as usize;
        data.len() == size && self.hash_matches(piece, data)
    }

    fn hash_matches(&self, piece: PieceIndex, data: &[u8]) -> bool {
        let digest: [u8; 20] = Sha1::digest(data).into();
        self.layout
            .piece_hashes
            .get(piece.as_usize())
            .is_some_and(|expected| *expected == digest)
    }

    /// The first failed write (`cannot write FILE: No space left on device ...`), if any: the
    /// download cannot go on, and the pieces written before it are intact.
    pub fn write_failure(&self) -> Option<&str> {
        self.write_failure.get().map(String::as_str)
    }

    /// Writes a whole piece (normally already verified) across the files it spans. After a
    /// failed write, refuses every piece (see [`Storage::write_failure`]).
    pub fn write_piece(&self, piece: PieceIndex, data: &[u8]) -> Result<(), StorageError> {
        if self.access == Access::ReadOnly {
            return Err(StorageError::ReadOnly { piece: piece.get() });
        }
        if let Some(first) = self.write_failure.get() {
            return Err(StorageError::AfterWriteFailure {
                piece: piece.get(),
                first: first.clone(),
            });
        }
        self.check_len(piece, self.geometry().piece_size(piece), data.len())?;
        let mut rest = data;
        for slice in self
            .geometry()
            .file_slices(self.geometry().piece_range(piece))
        {
            // Slices sum to the piece size, which is data.len(): split_at cannot fail.
            let Some((chunk, tail)) = rest.split_at_checked(slice.len as usize) else {
                return Err(self.buffer_size(piece, data.len()));
            };
            rest = tail;
            let path = self.full_path(slice.file);
            let Some(file) = self.handle(slice.file)? else {
                return Err(StorageError::Missing { path });
            };
            if let Some(flag) = self.written.get(slice.file) {
                flag.store(true, Ordering::Release);
            }
            if let Some(flag) = self.dirty.get(slice.file) {
                flag.store(true, Ordering::Release);
            }
            if let Err(e) = file.write_all_at(chunk, slice.file_offset) {
                let error = StorageError::io("write", path, e);
                let _ = self.write_failure.set(error.to_string());
                return Err(error);
            }
        }
        Ok(())
    }

    /// Reads any span inside a piece (for uploads): `buf` must be exactly `block.len()` long.
    pub fn read_block(&self, block: BlockRef, buf: &mut [u8]) -> Result<(), StorageError> {
        let piece = block.piece();
        self.check_len(piece, block.len(), buf.len())?;
        let start = self.geometry().piece_range(piece).start + u64::from(block.offset());
        self.read_complete(piece, start..start + u64::from(block.len()), buf)
    }

    /// Reads bytes `range` of the torrent's byte stream, which must lie inside one piece (for
    /// readers of verified pieces): `buf` must be exactly as long as the range.
    pub fn read_span(&self, range: Range<u64>, buf: &mut [u8]) -> Result<(), StorageError> {
        let piece = self
            .geometry()
            .piece_at(range.start)
            .filter(|p| range.end <= self.geometry().piece_range(*p).end && range.start < range.end)
            .ok_or(StorageError::BadSpan {
                start: range.start,
                end: range.end,
            })?;
        let len = u32::try_from(range.end - range.start).unwrap_or(u32::MAX);
        self.check_len(piece, len, buf.len())?;
        self.read_complete(piece, range, buf)
    }

    /// Reads a whole piece into `buf`, resized to the piece's length (capacity is reused).
    pub fn read_piece(&self, piece: PieceIndex, buf: &mut Vec<u8>) -> Result<(), StorageError> {
        buf.resize(self.geometry().piece_size(piece) as usize, 0);
        self.read_complete(piece, self.geometry().piece_range(piece), buf)
    }

    /// Reads the piece from disk and checks its hash; a missing or short file means `false`.
    pub fn check_piece(&self, piece: PieceIndex) -> Result<bool, StorageError> {
        let mut buf = Vec::new();
        self.check_piece_into(piece, &mut buf)
    }

    /// `check_piece` with a caller's buffer, so a recheck allocates once per thread.
    fn check_piece_into(&self, piece: PieceIndex, buf: &mut Vec<u8>) -> Result<bool, StorageError> {
        if self.touches_fresh_region(piece) {
            // Zeros just made by `open`: reading and hashing them would only cost time.
            return Ok(false);
        }
        buf.resize(self.geometry().piece_size(piece) as usize, 0);
        match self.read_range(piece, self.geometry().piece_range(piece), buf)? {
            ReadOutcome::Complete => Ok(self.hash_matches(piece, buf)),
            ReadOutcome::Incomplete { .. } => Ok(false),
        }
    }

    /// Whether any byte of the piece lies in a hole `open` created in a file not written since.
    fn touches_fresh_region(&self, piece: PieceIndex) -> bool {
        let geometry = self.geometry();
        geometry
            .file_slices(geometry.piece_range(piece))
            .iter()
            .any(|slice| {
                let untouched = self
                    .written
                    .get(slice.file)
                    .is_some_and(|d| !d.load(Ordering::Acquire));
                let Some(Some(hole)) = self.fresh.get(slice.file) else {
                    return false;
                };
                untouched
                    && slice.file_offset < hole.end
                    && slice.file_offset + slice.len > hole.start
            })
    }

    /// Flushes every file written since the last sync to the disk.
    pub fn sync(&self) -> Result<(), StorageError> {
        for (file, flag) in self.dirty.iter().enumerate() {
            if !flag.swap(false, Ordering::AcqRel) {
                continue;
            }
            let path = self.full_path(file);
            let result = match self.handle(file) {
                Ok(Some(handle)) => handle
                    .sync_data()
                    .map_err(|e| StorageError::io("sync", &path, e)),
                Ok(None) => Err(StorageError::Missing { path }),
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                flag.store(true, Ordering::Release); // still unsynced: retry next time
                return Err(e);
            }
        }
        Ok(())
    }

    fn read_complete(
        &self,
        piece: PieceIndex,
        range: Range<u64>,
        buf: &mut [u8],
    ) -> Result<(), StorageError> {
        match self.read_range(piece, range, buf)? {
            ReadOutcome::Complete => Ok(()),
            ReadOutcome::Incomplete { file } => Err(StorageError::Incomplete {
                path: self.full_path(file),
                piece: piece.get(),
            }),
        }
    }

    /// Fills `buf` with the torrent bytes `range`, file by file.
    fn read_range(
        &self,
        piece: PieceIndex,
        range: Range<u64>,
        buf: &mut [u8],
    ) -> Result<ReadOutcome, StorageError> {
        let buf_len = buf.len();
        let mut rest = buf;
        for slice in self.geometry().file_slices(range) {
            let Some((chunk, tail)) = rest.split_at_mut_checked(slice.len as usize) else {
                return Err(self.buffer_size(piece, buf_len));
            };
            rest = tail;
            let Some(file) = self.handle(slice.file)? else {
                return Ok(ReadOutcome::Incomplete { file: slice.file });
            };
            match file.read_exact_at(chunk, slice.file_offset) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Ok(ReadOutcome::Incomplete { file: slice.file });
                }
                Err(e) => return Err(StorageError::io("read", self.full_path(slice.file), e)),
            }
        }
        Ok(ReadOutcome::Complete)
    }

    fn handle(&self, file: usize) -> Result<Option<Arc<File>>, StorageError> {
        self.handles
            .get(file, || match self.layout.files.get(file) {
                Some((rel, _)) => paths::open_checked(&self.layout.root, rel, self.access),
                None => Ok(None),
            })
    }

    fn full_path(&self, file: usize) -> PathBuf {
        match self.layout.files.get(file) {
            Some((rel, _)) => self.layout.root.join(rel),
            None => self.layout.root.clone(),
        }
    }

    fn check_len(&self, piece: PieceIndex, expected: u32, got: usize) -> Result<(), StorageError> {
        if got == expected as usize {
            Ok(())
        } else {
            Err(StorageError::BufferSize {
                piece: piece.get(),
                expected,
                got,
            })
        }
    }

    fn buffer_size(&self, piece: PieceIndex, got: usize) -> StorageError {
        StorageError::BufferSize {
            piece: piece.get(),
            expected: self.geometry().piece_size(piece),
            got,
        }
    }

    #[cfg(test)]
    fn open_handles(&self) -> usize {
        self.handles.len()
    }
}

#[cfg(test)]
mod tests;
