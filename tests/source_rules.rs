//! Rules on the source that no compiler checks by itself:
//! - the network-facing modules (`engine`, `proto`, `service`) deny `unwrap`, `expect`,
//!   `panic!`, `unreachable!`, `todo!` and `unimplemented!` outside tests, so
//!   `cargo clippy -- -D warnings` refuses any new one; the attribute that says so must stay
//!   on each of them (clippy cannot notice its own lint being switched off);
//! - every unbounded channel there says, right above it, why nothing outside the process can
//!   make it grow (`// Unbounded but ...`); anything a peer or tracker feeds is bounded;
//! - the pure core (`proto`, `policy`) imports no tokio, reads no clock and owns no unseeded
//!   RNG: time and randomness are passed in, so its tests replay exactly;
//! - no file in `src/` is longer than 600 lines, no function longer than 100 (files holding
//!   only tests aside);
//! - no two sibling modules depend on each other, directly or round a longer loop (tests
//!   aside): a type both need belongs in a module of its own.

use std::path::PathBuf;

const LIB: &str = include_str!("../src/lib.rs");
const LINTS: [&str; 6] = [
    "clippy::unwrap_used",
    "clippy::expect_used",
    "clippy::panic",
    "clippy::unreachable",
    "clippy::todo",
    "clippy::unimplemented",
];

/// The attribute text right before `pub mod NAME;` (back to the previous item).
fn attributes_of(module: &str) -> &'static str {
    let item = format!("pub mod {module};");
    let at = LIB
        .find(&item)
        .unwrap_or_else(|| panic!("no `{item}` in src/lib.rs"));
    let before = &LIB[..at];
    let start = before.rfind(';').map_or(0, |i| i + 1);
    &LIB[start..at]
}

#[test]
fn network_facing_modules_deny_panicking_shortcuts() {
    for module in ["engine", "proto", "service"] {
        let attrs = attributes_of(module);
        assert!(
            attrs.contains("cfg_attr(") && attrs.contains("not(test)") && attrs.contains("deny("),
            "`pub mod {module};` lost its deny attribute:\n{attrs}"
        );
        for lint in LINTS {
            assert!(attrs.contains(lint), "`{module}` no longer denies {lint}");
        }
    }
    // Nothing in those modules switches the lints back on wholesale.
    for (path, text) in network_facing_sources() {
        for lint in LINTS {
            let wholesale = format!("#![allow({lint}");
            assert!(
                !text.contains(&wholesale),
                "{} allows {lint} for the whole module",
                path.display()
            );
        }
    }
}

/// Every `.rs` file under src/engine, src/proto and src/service, with its text.
fn network_facing_sources() -> Vec<(PathBuf, String)> {
    sources_under(&["src/engine", "src/proto", "src/service"])
}

/// Every `.rs` file under the given folders of the crate, with its text.
fn sources_under(dirs: &[&str]) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for dir in dirs {
        let mut stack = vec![PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(dir)];
        while let Some(path) = stack.pop() {
            if path.is_dir() {
                for entry in std::fs::read_dir(&path).expect("read a source dir") {
                    stack.push(entry.expect("a dir entry").path());
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("read a source file");
                out.push((path, text));
            }
        }
    }
    out
}

#[test]
fn every_unbounded_channel_says_why_it_cannot_grow_from_outside() {
    let mut found = 0;
    for (path, text) in network_facing_sources() {
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if !line.contains("unbounded_channel(") {
                continue;
            }
            found += 1;
            // The comment block right above the statement.
            let comment: String = lines[..i]
                .iter()
                .rev()
                .take_while(|l| l.trim_start().starts_with("//"))
                .map(|l| l.trim())
                .collect::<Vec<_>>()
                .join(" ");
            assert!(
                comment.contains("Unbounded but"),
                "{}:{}: an unbounded channel without a `// Unbounded but ...` reason",
                path.display(),
                i + 1
            );
        }
    }
    assert!(
        found > 0,
        "the scan found no channel at all: is it looking in the right place?"
    );
    // The addresses trackers and `--peer` hand to the torrent task go through a bounded
    // channel (`add_peers` drops a batch when it is full).
    let torrent = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/engine/torrent/mod.rs"),
    )
    .expect("read the torrent task");
    assert!(
        torrent.contains("mpsc::channel(PEER_BATCHES)"),
        "the peer-address channel is no longer bounded"
    );
}

/// The code of a source file without its comments (a line from `//` on is dropped), so that
/// prose may name what the code must not use.
fn code_only(text: &str) -> String {
    text.lines()
        .map(|l| l.find("//").map_or(l, |at| &l[..at]))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_pure_core_has_no_runtime_clock_or_unseeded_rng() {
    const FORBIDDEN: [&str; 10] = [
        "tokio",
        "Instant::now",
        "SystemTime::now",
        "UNIX_EPOCH",
        "thread_rng",
        "rand::rng(",
        "rand::random",
        "from_entropy",
        "from_os_rng",
        "OsRng",
    ];
    let sources = sources_under(&["src/proto", "src/policy"]);
    assert!(sources.len() > 20, "the scan found too few files");
    for (path, text) in sources {
        let code = code_only(&text);
        for word in FORBIDDEN {
            assert!(
                !code.contains(word),
                "{} uses `{word}`: pass time and randomness in from the engine",
                path.display()
            );
        }
    }
}

#[test]
fn no_source_file_is_longer_than_600_lines() {
    let mut long = Vec::new();
    for (path, text) in sources_under(&["src"]) {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let only_tests = name == "tests.rs" || name.ends_with("_tests.rs");
        let lines = text.lines().count();
        if !only_tests && lines > 600 {
            long.push(format!("{} ({lines} lines)", path.display()));
        }
    }
    assert!(long.is_empty(), "split these files: {long:?}");
}

#[test]
fn no_function_in_src_is_longer_than_100_lines() {
    let mut long = Vec::new();
    for (path, text) in sources_under(&["src"]) {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name == "tests.rs" || name == "proptests.rs" || name.ends_with("_tests.rs") {
            continue;
        }
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(indent) = function_start(line) else {
                continue;
            };
            // The function ends at the first later line that is its closing brace alone.
            let close = format!("{indent}}}");
            if let Some(len) = lines[i + 1..].iter().position(|l| *l == close)
                && len + 2 > 100
            {
                long.push(format!("{}:{} ({} lines)", path.display(), i + 1, len + 2));
            }
        }
    }
    assert!(long.is_empty(), "split these functions: {long:?}");
}

/// The indentation of a line that opens a function body (`fn`, with any of `pub(..)`,
/// `const`, `async`, `unsafe` before it), or None.
fn function_start(line: &str) -> Option<&str> {
    let code = line.trim_start();
    let indent = &line[..line.len() - code.len()];
    let mut words = code.split_whitespace();
    let mut word = words.next()?;
    while word.starts_with("pub") || ["const", "async", "unsafe"].contains(&word) {
        word = words.next()?;
    }
    (word == "fn" && !line.trim_end().ends_with(';')).then_some(indent)
}

#[test]
fn sibling_modules_do_not_import_each_other_in_a_cycle() {
    let modules = module_paths();
    let known: std::collections::BTreeSet<Vec<String>> = modules.keys().cloned().collect();
    // Edges between siblings: a module using anything inside another module of its parent
    // counts as the two ancestors just below their common parent depending on each other.
    let mut edges: std::collections::BTreeMap<
        Vec<String>,
        std::collections::BTreeSet<Vec<String>>,
    > = Default::default();
    for (module, text) in &modules {
        for target in referenced_paths(module, text) {
            let Some(target) = longest_known_prefix(&target, &known) else {
                continue;
            };
            let common = module
                .iter()
                .zip(&target)
                .take_while(|(a, b)| a == b)
                .count();
            if common == module.len() || common == target.len() {
                continue; // an ancestor or a descendant: not a sibling
            }
            edges
                .entry(module[..=common].to_vec())
                .or_default()
                .insert(target[..=common].to_vec());
        }
    }
    let mut cycles = Vec::new();
    for start in edges.keys() {
        if let Some(path) = path_back(start, start, &edges, &mut Vec::new()) {
            cycles.push(
                path.iter()
                    .map(|m| m.join("::"))
                    .collect::<Vec<_>>()
                    .join(" -> "),
            );
        }
    }
    assert!(
        cycles.is_empty(),
        "import cycles between sibling modules: {cycles:#?}"
    );
}

/// Every module of the crate from its file (`a/b.rs` and `a/b/mod.rs` are `a::b`), with the
/// code that is not tests (files of tests skipped; a file is cut at `#[cfg(test)]`).
fn module_paths() -> std::collections::BTreeMap<Vec<String>, String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = std::collections::BTreeMap::new();
    for (path, text) in sources_under(&["src"]) {
        let rel = path.strip_prefix(&root).expect("under src");
        let mut parts: Vec<String> = rel
            .with_extension("")
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let last = parts.last().cloned().unwrap_or_default();
        if last == "tests" || last == "proptests" || last.ends_with("_tests") || last == "main" {
            continue;
        }
        if last == "mod" || last == "lib" {
            parts.pop();
        }
        let code = code_only(&text);
        let code = code.split("#[cfg(test)]").next().unwrap_or("").to_string();
        out.insert(parts, code);
    }
    out
}

/// The absolute paths (`crate::...`, `super::...`) a module's code names, with `{a, b::c}`
/// groups expanded one level.
fn referenced_paths(module: &[String], code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    for (at, _) in code
        .match_indices("crate::")
        .chain(code.match_indices("super::"))
    {
        if at > 0 && (is_ident(bytes[at - 1]) || bytes[at - 1] == b':') {
            continue;
        }
        let tail = &code[at..];
        let end = tail
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(tail.len());
        let mut segments: Vec<&str> = tail[..end].split("::").filter(|s| !s.is_empty()).collect();
        let mut base: Vec<String> = Vec::new();
        if segments.first() == Some(&"super") {
            base = module.to_vec();
            while segments.first() == Some(&"super") {
                segments.remove(0);
                base.pop();
            }
        } else {
            segments.remove(0); // crate
        }
        base.extend(segments.iter().map(|s| s.to_string()));
        let rest = &tail[end..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                let mut path = base.clone();
                path.extend(item.trim().split("::").map(|s| s.trim().to_string()));
                out.push(path);
            }
        } else {
            out.push(base);
        }
    }
    out
}

fn longest_known_prefix(
    path: &[String],
    known: &std::collections::BTreeSet<Vec<String>>,
) -> Option<Vec<String>> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| known.contains(p))
}

/// A path of edges from `at` back to `goal`, if there is one.
fn path_back(
    at: &Vec<String>,
    goal: &Vec<String>,
    edges: &std::collections::BTreeMap<Vec<String>, std::collections::BTreeSet<Vec<String>>>,
    seen: &mut Vec<Vec<String>>,
) -> Option<Vec<Vec<String>>> {
    for next in edges.get(at).into_iter().flatten() {
        if next == goal {
            return Some(vec![at.clone(), next.clone()]);
        }
        if seen.contains(next) {
            continue;
        }
        seen.push(next.clone());
        if let Some(mut rest) = path_back(next, goal, edges, seen) {
            rest.insert(0, at.clone());
            return Some(rest);
        }
    }
    None
}
