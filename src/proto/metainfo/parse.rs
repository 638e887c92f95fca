//! Turns decoded bencode into a validated [`Metainfo`]: every check of the module's policy
//! (see `metainfo.rs`) happens here, before anything is allocated in proportion to a claim.

use sha1::{Digest, Sha1};

use super::paths::{check_component, check_distinct};
use super::{FileEntry, MAX_PIECE_LEN, Metainfo, MetainfoError, MetainfoWarning};
use crate::proto::InfoHash;
use crate::proto::bencode::{self, Dict, List, Value};
use crate::proto::geometry::{Geometry, GeometryError};

pub(super) fn parse(bytes: &[u8]) -> Result<Metainfo, MetainfoError> {
    let root = match bencode::decode(bytes)? {
        Value::Dict(d) => d,
        other => return Err(MetainfoError::NotADictionary(other.kind())),
    };
    let [
        announce,
        announce_list,
        url_list,
        comment,
        comment_utf8,
        created_by,
        creation_date,
        info,
    ] = pick(
        root,
        "",
        [
            "announce",
            "announce-list",
            "url-list",
            "comment",
            "comment.utf-8",
            "created by",
            "creation date",
            "info",
        ],
    )?;
    let info = want_dict(
        info.ok_or_else(|| MetainfoError::MissingKey("info".into()))?,
        "info",
    )?;
    let mut warnings = Vec::new();
    let parsed = parse_info(info, &mut warnings)?;

    let announce = optional_text(announce, "announce", &mut warnings);
    let announce_list = announce_list
        .map(|v| tiers(v, &mut warnings))
        .unwrap_or_default();
    let url_list = url_list
        .map(|v| web_seeds(v, &mut warnings))
        .unwrap_or_default();
    let comment = match optional_text(comment_utf8, "comment.utf-8", &mut warnings) {
        Some(c) => Some(c),
        None => optional_text(comment, "comment", &mut warnings),
    };
    let created_by = optional_text(created_by, "created by", &mut warnings);
    let creation_date = match creation_date {
        Some(Value::Int(n)) => Some(n),
        Some(other) => {
            warnings.push(ignored("creation date", format!("it is {}", other.kind())));
            None
        }
        None => None,
    };

    Ok(Metainfo {
        info_hash: InfoHash(Sha1::digest(info.raw()).into()),
        name: parsed.name,
        geometry: parsed.geometry,
        files: parsed.files,
        is_single_file: parsed.is_single_file,
        private: parsed.private,
        announce,
        announce_list,
        url_list,
        comment,
        created_by,
        creation_date,
        warnings,
        piece_hashes: parsed.piece_hashes,
        raw_info: info.raw().to_vec(),
    })
}

struct ParsedInfo {
    name: String,
    geometry: Geometry,
    files: Vec<FileEntry>,
    is_single_file: bool,
    private: bool,
    piece_hashes: Vec<[u8; 20]>,
}

fn parse_info(
    info: Dict<'_>,
    warnings: &mut Vec<MetainfoWarning>,
) -> Result<ParsedInfo, MetainfoError> {
    if !info.is_canonical() {
        warnings.push(MetainfoWarning::NonCanonicalInfo);
    }
    let [
        name,
        name_utf8,
        piece_length,
        pieces,
        private,
        length,
        files,
        meta_version,
        file_tree,
    ] = pick(
        info,
        "info.",
        [
            "name",
            "name.utf-8",
            "piece length",
            "pieces",
            "private",
            "length",
            "files",
            "meta version",
            "file tree",
        ],
    )?;
    let is_v2 = file_tree.is_some() || matches!(meta_version, Some(Value::Int(2)));
    let piece_len = parse_piece_length(piece_length, warnings)?;
    let pieces = match pieces {
        None if is_v2 => return Err(MetainfoError::V2Only),
        other => want_bytes(require(other, "info.pieces")?, "info.pieces")?,
    };
    if pieces.len() % 20 != 0 {
        return Err(MetainfoError::PiecesNotMultipleOf20(pieces.len()));
    }
    let name = preferred_text(name_utf8, "info.name.utf-8", warnings)
        .map(Ok)
        .unwrap_or_else(|| {
            let raw = want_bytes(require(name, "info.name")?, "info.name")?;
            Ok::<_, MetainfoError>(lossy(raw, "info.name", warnings))
        })?;
    check_component("info.name", &name)?;
    let private = match private {
        None => false,
        Some(v) => want_int(v, "info.private")? != 0,
    };
    let (files, is_single_file) = parse_file_list(&name, length, files, is_v2, warnings)?;
    let geometry = geometry_of(piece_len, &files)?;
    let piece_hashes = split_hashes(pieces, &geometry)?;
    Ok(ParsedInfo {
        name,
        geometry,
        files,
        is_single_file,
        private,
        piece_hashes,
    })
}

fn parse_piece_length(
    value: Option<Value<'_>>,
    warnings: &mut Vec<MetainfoWarning>,
) -> Result<u32, MetainfoError> {
    let piece_len = match want_int(require(value, "info.piece length")?, "info.piece length")? {
        0 => return Err(MetainfoError::ZeroPieceLength),
        n => u32::try_from(n)
            .ok()
            .filter(|&len| len <= MAX_PIECE_LEN)
            .ok_or(MetainfoError::OutOfRange {
                key: "info.piece length".into(),
                value: n,
                expected: "1 to 256 MiB",
            })?,
    };
    if !piece_len.is_power_of_two() {
        warnings.push(MetainfoWarning::PieceLengthNotPowerOfTwo(piece_len));
    }
    Ok(piece_len)
}

/// The files of a single-file (`length`) or multi-file (`files`) torrent, and which it is.
fn parse_file_list(
    name: &str,
    length: Option<Value<'_>>,
    files: Option<Value<'_>>,
    is_v2: bool,
    warnings: &mut Vec<MetainfoWarning>,
) -> Result<(Vec<FileEntry>, bool), MetainfoError> {
    match (length, files) {
        (Some(_), Some(_)) => Err(MetainfoError::BothLengthAndFiles),
        (None, None) if is_v2 => Err(MetainfoError::V2Only),
        (None, None) => Err(MetainfoError::NeitherLengthNorFiles),
        (Some(length), None) => {
            let length = non_negative(want_int(length, "info.length")?, "info.length")?;
            let entry = FileEntry {
                path: vec![name.to_string()],
                length,
            };
            Ok((vec![entry], true))
        }
        (None, Some(files)) => {
            let files = parse_files(want_list(files, "info.files")?, warnings)?;
            check_distinct(&files)?;
            Ok((files, false))
        }
    }
}

fn geometry_of(piece_len: u32, files: &[FileEntry]) -> Result<Geometry, MetainfoError> {
    let lengths: Vec<u64> = files.iter().map(|f| f.length).collect();
    lengths
        .iter()
        .try_fold(0u64, |sum, &len| sum.checked_add(len))
        .ok_or(MetainfoError::TotalLengthOverflow)?;
    Geometry::new(piece_len, &lengths).map_err(|e| match e {
        GeometryError::ZeroPieceLength => MetainfoError::ZeroPieceLength,
        GeometryError::Empty => MetainfoError::Empty,
        GeometryError::TooManyPieces { total, piece_len } => MetainfoError::TooManyPieces {
            total_len: total,
            piece_len,
        },
    })
}

/// The 20-byte piece hashes, one per piece of `geometry`.
fn split_hashes(pieces: &[u8], geometry: &Geometry) -> Result<Vec<[u8; 20]>, MetainfoError> {
    // Compared before allocating: the hash count is bounded by the input, the claim is not.
    let hashes = pieces.len() / 20;
    if u64::try_from(hashes).ok() != Some(u64::from(geometry.piece_count())) {
        return Err(MetainfoError::PieceCountMismatch {
            hashes,
            expected: geometry.piece_count(),
            total_len: geometry.total_len(),
            piece_len: geometry.piece_len(),
        });
    }
    Ok(pieces
        .chunks_exact(20)
        .map(|chunk| {
            let mut hash = [0u8; 20];
            hash.copy_from_slice(chunk);
            hash
        })
        .collect())
}

fn parse_files(
    list: List<'_>,
    warnings: &mut Vec<MetainfoWarning>,
) -> Result<Vec<FileEntry>, MetainfoError> {
    let mut files = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let key = format!("info.files[{i}]");
        let dict = want_dict(item, &key)?;
        let [length, path, path_utf8] =
            pick(dict, &format!("{key}."), ["length", "path", "path.utf-8"])?;
        let length_key = format!("{key}.length");
        let length = non_negative(
            want_int(require(length, &length_key)?, &length_key)?,
            &length_key,
        )?;

        let utf8_key = format!("{key}.path.utf-8");
        let path_key = format!("{key}.path");
        let components = match path_utf8.and_then(|v| utf8_components(v, &utf8_key, warnings)) {
            Some(components) => components,
            None => {
                let mut components = Vec::new();
                for c in want_list(require(path, &path_key)?, &path_key)?.iter() {
                    components.push(lossy(want_bytes(c, &path_key)?, &path_key, warnings));
                }
                components
            }
        };
        if components.is_empty() {
            return Err(MetainfoError::UnsafePath {
                key: path_key,
                reason: "the path has no components",
            });
        }
        for c in &components {
            check_component(&path_key, c)?;
        }
        files.push(FileEntry {
            path: components,
            length,
        });
    }
    if files.is_empty() {
        return Err(MetainfoError::NoFiles);
    }
    Ok(files)
}

/// `path.utf-8` when it is a list of valid UTF-8 strings; otherwise `None` (with a warning).
fn utf8_components(
    value: Value<'_>,
    key: &str,
    warnings: &mut Vec<MetainfoWarning>,
) -> Option<Vec<String>> {
    let parsed = match value {
        Value::List(list) => list
            .iter()
            .map(|c| match c {
                Value::Bytes(b) => std::str::from_utf8(b).ok().map(str::to_owned),
                _ => None,
            })
            .collect::<Option<Vec<String>>>(),
        _ => None,
    };
    if parsed.is_none() {
        warnings.push(ignored(key, "not a list of UTF-8 strings".into()));
    }
    parsed
}

/// Looks up `keys` in one pass; a key present twice is an error (its meaning would be unclear).
fn pick<'a, const N: usize>(
    dict: Dict<'a>,
    prefix: &str,
    keys: [&str; N],
) -> Result<[Option<Value<'a>>; N], MetainfoError> {
    let mut found: [Option<Value<'a>>; N] = [None; N];
    for (key, value) in dict.iter() {
        if let Some(slot) = keys.iter().position(|k| k.as_bytes() == key) {
            if found[slot].is_some() {
                return Err(MetainfoError::DuplicateKey(format!(
                    "{prefix}{}",
                    keys[slot]
                )));
            }
            found[slot] = Some(value);
        }
    }
    Ok(found)
}

fn require<'a>(value: Option<Value<'a>>, key: &str) -> Result<Value<'a>, MetainfoError> {
    value.ok_or_else(|| MetainfoError::MissingKey(key.to_string()))
}

fn wrong_type(key: &str, expected: &'static str, found: &Value<'_>) -> MetainfoError {
    MetainfoError::WrongType {
        key: key.to_string(),
        expected,
        found: found.kind(),
    }
}

fn want_int(value: Value<'_>, key: &str) -> Result<i64, MetainfoError> {
    match value {
        Value::Int(n) => Ok(n),
        other => Err(wrong_type(key, "an integer", &other)),
    }
}

fn want_bytes<'a>(value: Value<'a>, key: &str) -> Result<&'a [u8], MetainfoError> {
    match value {
        Value::Bytes(b) => Ok(b),
        other => Err(wrong_type(key, "a string", &other)),
    }
}

fn want_list<'a>(value: Value<'a>, key: &str) -> Result<List<'a>, MetainfoError> {
    match value {
        Value::List(l) => Ok(l),
        other => Err(wrong_type(key, "a list", &other)),
    }
}

fn want_dict<'a>(value: Value<'a>, key: &str) -> Result<Dict<'a>, MetainfoError> {
    match value {
        Value::Dict(d) => Ok(d),
        other => Err(wrong_type(key, "a dictionary", &other)),
    }
}

fn non_negative(n: i64, key: &str) -> Result<u64, MetainfoError> {
    u64::try_from(n).map_err(|_| MetainfoError::OutOfRange {
        key: key.to_string(),
        value: n,
        expected: "a length of 0 or more bytes",
    })
}

fn lossy(bytes: &[u8], key: &str, warnings: &mut Vec<MetainfoWarning>) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => {
            warnings.push(MetainfoWarning::LossyUtf8(key.to_string()));
            String::from_utf8_lossy(bytes).into_owned()
        }
    }
}

fn ignored(key: &str, reason: String) -> MetainfoWarning {
    MetainfoWarning::IgnoredKey {
        key: key.to_string(),
        reason,
    }
}

/// A `*.utf-8` variant, used only when it is a valid UTF-8 string.
fn preferred_text(
    value: Option<Value<'_>>,
    key: &str,
    warnings: &mut Vec<MetainfoWarning>,
) -> Option<String> {
    match value? {
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => Some(s.to_owned()),
            Err(_) => {
                warnings.push(ignored(key, "not valid UTF-8".into()));
                None
            }
        },
        other => {
            warnings.push(ignored(key, format!("it is {}", other.kind())));
            None
        }
    }
}

/// An optional descriptive string: wrong types are ignored with a warning, empty means absent.
fn optional_text(
    value: Option<Value<'_>>,
    key: &str,
    warnings: &mut Vec<MetainfoWarning>,
) -> Option<String> {
    match value? {
        Value::Bytes(b) => Some(lossy(b, key, warnings)).filter(|s| !s.is_empty()),
        other => {
            warnings.push(ignored(key, format!("it is {}", other.kind())));
            None
        }
    }
}

/// BEP 12 tiers: lists of URL strings; malformed tiers or entries are skipped with a warning.
fn tiers(value: Value<'_>, warnings: &mut Vec<MetainfoWarning>) -> Vec<Vec<String>> {
    let Value::List(list) = value else {
        warnings.push(ignored("announce-list", format!("it is {}", value.kind())));
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut malformed = false;
    for tier in list.iter() {
        let Value::List(urls) = tier else {
            malformed = true;
            continue;
        };
        let mut urls_out = Vec::new();
        for url in urls.iter() {
            match url {
                Value::Bytes(b) if !b.is_empty() => {
                    urls_out.push(lossy(b, "announce-list", warnings))
                }
                Value::Bytes(_) => {}
                _ => malformed = true,
            }
        }
        if !urls_out.is_empty() {
            out.push(urls_out);
        }
    }
    if malformed {
        warnings.push(ignored(
            "announce-list",
            "some entries are not lists of URL strings".into(),
        ));
    }
    out
}

/// BEP 19 `url-list`: one URL string or a list of them.
fn web_seeds(value: Value<'_>, warnings: &mut Vec<MetainfoWarning>) -> Vec<String> {
    match value {
        Value::Bytes([]) => Vec::new(),
        Value::Bytes(b) => vec![lossy(b, "url-list", warnings)],
        Value::List(list) => {
            let mut out = Vec::new();
            for url in list.iter() {
                match url {
                    Value::Bytes(b) if !b.is_empty() => out.push(lossy(b, "url-list", warnings)),
                    Value::Bytes(_) => {}
                    other => {
                        warnings.push(ignored("url-list", format!("an entry is {}", other.kind())))
                    }
                }
            }
            out
        }
        other => {
            warnings.push(ignored("url-list", format!("it is {}", other.kind())));
            Vec::new()
        }
    }
}
