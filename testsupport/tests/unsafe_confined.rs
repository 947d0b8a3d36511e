//! The lint that keeps `unsafe` in the `sys` modules (scripts/lint.sh runs it): every system
//! call or raw-memory access Rust cannot check sits behind a safe function in a file named
//! `sys.rs` or under a `sys/` directory, so that a reviewer finds all of it in one place per
//! crate (the workspace's clippy lints make each block carry its `// SAFETY:` comment).
//!
//! It reads the sources only: the keyword `unsafe` in code (not in comments, strings or
//! character literals) of a non-test Rust file. Test code is not checked: files under
//! `tests/`, `benches/` or `examples/`, items marked `#[cfg(test)]`, files declared by
//! `#[cfg(test)] mod NAME;`, and files marked `#![cfg(test)]`.
//!
//! [`ALLOWED`] lists the files outside `sys` modules that may still use it, each with why. An
//! entry that no longer uses `unsafe` (or no longer exists) fails the lint too, so the list
//! only ever shrinks to what is true.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use lvs_testsupport::{source_files, workspace_root};

/// Files outside `sys` modules allowed to use `unsafe`, relative to the workspace root, with
/// the reason.
const ALLOWED: &[(&str, &str)] = &[
    (
        "director/afpacket/src/ring.rs",
        "ring access of the mmap'd AF_PACKET ring: moving into afpacket's sys.rs (issue 13)",
    ),
    (
        "director/afpacket/src/rx.rs",
        "ring access of the receive ring: moving into afpacket's sys.rs (issue 13)",
    ),
    (
        "director/afpacket/src/tx.rs",
        "ring access of the transmit ring: moving into afpacket's sys.rs (issue 13)",
    ),
    (
        "director/src/sync/engine.rs",
        "the sync engine's socket options: moving into a sys module (issue 13)",
    ),
    (
        "director/src/sync/ring.rs",
        "the sync engine's lock-free ring: moving into a sys module (issue 13)",
    ),
    (
        "sched-plugins/abi/src/lib.rs",
        "the plugin ABI itself: `unsafe extern \"C\"` function types, the table's Sync, \
         the exported entry symbol",
    ),
    (
        "sched-plugins/abi/src/thunks.rs",
        "the C ABI thunks between a plugin's table and its Rust scheduler",
    ),
    (
        "sched-plugins/host/src/instance.rs",
        "calls into a loaded plugin through its C function table",
    ),
    (
        "sched-plugins/host/src/plugin.rs",
        "dlopen of a plugin, its entry symbol, the C strings of its table",
    ),
    (
        "lockmgr/capi/src/ffi.rs",
        "the C API: every exported function takes pointers from C callers",
    ),
];

/// Directories whose Rust files are test code.
const TEST_DIRS: &[&str] = &["tests", "benches", "examples"];

// ------------------------------------------------------------------ reading Rust

/// One token of Rust source that matters here: an identifier or keyword, or one punctuation
/// character; comments, strings and character literals are gone.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tok {
    text: String,
    line: usize,
}

/// The identifiers and punctuation of `src`, with their lines.
fn tokens(src: &str) -> Vec<Tok> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    // Skips to just past the `"` that ends a string (escapes honoured), counting lines.
    let skip_string = |mut i: usize, line: &mut usize| {
        while i < c.len() {
            match c[i] {
                '\\' => i += 1,
                '"' => return i + 1,
                '\n' => *line += 1,
                _ => {}
            }
            i += 1;
        }
        i
    };
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && c.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if c[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if ch == '"' {
            i = skip_string(i + 1, &mut line);
        } else if ch == '\'' {
            // A character literal ('a', '\n', '\''), or a lifetime ('a, 'static).
            if c.get(i + 1) == Some(&'\\') {
                // Past the quote, the backslash and the escaped character.
                i += 3;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if c.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
        } else if ch.is_alphabetic() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            // Raw strings: r"...", r#"..."#, br##"..."## ...
            if matches!(word.as_str(), "r" | "br" | "cr") && matches!(c.get(i), Some('"' | '#')) {
                let hashes = c[i..].iter().take_while(|&&h| h == '#').count();
                if c.get(i + hashes) == Some(&'"') {
                    i += hashes + 1;
                    while i < c.len() {
                        if c[i] == '"'
                            && c[i + 1..].iter().take_while(|&&h| h == '#').count() >= hashes
                        {
                            i += 1 + hashes;
                            break;
                        }
                        if c[i] == '\n' {
                            line += 1;
                        }
                        i += 1;
                    }
                    continue;
                }
            }
            out.push(Tok { text: word, line });
        } else if ch.is_ascii_digit() {
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
        } else {
            if !ch.is_whitespace() {
                out.push(Tok {
                    text: ch.to_string(),
                    line,
                });
            }
            i += 1;
        }
    }
    out
}

fn texts(toks: &[Tok]) -> impl Iterator<Item = &str> {
    toks.iter().map(|t| t.text.as_str())
}

/// `toks` starts with the attribute `#[cfg(test)]` (or `#![cfg(test)]` when `inner`).
fn is_cfg_test(toks: &[Tok], inner: bool) -> bool {
    let want: &[&str] = if inner {
        &["#", "!", "[", "cfg", "(", "test", ")", "]"]
    } else {
        &["#", "[", "cfg", "(", "test", ")", "]"]
    };
    toks.len() >= want.len() && texts(&toks[..want.len()]).eq(want.iter().copied())
}

/// Index just past the item starting at `i` (its attributes, then up to its `;` or its
/// closing `}` at depth 0).
fn skip_item(toks: &[Tok], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < toks.len() {
        match toks[i].text.as_str() {
            "(" | "[" => depth += 1,
            ")" | "]" => depth = depth.saturating_sub(1),
            "{" => depth += 1,
            "}" => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i + 1;
                }
            }
            ";" if depth == 0 => return i + 1,
            _ => {}
        }
        i += 1;
    }
    i
}

/// What one file holds: the lines of `unsafe` outside test items, and the modules it
/// declares only for tests (`#[cfg(test)] mod NAME;`).
#[derive(Debug, Default, PartialEq, Eq)]
struct Scan {
    unsafe_lines: Vec<usize>,
    test_modules: Vec<String>,
}

fn scan(src: &str) -> Scan {
    let toks = tokens(src);
    let mut s = Scan::default();
    if (0..toks.len()).any(|i| is_cfg_test(&toks[i..], true)) {
        return s;
    }
    let mut i = 0;
    while i < toks.len() {
        if is_cfg_test(&toks[i..], false) {
            let end = skip_item(&toks, i + 7);
            let item: Vec<&str> = texts(&toks[i + 7..end]).collect();
            if let [.., "mod", name, ";"] = item.as_slice() {
                s.test_modules.push((*name).to_owned());
            }
            i = end;
            continue;
        }
        if toks[i].text == "unsafe" {
            s.unsafe_lines.push(toks[i].line);
        }
        i += 1;
    }
    s
}

// ------------------------------------------------------------------ the tree

/// The Rust files under `root` outside test directories.
fn rust_files(root: &Path) -> Vec<PathBuf> {
    source_files(root)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .filter(|p| {
            let rel = p.strip_prefix(root).unwrap_or(p);
            !rel.components()
                .any(|c| TEST_DIRS.iter().any(|d| c.as_os_str() == *d))
        })
        .collect()
}

/// The file of module `name` declared in `file`.
fn module_files(file: &Path, name: &str) -> [PathBuf; 2] {
    let dir = file.parent().unwrap_or(Path::new("."));
    let stem = file.file_stem().unwrap_or_default();
    let base = if ["lib", "main", "mod"].iter().any(|s| stem == *s) {
        dir.to_path_buf()
    } else {
        dir.join(stem)
    };
    [
        base.join(format!("{name}.rs")),
        base.join(name).join("mod.rs"),
    ]
}

fn in_sys_module(rel: &Path) -> bool {
    rel.file_name().is_some_and(|n| n == "sys.rs")
        || rel
            .parent()
            .is_some_and(|d| d.components().any(|c| c.as_os_str() == "sys"))
}

/// Every non-test Rust file under `root` that uses `unsafe`, with the lines.
fn unsafe_uses(root: &Path) -> Vec<(PathBuf, Vec<usize>)> {
    let files = rust_files(root);
    let mut scans = Vec::new();
    let mut test_only = BTreeSet::new();
    for path in files {
        let src = std::fs::read_to_string(&path).unwrap_or_default();
        let s = scan(&src);
        for m in &s.test_modules {
            test_only.extend(module_files(&path, m));
        }
        scans.push((path, s.unsafe_lines));
    }
    scans
        .into_iter()
        .filter(|(path, lines)| !lines.is_empty() && !test_only.contains(path))
        .map(|(path, lines)| {
            (
                path.strip_prefix(root).unwrap_or(&path).to_path_buf(),
                lines,
            )
        })
        .collect()
}

#[test]
fn unsafe_stays_in_sys_modules() {
    let root = workspace_root();
    let used = unsafe_uses(&root);
    let allowed: BTreeSet<&str> = ALLOWED.iter().map(|(f, _)| *f).collect();
    let outside: Vec<String> = used
        .iter()
        .filter(|(rel, _)| !in_sys_module(rel) && !allowed.contains(rel.to_string_lossy().as_ref()))
        .map(|(rel, lines)| format!("{}: line {lines:?}", rel.display()))
        .collect();
    assert!(
        outside.is_empty(),
        "`unsafe` outside a sys module (move it behind a safe function in the crate's sys.rs, \
         each block with a `// SAFETY:` comment):\n{}",
        outside.join("\n")
    );
    let using: BTreeSet<String> = used
        .iter()
        .map(|(rel, _)| rel.to_string_lossy().into_owned())
        .collect();
    let stale: Vec<&str> = allowed
        .iter()
        .copied()
        .filter(|f| !using.contains(*f))
        .collect();
    assert!(
        stale.is_empty(),
        "these files in ALLOWED (testsupport/tests/unsafe_confined.rs) no longer use `unsafe` \
         outside tests, or no longer exist: take them off the list\n{}",
        stale.join("\n")
    );
}

// ------------------------------------------------------------------ the reader's own tests

#[test]
fn unsafe_is_found_in_code_only() {
    let src = r####"
// unsafe in a comment
/* unsafe /* nested unsafe */ still a comment: unsafe */
/// The run directory is unsafe to use.
fn a() -> &'static str {
    let _c = '"';
    let _q = '\'';
    let _s = "unsafe \" unsafe";
    let _r = r#"unsafe "quoted" unsafe"#;
    let _b = br"unsafe";
    "unsafe"
}
fn b<'a>(x: &'a u8) -> u8 {
    unsafe { *(x as *const u8) }
}
unsafe impl Send for X {}
"####;
    assert_eq!(scan(src).unsafe_lines, vec![14, 16]);
}

#[test]
fn test_items_and_test_files_are_skipped() {
    let src = r#"
#[cfg(test)]
mod tests {
    fn t() { unsafe { f() } }
}
#[cfg(test)]
#[allow(unused)]
const X: [u8; 2] = [0; 2];
#[cfg(test)]
mod testutil;
fn real() { unsafe { g() } }
#[cfg(test)]
fn helper() { let v = vec![1; 3]; unsafe { h() } }
"#;
    let s = scan(src);
    assert_eq!(s.unsafe_lines, vec![11]);
    assert_eq!(s.test_modules, vec!["testutil".to_owned()]);
    assert!(
        scan("//! Test helpers.\n#![cfg(test)]\nfn f() { unsafe { g() } }\n")
            .unsafe_lines
            .is_empty()
    );
    assert_eq!(
        module_files(Path::new("a/src/lib.rs"), "testutil"),
        [
            PathBuf::from("a/src/testutil.rs"),
            PathBuf::from("a/src/testutil/mod.rs")
        ]
    );
    assert_eq!(
        module_files(Path::new("a/src/checks.rs"), "t")[0],
        PathBuf::from("a/src/checks/t.rs")
    );
}

#[test]
fn sys_modules_are_recognised() {
    assert!(in_sys_module(Path::new("netinfo/src/sys.rs")));
    assert!(in_sys_module(Path::new(
        "director/afpacket/src/sys/ring.rs"
    )));
    assert!(!in_sys_module(Path::new("netinfo/src/garp.rs")));
    assert!(!in_sys_module(Path::new("netinfo/src/sysctl.rs")));
}
