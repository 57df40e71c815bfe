//! The tree passes `cargo xtask tidy`: the module is included by path (a binary crate's modules
//! cannot be imported), so `cargo test` also runs its unit tests.

#[path = "../src/tidy.rs"]
#[allow(dead_code)] // `run` is the `cargo xtask tidy` entry point, unused here.
mod tidy;

use std::path::Path;

#[test]
fn tree_is_tidy() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let problems = tidy::check(&root);
    for problem in &problems {
        eprintln!("{problem}");
    }
    assert!(
        problems.is_empty(),
        "{} tidy problem(s), listed above (`cargo xtask tidy` shows them too)",
        problems.len()
    );
}
