//! The network-facing modules (`engine`, `proto`, `service`) deny `unwrap`, `expect`,
//! `panic!`, `unreachable!`, `todo!` and `unimplemented!` outside tests, so
//! `cargo clippy -- -D warnings` refuses any new one. This checks that the attribute that says
//! so stays on each of them (clippy cannot notice its own lint being switched off).

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
    for dir in ["src/engine", "src/proto", "src/service"] {
        let mut stack = vec![std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(dir)];
        while let Some(path) = stack.pop() {
            if path.is_dir() {
                for entry in std::fs::read_dir(&path).expect("read a source dir") {
                    stack.push(entry.expect("a dir entry").path());
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("read a source file");
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
    }
}
