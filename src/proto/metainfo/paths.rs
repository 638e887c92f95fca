//! Path safety for torrent names and file paths: every component must stay inside the
//! download directory, and no two files may claim the same place.

use std::collections::HashSet;

use super::{FileEntry, MetainfoError};

/// Why `component` cannot be one path component, or `None` when it is safe. Shared with the
/// torrent maker so that it never writes a torrent this parser would refuse.
pub(crate) fn component_problem(component: &str) -> Option<&'static str> {
    if component.is_empty() {
        Some("an empty path component")
    } else if component == "." || component == ".." {
        Some("a `.` or `..` path component")
    } else if component.contains('\0') {
        Some("a NUL byte in a path component")
    } else if component.contains('/') || component.contains('\\') {
        Some("a `/` or `\\` inside a path component (absolute or nested path)")
    } else {
        None
    }
}

pub(super) fn check_component(key: &str, component: &str) -> Result<(), MetainfoError> {
    match component_problem(component) {
        Some(reason) => Err(MetainfoError::UnsafePath {
            key: key.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Refuses a file listed twice, and a file whose path is also a directory of another file.
pub(super) fn check_distinct(files: &[FileEntry]) -> Result<(), MetainfoError> {
    let mut seen: HashSet<&[String]> = HashSet::with_capacity(files.len());
    for file in files {
        if !seen.insert(&file.path) {
            return Err(MetainfoError::DuplicatePath(file.path.join("/")));
        }
    }
    for file in files {
        // Every proper prefix of this path is a directory; none may also be a file.
        for cut in 1..file.path.len() {
            let dir = &file.path[..cut];
            if seen.contains(dir) {
                return Err(MetainfoError::FileIsAlsoDirectory {
                    file: dir.join("/"),
                    other: file.path.join("/"),
                });
            }
        }
    }
    Ok(())
}
