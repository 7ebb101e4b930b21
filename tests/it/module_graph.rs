//! The shape of `src/`: no file imports a file that imports it back, and no file
//! is over [`MAX_LINES`] lines. Read with `syn`, Rust's own parser.
//!
//! # The rule
//!
//! File A imports file B when A's production code names an item *defined* in B:
//! through `use crate::…`, `use super::…`, `use self::…`, a relative `use child::…`,
//! grouped forms (`use crate::{a, b::c}`), `pub use`, globs, or a path in code
//! (`crate::x::f()`, `super::Error`, `names::validate(..)`, also inside macro calls).
//! Naming a module (`use crate::btrfs;`) imports that module's file.
//!
//! A name is followed through re-exports to the file that defines it: when
//! `store/mod.rs` says `pub use history::Status`, `use crate::store::Status`
//! imports `store/history.rs`, and `store/mod.rs` imports `store/history.rs` (a
//! re-export is a use). So a `mod.rs` that only declares and re-exports its
//! children is a facade that closes no cycle; a `mod.rs` that *defines* what its
//! children use (`super::Error`) and also re-exports or uses a child is one.
//! `mod child;` alone is no edge: declaring is not using.
//!
//! There must be no cycle: no file reaches itself through these edges, however long
//! the way. Test-only code (`#[cfg(test)]` modules and files, `#[test]` functions)
//! makes no edges: production code cannot name it, so it only ever imports, and a
//! test module may import its parent. A name the parser cannot find where a path
//! leads (an item a macro generates, like `text_enum!`'s) counts as defined in that
//! module's file, which is where the macro ran.

mod graph;
mod synthetic;
mod tree;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The guide says files stay under ~400 lines; this is where "~" ends.
const MAX_LINES: usize = 420;

/// Files in import cycles that are being reshaped (issue 9: `wire` and `receiver`).
/// A tangle is tolerated only when every file in it is listed here, and a listed
/// file that is no longer in a tangle fails the test: empty this list as they go.
const KNOWN_TO_FIX: &[&str] = &[];

/// Files over [`MAX_LINES`] that are being split (issue 9). A listed file that
/// fits fails the test, so this list only shrinks.
const KNOWN_TO_FIX_LONG: &[&str] = &["wire/chunk_tests.rs"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, relative to it.
pub(crate) fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).expect("read src dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path.strip_prefix(dir).expect("under src").to_path_buf());
            }
        }
    }
    files.sort();
    files
}

/// The tangles of the crates rooted at `roots` (say `lib.rs` and `main.rs`) under
/// `src`; fails when a file under `src` belongs to neither crate.
pub(crate) fn tangles(src: &Path, roots: &[&str]) -> Vec<graph::Cycle> {
    let mut read = BTreeSet::new();
    let mut found = Vec::new();
    for root in roots {
        let krate = tree::load(src, root).unwrap_or_else(|e| panic!("{e}"));
        read.extend(krate.files.iter().cloned());
        found.extend(graph::cycles(&graph::build(&krate)));
    }
    let stray: Vec<_> = rust_files(src)
        .into_iter()
        .filter(|f| !read.contains(f))
        .collect();
    assert!(
        stray.is_empty(),
        "files under {} that no `mod` declaration reaches (not checked): {stray:?}",
        src.display()
    );
    found
}

#[test]
fn no_file_in_src_imports_a_file_that_imports_it_back() {
    let known: BTreeSet<PathBuf> = KNOWN_TO_FIX.iter().map(PathBuf::from).collect();
    let found = tangles(&src(), &["lib.rs", "main.rs"]);
    let mut failures = String::new();
    let mut tolerated = BTreeSet::new();
    for cycle in &found {
        if cycle.files.is_subset(&known) {
            tolerated.extend(cycle.files.iter().cloned());
        } else {
            failures.push_str(&cycle.to_string());
        }
    }
    assert!(
        failures.is_empty(),
        "import cycles in src/ (a file must not import a file that imports it back):\n{failures}"
    );
    let fixed: Vec<_> = known.difference(&tolerated).collect();
    assert!(
        fixed.is_empty(),
        "no longer in a cycle, remove from KNOWN_TO_FIX: {fixed:?}"
    );
}

#[test]
fn no_file_in_src_is_over_the_line_limit() {
    let src = src();
    let mut long = Vec::new();
    let mut fits = Vec::new();
    for file in rust_files(&src) {
        let text = std::fs::read_to_string(src.join(&file)).expect("read source");
        let lines = text.lines().count();
        let known = KNOWN_TO_FIX_LONG.iter().any(|k| Path::new(k) == file);
        if lines > MAX_LINES && !known {
            long.push(format!("{} ({lines} lines)", file.display()));
        }
        if lines <= MAX_LINES && known {
            fits.push(file.display().to_string());
        }
    }
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines; split them by what they do: {long:?}"
    );
    assert!(
        fits.is_empty(),
        "within {MAX_LINES} lines now, remove from KNOWN_TO_FIX_LONG: {fits:?}"
    );
    for known in KNOWN_TO_FIX_LONG {
        assert!(
            src.join(known).is_file(),
            "KNOWN_TO_FIX_LONG names a missing file {known}"
        );
    }
}

/// The top-level layers of `src/` (design.md, "Architecture"): the two daemons
/// never import each other, and the shared modules below them import neither.
/// Pins that the sender's failback reads the replica layout, not the receiver.
#[test]
fn the_daemons_never_import_each_other_and_shared_modules_import_no_daemon() {
    let krate = tree::load(&src(), "lib.rs").unwrap_or_else(|e| panic!("{e}"));
    let graph = graph::build(&krate);
    let top = |file: &Path| -> String {
        let first = file
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy());
        first
            .map(|c| c.trim_end_matches(".rs").to_string())
            .unwrap_or_default()
    };
    let daemons = ["sender", "receiver", "cli"];
    let mut wrong = String::new();
    for (from, edges) in &graph {
        let from_top = top(from);
        for (to, text) in edges {
            let to_top = top(to);
            if from_top == to_top || !daemons.contains(&to_top.as_str()) {
                continue;
            }
            // Only the CLI and the metrics exporters (which read a running
            // daemon's live state, and which only the CLI starts) sit above them.
            if !["cli", "metrics"].contains(&from_top.as_str()) {
                wrong.push_str(&format!(
                    "{} imports {} ({text})\n",
                    from.display(),
                    to.display()
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{wrong}");
}
