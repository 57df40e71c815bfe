//! `cargo xtask tidy`: cheap checks of the tree's conventions, after rust-analyzer's
//! `xtask/src/tidy.rs`. Each problem names the file, the line and the fix.
//!
//! The rules, over the crates in [`CRATES`] (every directory except `target/` and hidden ones):
//!
//! 1. every `.rs` file opens with a `//!` doc comment (its first non-empty line);
//! 2. every claim module of `theorems/src/` (every `.rs` file there but [`NOT_CLAIMS`]) cites the
//!    paper in its `//!` header: a `Reference:` paragraph naming [`PAPER`] and a section (`§`);
//! 3. no orphaned insta snapshot: a `snapshots/<module>__<name>[@<suffix>].snap` file needs a
//!    source file next to `snapshots/` named after a segment of `<module>` (the test file's stem for
//!    `tests/`) that still contains `"<name>"` (or `fn <name>`/`fn test_<name>` for snapshots named
//!    after their test) and `"<suffix>"`; no leftover `.snap.new` or `.pending-snap` files;
//! 4. no `#[ignore]` without a reason (`#[ignore = "reason"]` is fine);
//! 5. no proptest regression file without its source: `x.proptest-regressions` needs `x.rs`, and
//!    `<crate>/proptest-regressions/p.txt` needs `<crate>/src/p.rs`;
//! 6. every text source ([`TEXT_EXTENSIONS`], in the crates and at the root) ends with a newline and
//!    has no trailing whitespace.
//!
//! The module uses only std, so `xtask/tests/tidy.rs` can include it with `#[path]` and `cargo test`
//! runs the same checks (and the unit tests below).

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The workspace crates whose trees are checked.
pub const CRATES: [&str; 4] = ["dynamics", "theorems", "embeddings", "xtask"];

/// The paper every claim module cites.
pub const PAPER: &str = "arXiv 2512.01868";

/// The `.rs` files of `theorems/src/` that are infrastructure, not claims.
pub const NOT_CLAIMS: [&str; 4] = ["lib.rs", "claim.rs", "sim.rs", "strategies.rs"];

/// Extensions of the files checked for a final newline and trailing whitespace.
pub const TEXT_EXTENSIONS: [&str; 3] = ["rs", "toml", "md"];

/// One broken rule: `file` is relative to the checked root, `line` is 1-based, and `message` says
/// what is wrong and, after ` — fix: `, what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

impl Problem {
    fn new(file: &Path, line: usize, what: impl fmt::Display, fix: impl fmt::Display) -> Self {
        Problem { file: file.to_path_buf(), line, message: format!("{what} — fix: {fix}") }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// Checks the workspace this xtask belongs to, prints every problem and fails if there is one.
pub fn run() -> ExitCode {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let problems = check(&root);
    for problem in &problems {
        println!("{problem}");
    }
    if problems.is_empty() {
        println!("tidy: no problems");
        ExitCode::SUCCESS
    } else {
        println!("tidy: {} problem(s)", problems.len());
        ExitCode::FAILURE
    }
}

/// Every problem in the tree under `root` (a workspace root), sorted by file and line.
pub fn check(root: &Path) -> Vec<Problem> {
    let tree = Tree::scan(root);
    let mut problems = tree.unreadable.clone();
    for file in &tree.files {
        let is_rust = has_extension(file, "rs");
        let is_text = TEXT_EXTENSIONS.iter().any(|ext| has_extension(file, ext));
        if is_text {
            if let Some(text) = tree.read(file, &mut problems) {
                if is_rust && file.components().count() > 1 {
                    check_doc_header(file, &text, &mut problems);
                    if is_claim_module(file) {
                        check_reference(file, &text, &mut problems);
                    }
                    check_ignore(file, &text, &mut problems);
                }
                check_whitespace(file, &text, &mut problems);
            }
        }
        check_snapshot(&tree, file, &mut problems);
        check_regressions(&tree, file, &mut problems);
    }
    problems.sort();
    problems.dedup();
    problems
}

/// The files to check, relative to the root: everything in the crates but `target/` and hidden
/// directories, and the files at the root itself.
struct Tree {
    root: PathBuf,
    files: Vec<PathBuf>,
    unreadable: Vec<Problem>,
}

impl Tree {
    fn scan(root: &Path) -> Self {
        let mut tree = Tree { root: root.to_path_buf(), files: Vec::new(), unreadable: Vec::new() };
        match fs::read_dir(root) {
            Ok(entries) => {
                for entry in entries.flatten() {
                    if entry.file_type().is_ok_and(|t| t.is_file()) {
                        tree.files.push(PathBuf::from(entry.file_name()));
                    }
                }
            }
            Err(e) => tree.unreadable.push(Problem::new(
                Path::new("."),
                0,
                format!("cannot list the workspace root {}: {e}", root.display()),
                "run tidy from the workspace (or pass its root)",
            )),
        }
        for krate in CRATES {
            if root.join(krate).is_dir() {
                tree.walk(Path::new(krate));
            }
        }
        tree.files.sort();
        tree
    }

    fn walk(&mut self, dir: &Path) {
        let entries = match fs::read_dir(self.root.join(dir)) {
            Ok(entries) => entries,
            Err(e) => {
                let problem =
                    Problem::new(dir, 0, format!("cannot list the directory: {e}"), "fix its permissions");
                self.unreadable.push(problem);
                return;
            }
        };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|entry| entry.file_name());
        for entry in entries {
            let name = entry.file_name();
            let path = dir.join(&name);
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() {
                let name = name.to_string_lossy();
                if name != "target" && !name.starts_with('.') {
                    self.walk(&path);
                }
            } else if kind.is_file() {
                self.files.push(path);
            }
        }
    }

    /// The file's text, or `None` (with a problem) when it is not readable UTF-8.
    fn read(&self, file: &Path, problems: &mut Vec<Problem>) -> Option<String> {
        match fs::read_to_string(self.root.join(file)) {
            Ok(text) => Some(text),
            Err(e) => {
                problems.push(Problem::new(
                    file,
                    1,
                    format!("cannot read as UTF-8: {e}"),
                    "save it as UTF-8",
                ));
                None
            }
        }
    }

    /// The `.rs` files directly in `dir`.
    fn sources_in<'a>(&'a self, dir: &'a Path) -> impl Iterator<Item = &'a PathBuf> + 'a {
        self.files.iter().filter(move |f| f.parent() == Some(dir) && has_extension(f, "rs"))
    }

    fn contains(&self, file: &Path) -> bool {
        self.files.binary_search_by(|f| f.as_path().cmp(file)).is_ok()
    }
}

fn has_extension(file: &Path, ext: &str) -> bool {
    file.extension().is_some_and(|e| e == ext)
}

fn file_name(file: &Path) -> &str {
    file.file_name().and_then(|n| n.to_str()).unwrap_or("")
}

fn first_line(text: &str) -> Option<(usize, &str)> {
    text.lines().enumerate().find(|(_, line)| !line.trim().is_empty()).map(|(i, line)| (i + 1, line))
}

/// Rule 1: the first non-empty line is a `//!` comment.
fn check_doc_header(file: &Path, text: &str, problems: &mut Vec<Problem>) {
    let fix = "start the file with a `//!` comment saying what it is for";
    match first_line(text) {
        None => problems.push(Problem::new(file, 1, "empty file, no `//!` doc comment", fix)),
        Some((_, line)) if line.trim_start().starts_with("//!") => {}
        Some((n, line)) => problems.push(Problem::new(
            file,
            n,
            format!("does not open with a `//!` doc comment (first line: `{}`)", abbreviate(line.trim())),
            fix,
        )),
    }
}

fn abbreviate(line: &str) -> String {
    const MAX: usize = 60;
    if line.chars().count() <= MAX {
        line.to_string()
    } else {
        format!("{}…", line.chars().take(MAX).collect::<String>())
    }
}

fn is_claim_module(file: &Path) -> bool {
    let in_src = |dir: Option<&Path>| dir == Some(Path::new("theorems/src"));
    let name = file_name(file);
    (in_src(file.parent()) && !NOT_CLAIMS.contains(&name))
        || (name == "mod.rs" && in_src(file.parent().and_then(Path::parent)))
}

/// Rule 2: the `//!` header has a `Reference:` paragraph naming the paper and a section.
fn check_reference(file: &Path, text: &str, problems: &mut Vec<Problem>) {
    // The header: the `//!` lines from the first non-empty line on, with their 1-based numbers.
    let header: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .skip_while(|(_, line)| line.trim().is_empty())
        .map_while(|(i, line)| line.trim_start().strip_prefix("//!").map(|doc| (i + 1, doc.trim())))
        .collect();
    let example = format!("//! Reference: Rigollet, {PAPER}, §N.M.");
    let Some(start) = header.iter().position(|(_, doc)| doc.contains("Reference:")) else {
        problems.push(Problem::new(
            file,
            header.last().map_or(1, |(n, _)| n + 1),
            "claim module without a `Reference:` line in its `//!` header",
            format!("cite the statement's source at the end of the module docs: `{example}`"),
        ));
        return;
    };
    // The paragraph: the `Reference:` line and the lines after it up to a blank `//!` line.
    let paragraph: String = header[start..]
        .iter()
        .take_while(|(_, doc)| !doc.is_empty())
        .map(|(_, doc)| *doc)
        .collect::<Vec<_>>()
        .join(" ");
    let missing: Vec<&str> = [PAPER, "§"].into_iter().filter(|needle| !paragraph.contains(needle)).collect();
    if !missing.is_empty() {
        problems.push(Problem::new(
            file,
            header[start].0,
            format!("the `Reference:` line does not mention {}", missing.join(" and ")),
            format!("cite the paper and the section, e.g. `{example}`"),
        ));
    }
}

/// Rule 4: `#[ignore]` attributes carry a reason. Only attributes at the start of a line (possibly
/// after other attributes) count, so comments and string literals that mention one do not.
fn check_ignore(file: &Path, text: &str, problems: &mut Vec<Problem>) {
    for (i, line) in text.lines().enumerate() {
        let compact: String = line.chars().filter(|c| !c.is_whitespace()).collect();
        if compact.starts_with("#[ignore]") || (compact.starts_with("#[") && compact.contains("]#[ignore]")) {
            problems.push(Problem::new(
                file,
                i + 1,
                "`#[ignore]` without a reason",
                "say why it is skipped and how to run it: `#[ignore = \"reason\"]`",
            ));
        }
    }
}

/// Rule 3: snapshot files are still written by some test, and none is left pending.
fn check_snapshot(tree: &Tree, file: &Path, problems: &mut Vec<Problem>) {
    let name = file_name(file);
    if name.ends_with(".snap.new") || name.ends_with(".pending-snap") {
        problems.push(Problem::new(
            file,
            1,
            "pending snapshot left by a failed insta assertion",
            "review it with `cargo insta review` (accept or reject), or delete it",
        ));
        return;
    }
    let Some(base) = name.strip_suffix(".snap") else { return };
    let Some(dir) = file.parent().filter(|d| file_name(d) == "snapshots").and_then(Path::parent) else {
        return;
    };
    let fix = "delete it (`cargo insta test --unreferenced=delete` removes every orphan), or restore \
               the test that writes it";
    // Split `<module>__<name>`: every `__` is tried (a name may contain `__`), the last one first.
    let splits: Vec<(&str, &str)> =
        base.rmatch_indices("__").map(|(i, _)| (&base[..i], &base[i + 2..])).collect();
    let Some(&(module, rest)) = splits.first() else {
        let what = format!("snapshot `{name}` is not named `<module>__<name>.snap`");
        problems.push(Problem::new(file, 1, what, fix));
        return;
    };
    if splits.iter().any(|&(module, rest)| snapshot_source(tree, dir, module, rest).is_ok()) {
        return;
    }
    let why = snapshot_source(tree, dir, module, rest).err().unwrap_or_default();
    problems.push(Problem::new(file, 1, format!("orphaned snapshot: {why}"), fix));
}

/// The source file next to `dir/snapshots/` that still writes the snapshot `<module>__<rest>`, or
/// why there is none.
fn snapshot_source(tree: &Tree, dir: &Path, module: &str, rest: &str) -> Result<PathBuf, String> {
    let segments: Vec<&str> = module.split("__").collect();
    let stem = |f: &&PathBuf| f.file_stem().and_then(|s| s.to_str()).unwrap_or("").to_string();
    let mut candidates: Vec<&PathBuf> =
        tree.sources_in(dir).filter(|f| segments.contains(&stem(f).as_str())).collect();
    if candidates.is_empty() {
        candidates =
            tree.sources_in(dir).filter(|f| ["mod", "lib", "main"].contains(&stem(f).as_str())).collect();
    }
    if candidates.is_empty() {
        let expected = dir.join(format!("{}.rs", segments[0]));
        return Err(format!("no source file `{}` for the module `{module}`", expected.display()));
    }
    // `rest` is `<name>[@<suffix>]`, maybe with the counter `-N` insta adds to repeated names.
    let mut variants = vec![rest];
    if let Some((head, counter)) = rest.rsplit_once('-') {
        if !head.is_empty() && !counter.is_empty() && counter.bytes().all(|b| b.is_ascii_digit()) {
            variants.push(head);
        }
    }
    let mut why = String::new();
    for candidate in &candidates {
        let Ok(text) = fs::read_to_string(tree.root.join(candidate)) else { continue };
        for variant in &variants {
            let (name, suffix) = match variant.split_once('@') {
                Some((name, suffix)) => (name, Some(suffix)),
                None => (*variant, None),
            };
            let named = text.contains(&format!("\"{name}\""))
                || mentions_fn(&text, name)
                || mentions_fn(&text, &format!("test_{name}"));
            let suffixed = suffix.is_none_or(|suffix| text.contains(&format!("\"{suffix}\"")));
            if named && suffixed {
                return Ok(candidate.to_path_buf());
            }
            if why.is_empty() {
                why = if named {
                    format!(
                        "`{}` has no string literal \"{}\" (the suffix)",
                        candidate.display(),
                        suffix.unwrap_or("")
                    )
                } else {
                    format!(
                        "`{}` has no string literal \"{name}\" nor a test `fn {name}`",
                        candidate.display()
                    )
                };
            }
        }
    }
    Err(why)
}

/// Whether `text` has `fn <name>` followed by something that cannot continue an identifier.
fn mentions_fn(text: &str, name: &str) -> bool {
    let needle = format!("fn {name}");
    text.match_indices(&needle).any(|(i, _)| {
        text[i + needle.len()..].chars().next().is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
    })
}

/// Rule 5: proptest regression files sit next to (or parallel to) an existing source file.
fn check_regressions(tree: &Tree, file: &Path, problems: &mut Vec<Problem>) {
    let fix = "delete it if its test is gone, or rename it after the test's new file";
    if has_extension(file, "proptest-regressions") {
        let source = file.with_extension("rs");
        if !tree.contains(&source) {
            let what = format!("proptest regressions for a missing source file `{}`", source.display());
            problems.push(Problem::new(file, 1, what, fix));
        }
        return;
    }
    // proptest's default `SourceParallel`: `<crate>/src/p.rs` persists to `<crate>/proptest-regressions/p.txt`.
    let mut components = file.components();
    let (Some(krate), Some(dir)) = (components.next(), components.next()) else { return };
    if dir.as_os_str() != "proptest-regressions" || !has_extension(file, "txt") {
        return;
    }
    let source = Path::new(krate.as_os_str()).join("src").join(components.as_path()).with_extension("rs");
    if !tree.contains(&source) {
        let what = format!("proptest regressions for a missing source file `{}`", source.display());
        problems.push(Problem::new(file, 1, what, fix));
    }
}

/// Rule 6: a final newline and no trailing whitespace.
fn check_whitespace(file: &Path, text: &str, problems: &mut Vec<Problem>) {
    for (i, line) in text.split('\n').enumerate() {
        if line.ends_with([' ', '\t', '\r']) {
            problems.push(Problem::new(
                file,
                i + 1,
                "trailing whitespace",
                "delete it (`sed -i 's/[[:space:]]*$//' FILE`; CRLF line endings count too)",
            ));
        }
    }
    if !text.is_empty() && !text.ends_with('\n') {
        problems.push(Problem::new(
            file,
            text.lines().count(),
            "no newline at end of file",
            "end the file with a newline",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A scratch workspace under the system temp directory, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("xtask-tidy-{}-{n}-{name}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }

        fn write(&self, file: &str, text: &str) -> &Self {
            let path = self.0.join(file);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
            self
        }

        /// The problems, as `file:line: message` strings.
        fn problems(&self) -> Vec<String> {
            check(&self.0).iter().map(Problem::to_string).collect()
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn assert_one(problems: &[String], prefix: &str, needle: &str) {
        assert_eq!(problems.len(), 1, "expected one problem, got {problems:#?}");
        assert!(problems[0].starts_with(prefix), "{:?} does not start with {prefix:?}", problems[0]);
        assert!(problems[0].contains(needle), "{:?} does not contain {needle:?}", problems[0]);
        assert!(problems[0].contains(" — fix: "), "{:?} has no fix", problems[0]);
    }

    const CLAIM: &str =
        "//! T9: a claim.\n//!\n//! Reference: Rigollet, arXiv 2512.01868, §4.1.\n\nfn f() {}\n";

    #[test]
    fn display_names_file_line_and_fix() {
        let problem = Problem::new(Path::new("a/b.rs"), 3, "broken", "mend it");
        assert_eq!(problem.to_string(), "a/b.rs:3: broken — fix: mend it");
    }

    #[test]
    fn rule1_doc_header() {
        let good = Scratch::new("doc-good");
        good.write("dynamics/src/lib.rs", "\n//! Docs.\nfn f() {}\n");
        good.write("xtask/tests/t.rs", "//! Docs.\n");
        good.write("dynamics/target/debug/build/x/out.rs", "fn generated() {}\n");
        good.write("embeddings/.hidden/x.rs", "fn hidden() {}\n");
        assert_eq!(good.problems(), Vec::<String>::new());

        let bad = Scratch::new("doc-bad");
        bad.write("dynamics/benches/b.rs", "\n// A plain comment.\nfn f() {}\n");
        assert_one(&bad.problems(), "dynamics/benches/b.rs:2: ", "does not open with a `//!` doc comment");
        let empty = Scratch::new("doc-empty");
        empty.write("theorems/examples/e.rs", "");
        assert_one(&empty.problems(), "theorems/examples/e.rs:1: ", "empty file");
    }

    #[test]
    fn rule2_reference() {
        let good = Scratch::new("ref-good");
        good.write("theorems/src/t9.rs", CLAIM);
        let wrapped = "//! T8.\n//!\n//! Reference: Rigollet, \"The Mean-Field Dynamics of Transformers\",\n//! arXiv 2512.01868, Theorem 1, §4.1.\n";
        good.write("theorems/src/t8.rs", wrapped);
        good.write("theorems/src/t7/mod.rs", CLAIM);
        for infrastructure in NOT_CLAIMS {
            good.write(&format!("theorems/src/{infrastructure}"), "//! Not a claim.\n");
        }
        good.write("theorems/src/t7/helper.rs", "//! Not a claim module either.\n");
        good.write("dynamics/src/field.rs", "//! Not in theorems.\n");
        assert_eq!(good.problems(), Vec::<String>::new());

        let missing = Scratch::new("ref-missing");
        missing.write(
            "theorems/src/t9.rs",
            "//! T9: a claim.\n//! Docs.\n\n// Reference: arXiv 2512.01868, §4.1.\n",
        );
        assert_one(&missing.problems(), "theorems/src/t9.rs:3: ", "without a `Reference:` line");
        let nested = Scratch::new("ref-nested");
        nested.write("theorems/src/t7/mod.rs", "//! T7.\n");
        assert_one(&nested.problems(), "theorems/src/t7/mod.rs:2: ", "without a `Reference:` line");

        let no_section = Scratch::new("ref-no-section");
        no_section.write(
            "theorems/src/t9.rs",
            "//! T9.\n//!\n//! Reference: Rigollet, arXiv 2512.01868.\n//!\n//! §4.1\n",
        );
        assert_one(&no_section.problems(), "theorems/src/t9.rs:3: ", "does not mention §");
        let no_paper = Scratch::new("ref-no-paper");
        no_paper.write("theorems/src/t9.rs", "//! T9.\n//! Reference: Rigollet, §4.1.\n");
        assert_one(&no_paper.problems(), "theorems/src/t9.rs:2: ", "does not mention arXiv 2512.01868");
    }

    /// A test file like `theorems/tests/verdicts.rs`: the name and the suffix are string literals.
    const VERDICTS: &str = "//! Verdicts.\nfn check(id: &str) {\n    insta::with_settings!({ snapshot_suffix => id }, {\n        insta::assert_json_snapshot!(\"verdict\", 1);\n    });\n}\n#[test]\nfn t7() {\n    check(\"T7\");\n}\n#[test]\nfn test_unnamed() {\n    insta::assert_snapshot!(\"x\");\n}\n";

    #[test]
    fn rule3_snapshots() {
        let good = Scratch::new("snap-good");
        good.write("theorems/tests/verdicts.rs", VERDICTS);
        good.write("theorems/tests/snapshots/verdicts__verdict@T7.snap", "---\n---\n1\n");
        good.write("theorems/tests/snapshots/verdicts__unnamed.snap", "---\n---\nx\n");
        good.write("theorems/tests/snapshots/verdicts__unnamed-2.snap", "---\n---\nx\n");
        good.write(
            "dynamics/src/field.rs",
            "//! F.\n#[test]\nfn t() { insta::assert_debug_snapshot!(\"speed\", 1); }\n",
        );
        good.write("dynamics/src/snapshots/dynamics__field__tests__speed.snap", "---\n---\n1\n");
        good.write(
            "dynamics/src/lib.rs",
            "//! L.\n#[test]\nfn t() { insta::assert_debug_snapshot!(\"root\", 1); }\n",
        );
        good.write("dynamics/src/snapshots/dynamics__tests__root.snap", "---\n---\n1\n");
        assert_eq!(good.problems(), Vec::<String>::new());

        let suffix = Scratch::new("snap-suffix");
        suffix.write("theorems/tests/verdicts.rs", VERDICTS);
        suffix.write("theorems/tests/snapshots/verdicts__verdict@T9.snap", "1\n");
        assert_one(&suffix.problems(), "theorems/tests/snapshots/verdicts__verdict@T9.snap:1: ", "\"T9\"");

        let name = Scratch::new("snap-name");
        name.write("theorems/tests/verdicts.rs", VERDICTS);
        name.write("theorems/tests/snapshots/verdicts__numbers@T7.snap", "1\n");
        assert_one(&name.problems(), "theorems/tests/snapshots/verdicts__numbers@T7.snap:1: ", "\"numbers\"");

        let stem = Scratch::new("snap-stem");
        stem.write("theorems/tests/verdicts.rs", VERDICTS);
        stem.write("theorems/tests/snapshots/old_verdicts__verdict@T7.snap", "1\n");
        assert_one(
            &stem.problems(),
            "theorems/tests/snapshots/old_verdicts__verdict@T7.snap:1: ",
            "no source file",
        );

        let pending = Scratch::new("snap-pending");
        pending.write("theorems/tests/verdicts.rs", VERDICTS);
        pending.write("theorems/tests/snapshots/verdicts__verdict@T7.snap.new", "1\n");
        assert_one(
            &pending.problems(),
            "theorems/tests/snapshots/verdicts__verdict@T7.snap.new:1: ",
            "pending",
        );
        let inline = Scratch::new("snap-inline");
        inline.write("theorems/tests/verdicts.rs", VERDICTS);
        inline.write("theorems/tests/.verdicts.rs.pending-snap", "{}\n");
        assert_one(&inline.problems(), "theorems/tests/.verdicts.rs.pending-snap:1: ", "pending");
    }

    #[test]
    fn rule4_ignore() {
        let good = Scratch::new("ignore-good");
        let reasons = "//! T.\n#[test]\n#[ignore = \"slow: run with --ignored\"]\nfn slow() {}\n// #[ignore]\nconst S: &str = \"#[ignore]\";\n";
        good.write("dynamics/tests/t.rs", reasons);
        assert_eq!(good.problems(), Vec::<String>::new());

        let bad = Scratch::new("ignore-bad");
        bad.write("dynamics/tests/t.rs", "//! T.\n#[test]\n    #[ignore]\nfn slow() {}\n");
        assert_one(&bad.problems(), "dynamics/tests/t.rs:3: ", "`#[ignore]` without a reason");
        let same_line = Scratch::new("ignore-same-line");
        same_line.write("dynamics/tests/t.rs", "//! T.\n#[test] #[ ignore ]\nfn slow() {}\n");
        assert_one(&same_line.problems(), "dynamics/tests/t.rs:2: ", "`#[ignore]` without a reason");
    }

    #[test]
    fn rule5_regressions() {
        let good = Scratch::new("regress-good");
        good.write("dynamics/tests/fields.rs", "//! F.\n");
        good.write("dynamics/tests/fields.proptest-regressions", "cc 0123\n");
        good.write("dynamics/src/lib.rs", "//! L.\n");
        good.write("dynamics/src/diagnostics/energy.rs", "//! E.\n");
        good.write("dynamics/proptest-regressions/diagnostics/energy.txt", "cc 0123\n");
        assert_eq!(good.problems(), Vec::<String>::new());

        let sibling = Scratch::new("regress-sibling");
        sibling.write("dynamics/tests/old.proptest-regressions", "cc 0123\n");
        assert_one(
            &sibling.problems(),
            "dynamics/tests/old.proptest-regressions:1: ",
            "`dynamics/tests/old.rs`",
        );
        let parallel = Scratch::new("regress-parallel");
        parallel.write("dynamics/proptest-regressions/gone.txt", "cc 0123\n");
        assert_one(
            &parallel.problems(),
            "dynamics/proptest-regressions/gone.txt:1: ",
            "`dynamics/src/gone.rs`",
        );
    }

    #[test]
    fn rule6_whitespace() {
        let good = Scratch::new("ws-good");
        good.write("Cargo.toml", "[workspace]\n");
        good.write("dynamics/src/lib.rs", "//! L.\n\nconst S: &str = \"a \\t\";\n");
        good.write("embeddings/data/inputs.txt", "not checked \n");
        assert_eq!(good.problems(), Vec::<String>::new());

        let trailing = Scratch::new("ws-trailing");
        trailing.write("dynamics/src/lib.rs", "//! L.\nfn f() {}\t\n");
        assert_one(&trailing.problems(), "dynamics/src/lib.rs:2: ", "trailing whitespace");
        let crlf = Scratch::new("ws-crlf");
        crlf.write("Cargo.toml", "[workspace]\r\n");
        assert_one(&crlf.problems(), "Cargo.toml:1: ", "trailing whitespace");
        let unterminated = Scratch::new("ws-newline");
        unterminated.write("xtask/README.md", "# X\n\ntext");
        assert_one(&unterminated.problems(), "xtask/README.md:3: ", "no newline at end of file");
    }
}
