//! Where a torrent's files may live: plain relative paths under the root, reached without
//! following any symbolic link, and how missing directories and files are made.

use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};

use super::StorageError;

/// Whether the storage may write (downloading) or only read (seeding existing content).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Access {
    ReadWrite,
    ReadOnly,
}

/// Refuses anything but one or more `Normal` components: no root, prefix, `.` or `..`.
pub(super) fn check_relative(root: &Path, rel: &Path) -> Result<(), StorageError> {
    let mut components = rel.components().peekable();
    let plain =
        components.peek().is_some() && components.all(|c| matches!(c, Component::Normal(_)));
    if plain {
        Ok(())
    } else {
        Err(StorageError::UnsafePath {
            path: rel.to_path_buf(),
            root: root.to_path_buf(),
        })
    }
}

/// Walks the directories between `root` and the file, refusing symlinks and non-directories.
/// With `create`, missing directories are made; without, a missing one yields `Ok(None)`.
/// Returns the file's full path. The root itself may be a link: the user chose it.
fn walk_dirs(root: &Path, rel: &Path, create: bool) -> Result<Option<PathBuf>, StorageError> {
    check_relative(root, rel)?;
    let mut path = root.to_path_buf();
    let mut components = rel.components().peekable();
    while let Some(component) = components.next() {
        path.push(component);
        if components.peek().is_none() {
            break; // the file itself: the caller checks it
        }
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(StorageError::SymlinkInPath { path });
            }
            Ok(meta) if !meta.is_dir() => return Err(StorageError::NotADirectory { path }),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound && create => {
                match fs::create_dir(&path) {
                    Ok(()) => {}
                    // Another file of the torrent made it meanwhile: check it again.
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                        let meta = fs::symlink_metadata(&path)
                            .map_err(|e| StorageError::io("inspect directory", &path, e))?;
                        if !meta.is_dir() {
                            return Err(StorageError::NotADirectory { path });
                        }
                    }
                    Err(e) => return Err(StorageError::io("create directory", &path, e)),
                }
            }
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageError::io("inspect directory", &path, e)),
        }
    }
    Ok(Some(path))
}

/// The length of an existing regular file at `path` (never following a link), or `None`.
fn existing_len(path: &Path) -> Result<Option<u64>, StorageError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(StorageError::SymlinkInPath {
            path: path.to_path_buf(),
        }),
        Ok(meta) if !meta.is_file() => Err(StorageError::NotAFile {
            path: path.to_path_buf(),
        }),
        Ok(meta) => Ok(Some(meta.len())),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::io("inspect", path, e)),
    }
}

fn open_options(access: Access) -> OpenOptions {
    let mut options = OpenOptions::new();
    options.read(true).write(access == Access::ReadWrite);
    options
}

/// Opens `path` with `options`, refusing a symbolic link as the last component in the same
/// system call (`O_NOFOLLOW`): a link swapped in after the `symlink_metadata` check is not
/// followed. (A directory on the way swapped for a link between `walk_dirs` and this call is
/// still followed; closing that needs `openat` from a held directory descriptor.)
fn open_no_follow(
    options: &mut OpenOptions,
    path: &Path,
    op: &'static str,
) -> Result<File, StorageError> {
    use std::os::unix::fs::OpenOptionsExt;
    options
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                StorageError::SymlinkInPath {
                    path: path.to_path_buf(),
                }
            } else {
                StorageError::io(op, path, e)
            }
        })
}

/// Makes the file ready for a download: directories and file created when missing, length set
/// with `set_len` (sparse) when shorter. A longer file is an error, never truncated. Returns
/// the byte range this call created (a hole that holds no data yet), if any.
pub(super) fn prepare_for_download(
    root: &Path,
    rel: &Path,
    len: u64,
) -> Result<Option<std::ops::Range<u64>>, StorageError> {
    let Some(path) = walk_dirs(root, rel, true)? else {
        // walk_dirs with create never reports a missing directory.
        return Err(StorageError::Missing {
            path: root.join(rel),
        });
    };
    let actual = existing_len(&path)?;
    match actual {
        Some(actual) if actual > len => Err(StorageError::FileTooLong {
            path,
            expected: len,
            actual,
        }),
        Some(actual) if actual == len => Ok(None),
        _ => {
            let file = open_no_follow(
                OpenOptions::new().write(true).create(true).truncate(false),
                &path,
                "create",
            )?;
            file.set_len(len)
                .map_err(|e| StorageError::io("set the length of", &path, e))?;
            Ok(Some(actual.unwrap_or(0)..len))
        }
    }
}

/// Checks that a file for seeding is in place with exactly the expected length.
pub(super) fn check_for_seeding(root: &Path, rel: &Path, len: u64) -> Result<(), StorageError> {
    let missing = || StorageError::Missing {
        path: root.join(rel),
    };
    let path = walk_dirs(root, rel, false)?.ok_or_else(missing)?;
    match existing_len(&path)? {
        None => Err(missing()),
        Some(actual) if actual != len => Err(StorageError::WrongLength {
            path,
            expected: len,
            actual,
        }),
        Some(_) => Ok(()),
    }
}

/// Opens a file of the torrent for I/O after checking its path again (links may have appeared
/// since `open`). `Ok(None)` when it or a directory on the way is missing.
pub(super) fn open_checked(
    root: &Path,
    rel: &Path,
    access: Access,
) -> Result<Option<File>, StorageError> {
    let Some(path) = walk_dirs(root, rel, false)? else {
        return Ok(None);
    };
    if existing_len(&path)?.is_none() {
        return Ok(None);
    }
    match open_no_follow(&mut open_options(access), &path, "open") {
        Ok(file) => Ok(Some(file)),
        Err(StorageError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The last step of `open_checked` and `prepare_for_download`, on a link that appeared
    /// after the path was checked: refused by the open itself, the target untouched.
    #[test]
    fn a_link_swapped_in_for_the_file_is_not_opened() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("outside.bin");
        std::fs::write(&target, b"keep").unwrap();
        let link = dir.path().join("movie.bin");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        for access in [Access::ReadWrite, Access::ReadOnly] {
            let err = open_no_follow(&mut open_options(access), &link, "open").unwrap_err();
            assert!(matches!(err, StorageError::SymlinkInPath { .. }), "{err}");
        }
        let mut create = OpenOptions::new();
        create.write(true).create(true).truncate(false);
        let err = open_no_follow(&mut create, &link, "create").unwrap_err();
        assert!(matches!(err, StorageError::SymlinkInPath { .. }), "{err}");
        // A dangling link is not a way to create a file elsewhere either.
        let dangling = dir.path().join("dangling.bin");
        std::os::unix::fs::symlink(dir.path().join("nowhere.bin"), &dangling).unwrap();
        let err = open_no_follow(&mut create, &dangling, "create").unwrap_err();
        assert!(matches!(err, StorageError::SymlinkInPath { .. }), "{err}");
        assert!(!dir.path().join("nowhere.bin").exists());
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        // A plain file opens.
        let plain = dir.path().join("plain.bin");
        assert!(open_no_follow(&mut create, &plain, "create").is_ok());
    }

    #[test]
    fn only_plain_relative_paths_pass() {
        let root = Path::new("/dl");
        for ok in ["a", "a/b/c.mkv", "name/..hidden", "x/y."] {
            assert!(check_relative(root, Path::new(ok)).is_ok(), "{ok}");
        }
        // `a/./b` is fine: `components` drops an inner `.`, so it is the same file as `a/b`.
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "./a", "a/.."] {
            assert!(
                matches!(
                    check_relative(root, Path::new(bad)),
                    Err(StorageError::UnsafePath { .. })
                ),
                "{bad:?} should be refused"
            );
        }
    }
}
