//! Which file a request path names: the content root (one file or one directory), percent-
//! decoding, and refusal of every path that could reach outside the root.
//!
//! Layout (as BEP 19 web seeds are asked): a single file is served at `/` and `/<name>`; a
//! directory's files at `/<dir name>/<relative path>` and at `/<relative path>`. When both
//! readings name a file, the `/<dir name>/...` one wins. Symbolic links inside the root are
//! followed only while they stay inside it.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Why a request path was not served.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("no such file")]
    NotFound,
    #[error("refused path: {0}")]
    Forbidden(&'static str),
    #[error("cannot open {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// A file found for a request, opened: later reads use this handle, so the length stays true
/// even if the path is replaced meanwhile.
#[derive(Debug)]
pub struct ServedFile {
    pub file: File,
    pub len: u64,
    /// The file's path relative to the root (`/`-separated), or its name for a single file.
    pub key: String,
}

/// The content being served.
#[derive(Debug, Clone)]
pub struct ContentRoot {
    /// Canonical: no links, no `..`; every served file is this or lies under it.
    root: PathBuf,
    name: Vec<u8>,
    is_dir: bool,
}

impl ContentRoot {
    /// Opens `path` (a regular file or a directory) as the content root.
    pub fn open(path: &Path) -> io::Result<ContentRoot> {
        let with_path = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
        let root = std::fs::canonicalize(path).map_err(with_path)?;
        let meta = std::fs::metadata(&root).map_err(with_path)?;
        if !meta.is_dir() && !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} is neither a regular file nor a directory",
                    path.display()
                ),
            ));
        }
        let name = root
            .file_name()
            .map(|n| n.as_bytes().to_vec())
            .unwrap_or_default();
        Ok(ContentRoot {
            root,
            name,
            is_dir: meta.is_dir(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Finds and opens the file `uri_path` (the request's path, still percent-encoded) names.
    /// Blocking: call it off the async runtime.
    pub fn lookup(&self, uri_path: &str) -> Result<ServedFile, LookupError> {
        let segments = decode_path(uri_path)?;
        if !self.is_dir {
            return match segments.as_slice() {
                [] => self.open_file(&[]),
                [only] if *only == self.name => self.open_file(&[]),
                _ => Err(LookupError::NotFound),
            };
        }
        if let [first, rest @ ..] = segments.as_slice()
            && *first == self.name
            && !rest.is_empty()
        {
            match self.open_file(rest) {
                Err(LookupError::NotFound) => {}
                found => return found,
            }
        }
        if segments.is_empty() {
            return Err(LookupError::NotFound);
        }
        self.open_file(&segments)
    }

    fn open_file(&self, segments: &[Vec<u8>]) -> Result<ServedFile, LookupError> {
        let mut path = self.root.clone();
        for segment in segments {
            path.push(OsStr::from_bytes(segment));
        }
        let canonical = match std::fs::canonicalize(&path) {
            Ok(p) => p,
            Err(e) if is_absent(&e) => return Err(LookupError::NotFound),
            Err(source) => return Err(LookupError::Io { path, source }),
        };
        let Ok(relative) = canonical.strip_prefix(&self.root) else {
            return Err(LookupError::Forbidden("a link leads outside the content"));
        };
        let key = if self.is_dir {
            relative.to_string_lossy().into_owned()
        } else {
            String::from_utf8_lossy(&self.name).into_owned()
        };
        let file = match File::open(&canonical) {
            Ok(f) => f,
            Err(e) if is_absent(&e) => return Err(LookupError::NotFound),
            Err(source) => return Err(LookupError::Io { path, source }),
        };
        let meta = file
            .metadata()
            .map_err(|source| LookupError::Io { path, source })?;
        if !meta.is_file() {
            return Err(LookupError::NotFound);
        }
        Ok(ServedFile {
            file,
            len: meta.len(),
            key,
        })
    }
}

fn is_absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// Splits a request path into decoded segments, refusing anything that is not a plain name:
/// `.`/`..` (also when percent-encoded), encoded `/` or `\`, NUL, and empty segments but a
/// trailing one (`/dir/` names a directory, which is simply not found).
fn decode_path(uri_path: &str) -> Result<Vec<Vec<u8>>, LookupError> {
    let Some(rest) = uri_path.strip_prefix('/') else {
        return Err(LookupError::Forbidden("the path is not absolute"));
    };
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let raw: Vec<&str> = rest.split('/').collect();
    let last = raw.len() - 1;
    let mut segments = Vec::with_capacity(raw.len());
    for (i, segment) in raw.into_iter().enumerate() {
        if segment.is_empty() {
            return Err(if i == last {
                LookupError::NotFound
            } else {
                LookupError::Forbidden("empty path segment")
            });
        }
        let decoded = percent_decode(segment)?;
        if decoded == b"." || decoded == b".." {
            return Err(LookupError::Forbidden("`.` or `..` in the path"));
        }
        if decoded.iter().any(|b| matches!(b, b'/' | b'\\' | 0)) {
            return Err(LookupError::Forbidden(
                "`/`, `\\` or NUL inside a path segment",
            ));
        }
        segments.push(decoded);
    }
    Ok(segments)
}

fn percent_decode(segment: &str) -> Result<Vec<u8>, LookupError> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b != b'%' {
            out.push(b);
            i += 1;
            continue;
        }
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .ok_or(LookupError::Forbidden("malformed percent-encoding"))?;
        out.push(hex);
        i += 3;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forbidden(path: &str) -> bool {
        matches!(decode_path(path), Err(LookupError::Forbidden(_)))
    }

    #[test]
    fn decodes_plain_and_encoded_names() {
        assert_eq!(decode_path("/").unwrap(), Vec::<Vec<u8>>::new());
        assert_eq!(
            decode_path("/a%20b/c%C3%A9").unwrap(),
            vec![b"a b".to_vec(), "cé".as_bytes().to_vec()]
        );
        assert_eq!(decode_path("/...").unwrap(), vec![b"...".to_vec()]);
    }

    #[test]
    fn refuses_traversal_in_every_spelling() {
        for path in [
            "/../etc/passwd",
            "/a/../../b",
            "/%2e%2e/x",
            "/%2E%2e/x",
            "/a/%2e/b",
            "/a%2f..%2fb",
            "/a%5c..",
            "//etc/passwd",
            "/a//b",
            "/a%00",
            "/a%zz",
            "/a%2",
            "etc/passwd",
        ] {
            assert!(forbidden(path), "{path} should be refused");
        }
        assert!(matches!(decode_path("/dir/"), Err(LookupError::NotFound)));
    }

    #[test]
    fn links_inside_are_followed_and_links_outside_refused() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"s").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("movie");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/a.bin"), b"abc").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root.join("leak")).unwrap();
        std::os::unix::fs::symlink("sub/a.bin", root.join("alias")).unwrap();
        let content = ContentRoot::open(&root).unwrap();

        let found = content.lookup("/movie/sub/a.bin").unwrap();
        assert_eq!((found.len, found.key.as_str()), (3, "sub/a.bin"));
        assert_eq!(content.lookup("/sub/a.bin").unwrap().key, "sub/a.bin");
        assert_eq!(content.lookup("/alias").unwrap().key, "sub/a.bin");
        assert!(matches!(
            content.lookup("/leak"),
            Err(LookupError::Forbidden(_))
        ));
        assert!(matches!(content.lookup("/"), Err(LookupError::NotFound)));
        assert!(matches!(content.lookup("/sub"), Err(LookupError::NotFound)));
        assert!(matches!(
            content.lookup("/sub/a.bin/x"),
            Err(LookupError::NotFound)
        ));
    }

    #[test]
    fn a_single_file_answers_at_root_and_by_name_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("film.bin");
        std::fs::write(&path, b"12345").unwrap();
        std::fs::write(dir.path().join("other"), b"x").unwrap();
        let content = ContentRoot::open(&path).unwrap();
        assert_eq!(content.lookup("/").unwrap().len, 5);
        assert_eq!(content.lookup("/film.bin").unwrap().key, "film.bin");
        assert!(matches!(
            content.lookup("/other"),
            Err(LookupError::NotFound)
        ));
        assert!(matches!(
            content.lookup("/film.bin/x"),
            Err(LookupError::NotFound)
        ));
    }
}
