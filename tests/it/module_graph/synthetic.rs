//! The checker itself, on tiny crates written to a temp dir: it must catch each
//! kind of cycle, and must not see one where the rule says there is none.

use std::path::Path;

use super::tangles;

/// Writes `files` (path, text) under a fresh directory and returns the tangles
/// of the crate rooted at its `lib.rs`, one string per tangle.
fn check(files: &[(&str, &str)]) -> Vec<String> {
    let dir = tempfile::tempdir().expect("temp dir");
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
    tangles(dir.path(), &["lib.rs"])
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn one_cycle(files: &[(&str, &str)], expected: &str) {
    let found = check(files);
    assert_eq!(found.len(), 1, "{found:#?}");
    let first = found[0].lines().next().unwrap_or_default();
    assert_eq!(first, expected, "{}", found[0]);
}

#[test]
fn two_files_using_each_other_are_a_cycle() {
    one_cycle(
        &[
            ("lib.rs", "mod a;\nmod b;\n"),
            ("a.rs", "use crate::{b::B};\npub struct A(B);\n"),
            (
                "b.rs",
                "pub struct B;\npub fn f() -> crate::a::A { todo!() }\n",
            ),
        ],
        "a.rs -> b.rs -> a.rs",
    );
}

#[test]
fn a_long_way_round_is_a_cycle_too() {
    one_cycle(
        &[
            ("lib.rs", "mod a;\nmod b;\nmod c;\n"),
            ("a.rs", "use crate::b::{self, B};\npub struct A;\n"),
            ("b.rs", "pub struct B;\nfn f() { crate::c::g(); }\n"),
            ("c.rs", "pub fn g() { let _ = super::a::A; }\n"),
        ],
        "a.rs -> b.rs -> c.rs -> a.rs",
    );
}

#[test]
fn a_parent_defining_what_its_child_uses_and_re_exporting_the_child_is_a_cycle() {
    one_cycle(
        &[
            ("lib.rs", "pub mod store;\n"),
            (
                "store/mod.rs",
                "mod rows;\npub use rows::Row;\npub struct Error;\n",
            ),
            (
                "store/rows.rs",
                "use super::Error;\npub struct Row(Error);\n",
            ),
        ],
        "store/mod.rs -> store/rows.rs -> store/mod.rs",
    );
}

#[test]
fn a_parent_calling_into_its_child_that_uses_the_parent_is_a_cycle() {
    one_cycle(
        &[
            ("lib.rs", "pub mod cli;\n"),
            (
                "cli/mod.rs",
                "mod task;\npub struct Ctx;\npub fn main() { task::run(&Ctx) }\n",
            ),
            ("cli/task.rs", "pub fn run(_: &super::Ctx) {}\n"),
        ],
        "cli/mod.rs -> cli/task.rs -> cli/mod.rs",
    );
}

#[test]
fn a_facade_that_only_re_exports_closes_no_cycle() {
    let found = check(&[
        ("lib.rs", "pub mod store;\nuse store::Row as _;\n"),
        (
            "store/mod.rs",
            "mod error;\nmod rows;\npub use error::Error;\npub use rows::*;\n",
        ),
        ("store/error.rs", "pub struct Error;\n"),
        // Named through the facade, defined in a sibling: rows -> error only.
        (
            "store/rows.rs",
            "use super::Error;\npub struct Row(Error);\npub(super) fn f() {}\n",
        ),
    ]);
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn test_code_may_import_its_parent() {
    let found = check(&[
        (
            "lib.rs",
            "mod a;\npub use a::A;\n#[cfg(test)]\n#[path = \"lib_tests.rs\"]\nmod tests;\npub struct Root;\n",
        ),
        ("lib_tests.rs", "use super::*;\nuse crate::a::A;\n"),
        (
            "a.rs",
            "pub struct A;\n#[test]\nfn t() { let _ = crate::Root; }\n#[cfg(test)]\nmod tests {\n    use crate::Root;\n}\n",
        ),
    ]);
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn paths_inside_macros_and_macro_exports_count() {
    one_cycle(
        &[
            ("lib.rs", "mod a;\nmod b;\n"),
            (
                "a.rs",
                "macro_rules! bad { () => { $crate::b::Bad }; }\npub(crate) use bad;\n",
            ),
            (
                "b.rs",
                "pub struct Bad;\nfn f() { println!(\"{}\", crate::a::g()); }\n",
            ),
        ],
        "a.rs -> b.rs -> a.rs",
    );
}

#[test]
fn a_file_no_module_declares_is_reported() {
    let result = std::panic::catch_unwind(|| check(&[("lib.rs", "\n"), ("lost.rs", "\n")]));
    let message = result.expect_err("an unreachable file must fail the check");
    let text = message
        .downcast_ref::<String>()
        .map(String::as_str)
        .unwrap_or_default();
    assert!(text.contains("lost.rs"), "{text}");
}

#[test]
fn the_real_src_is_read_whole() {
    // Guards the parser against silently reading nothing: the crate is large.
    let src = super::src();
    let files = super::rust_files(&src);
    assert!(files.len() > 40, "{files:?}");
    assert!(files.iter().any(|f| f == Path::new("lib.rs")));
}
