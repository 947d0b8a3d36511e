//! The lint behind "every event line goes through `lvs_common::event!`" (docs/LOGGING.md,
//! scripts/lint.sh runs it). It reads the sources only.
//!
//! - No string literal in daemon or library code contains `event=`: an event line written by
//!   hand (`log::warn!("event=x reason={:?}", e)`, or a `format!` logged later) does not quote
//!   its values the way docs/LOGGING.md says. Only the file that defines `event!` (it
//!   implements the format) writes `event=` itself. Test code (`tests/`, `benches/`, `examples/`,
//!   `testsupport/`, `fuzz/`, `#[cfg(test)]` items) may, since it reads log lines.
//! - Every event an `event!` or `event_line!` call names with a literal has a row in
//!   docs/LOGGING.md's tables, and every key it gives is among that row's fields.

mod rust_source;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use lvs_testsupport::{source_files, workspace_root};
use rust_source::{T, Tok, ident_is, lex, paren, punct_is, split_args, tree};

/// Macros that hand their arguments to the `log` facade.
const LOG_MACROS: &[&str] = &["error", "warn", "info", "debug", "trace", "log"];

/// One finding, at a line of a file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Finding {
    line: usize,
    what: String,
}

/// Test code by its place in the tree.
fn is_test_path(rel: &str) -> bool {
    rel.starts_with("testsupport/")
        || rel.starts_with("fuzz/")
        || ["tests/", "benches/", "examples/"]
            .iter()
            .any(|d| rel.starts_with(d) || rel.contains(&format!("/{d}")))
}

/// `#[cfg(test)]`, `#[cfg(any(test, ..))]`: the attribute group's tokens name `test` under
/// `cfg` and no `not`.
fn is_cfg_test(attr: &[T]) -> bool {
    fn idents(toks: &[T], out: &mut Vec<String>) {
        for t in toks {
            match &t.tok {
                Tok::Ident(s) => out.push(s.clone()),
                Tok::Group(_, inner) => idents(inner, out),
                _ => {}
            }
        }
    }
    let mut names = Vec::new();
    idents(attr, &mut names);
    names.first().is_some_and(|n| n == "cfg")
        && names.iter().any(|n| n == "test")
        && !names.iter().any(|n| n == "not")
}

/// The tokens of non-test code: the item after a `#[cfg(test)]` attribute (up to its body or
/// its `;`) is left out.
fn code_only(toks: &[T]) -> Vec<&T> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        if punct_is(toks.get(i), '#')
            && let Some(T {
                tok: Tok::Group('[', attr),
                ..
            }) = toks.get(i + 1)
            && is_cfg_test(attr)
        {
            i += 2;
            while i < toks.len()
                && !matches!(toks[i].tok, Tok::Group('{', _))
                && !punct_is(toks.get(i), ';')
            {
                i += 1;
            }
            i += 1;
            continue;
        }
        out.push(&toks[i]);
        i += 1;
    }
    out
}

/// `macro_rules! event`: the file that implements the format, the one allowed to write
/// `event=` (wherever it lives: the crate that holds it may change).
fn defines_event_macro(toks: &[T]) -> bool {
    toks.windows(3).any(|w| {
        ident_is(Some(&w[0]), "macro_rules")
            && punct_is(Some(&w[1]), '!')
            && ident_is(Some(&w[2]), "event")
    })
}

/// The literal argument at `at` of a macro call's argument list.
fn literal_arg(args: &[&[T]], at: usize) -> Option<(String, usize)> {
    match args.get(at) {
        Some(
            [
                T {
                    tok: Tok::Str(s),
                    line,
                },
            ],
        ) => Some((s.clone(), *line)),
        _ => None,
    }
}

/// Every string literal with `event=` in it, in code that is not test code. `log_macro`: the
/// log macro whose arguments `toks` are, if any (named in the finding).
fn hand_written(toks: &[T], log_macro: Option<&str>, out: &mut Vec<Finding>) {
    let code = code_only(toks);
    for (i, t) in code.iter().enumerate() {
        match &t.tok {
            Tok::Group(_, inner) => {
                let before = |back: usize| i.checked_sub(back).map(|k| code[k]);
                let called = LOG_MACROS.iter().copied().find(|m| {
                    ident_is(before(2), m) && punct_is(before(1), '!') && paren(Some(t)).is_some()
                });
                hand_written(inner, called.or(log_macro), out);
            }
            Tok::Str(s) if s.contains("event=") => out.push(Finding {
                line: t.line,
                what: format!(
                    "{}{s:?} writes an event line by hand: use lvs_common::event! \
                     (docs/LOGGING.md says how values are quoted)",
                    log_macro.map_or_else(String::new, |m| format!("in {m}!: "))
                ),
            }),
            _ => {}
        }
    }
}

/// One `event!`/`event_line!` call with a literal name: the name and the keys given.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Emitted {
    line: usize,
    name: String,
    keys: Vec<String>,
}

/// The events named by literal in non-test code (`event!(level, "name", key = ..)`,
/// `event_line!("name", key = ..)`, under any path).
fn emitted(toks: &[T], out: &mut Vec<Emitted>) {
    let code = code_only(toks);
    for (i, t) in code.iter().enumerate() {
        let Tok::Ident(m) = &t.tok else {
            if let Tok::Group(_, inner) = &t.tok {
                emitted(inner, out);
            }
            continue;
        };
        let name_at = match m.as_str() {
            "event" => 1,
            "event_line" => 0,
            _ => continue,
        };
        if !punct_is(code.get(i + 1).copied(), '!') {
            continue;
        }
        let Some(inner) = paren(code.get(i + 2).copied()) else {
            continue;
        };
        let args = split_args(inner);
        let Some((name, line)) = literal_arg(&args, name_at) else {
            continue; // a name computed at run time (the alerts' kinds; `$name`)
        };
        let keys = args[name_at + 1..]
            .iter()
            .filter_map(|a| match a {
                [
                    T {
                        tok: Tok::Ident(k), ..
                    },
                    T {
                        tok: Tok::Punct('='),
                        ..
                    },
                    ..,
                ] => Some(k.clone()),
                _ => None,
            })
            .collect();
        out.push(Emitted { line, name, keys });
    }
}

/// docs/LOGGING.md's event rows: each event name (a backquoted word of the first column) with
/// the fields of its rows (the words of the third column).
fn documented(markdown: &str) -> BTreeMap<String, BTreeSet<String>> {
    let words = |cell: &str| -> Vec<String> {
        cell.split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let mut rows: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in markdown.lines() {
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split(" | ")
            .map(str::trim)
            .collect();
        if !line.starts_with("| `") || cells.len() < 5 {
            continue;
        }
        let names: Vec<String> = cells[0]
            .split('`')
            .skip(1)
            .step_by(2)
            .flat_map(words)
            .collect();
        for name in names {
            rows.entry(name).or_default().extend(words(cells[2]));
        }
    }
    rows
}

/// What `emitted` found that `rows` does not document.
fn undocumented(found: &[Emitted], rows: &BTreeMap<String, BTreeSet<String>>) -> Vec<Finding> {
    let mut out = Vec::new();
    for e in found {
        let Some(fields) = rows.get(&e.name) else {
            out.push(Finding {
                line: e.line,
                what: format!("event `{}` has no row in docs/LOGGING.md", e.name),
            });
            continue;
        };
        for k in e.keys.iter().filter(|k| !fields.contains(*k)) {
            out.push(Finding {
                line: e.line,
                what: format!(
                    "key `{k}` of event `{}` is not among its fields in docs/LOGGING.md",
                    e.name
                ),
            });
        }
    }
    out
}

/// Both checks over every Rust file under `root`, by file.
fn check(root: &Path, rows: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut report = Vec::new();
    for path in source_files(root) {
        let rel = path.strip_prefix(root).unwrap_or(&path);
        let rel_s = rel.to_string_lossy();
        if !rel_s.ends_with(".rs") || is_test_path(&rel_s) {
            continue;
        }
        let toks = tree(lex(&std::fs::read_to_string(&path).unwrap_or_default()));
        let mut found = Vec::new();
        if !defines_event_macro(&toks) {
            hand_written(&toks, None, &mut found);
        }
        let mut events = Vec::new();
        emitted(&toks, &mut events);
        found.extend(undocumented(&events, rows));
        found.sort();
        report.extend(
            found
                .into_iter()
                .map(|f| format!("{rel_s}:{}: {}", f.line, f.what)),
        );
    }
    report
}

#[test]
fn every_event_line_goes_through_the_event_macro_and_is_documented() {
    let root = workspace_root();
    let docs = std::fs::read_to_string(root.join("docs/LOGGING.md")).expect("docs/LOGGING.md");
    let report = check(&root, &documented(&docs));
    assert!(
        report.is_empty(),
        "event lines must be built by lvs_common::event! and documented in docs/LOGGING.md:\n{}",
        report.join("\n")
    );
}

// ------------------------------------------------------------------ the reader's own tests

fn findings(src: &str) -> Vec<usize> {
    let mut out = Vec::new();
    hand_written(&tree(lex(src)), None, &mut out);
    out.iter().map(|f| f.line).collect()
}

#[test]
fn hand_written_event_lines_are_found() {
    let src = r####"
        // log::warn!("event=in_a_comment"); /* "event=block" */
        fn f(e: E) {
            log::warn!("event=x reason={:?}", e.to_string());
            error!(
                "event=y a={} b={}",
                1, 2
            );
            let line = format!("change=add event=z");
            log::log!(Level::Info, r#"event=raw"#);
            lvs_common::event!(Level::Warn, "fine", reason = e);
            log::info!("{}", "plain event x");
        }
        #[cfg(test)]
        mod tests {
            fn g() { assert!(log.contains("event=x reason=\"a b\"")); }
        }
        #[cfg(not(test))]
        fn h() { info!("event=not_test"); }
    "####;
    assert_eq!(findings(src), [4, 6, 9, 10, 19]);
    let mut out = Vec::new();
    hand_written(
        &tree(lex(r#"fn f() { log::warn!("event=x"); }"#)),
        None,
        &mut out,
    );
    assert!(out[0].what.starts_with("in warn!: "), "{}", out[0].what);
}

#[test]
fn only_the_file_defining_the_event_macro_may_write_event_eq() {
    let implementation = tree(lex(
        "macro_rules! event { () => {} }\nfn new() { line.push_str(\"event=\"); }",
    ));
    assert!(defines_event_macro(&implementation));
    assert!(!defines_event_macro(&tree(lex(
        "fn f() { lvs_common::event!(Level::Info, \"x\"); }"
    ))));
}

#[test]
fn emitted_events_are_checked_against_the_table() {
    let docs = "\
| event | level | fields | emitted by | meaning |
| --- | --- | --- | --- | --- |
| `a_up` / `a_down` | info / warning | `service [reason]` / `service` | x | y |
| `b` | err | - | x | `c` in the meaning is not a name |
| `level` | `err` | short table |
";
    let rows = documented(docs);
    assert_eq!(rows.keys().collect::<Vec<_>>(), ["a_down", "a_up", "b"]);
    let src = r#"
        fn f() {
            event!(Level::Info, "a_up", service = s, reason = %r);
            lvs_common::event!(Level::Error, "b");
            crate::event!(Level::Error, "b", extra = 1);
            let ev = lvs_common::event_line!("missing", k = ?v,);
            event!(level, name, k = v);
        }
        #[cfg(test)]
        fn t() { event!(Level::Info, "test_only", z = 1); }
    "#;
    let mut found = Vec::new();
    emitted(&tree(lex(src)), &mut found);
    assert_eq!(
        found.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
        ["a_up", "b", "b", "missing"]
    );
    assert_eq!(found[0].keys, ["service", "reason"]);
    let bad: Vec<String> = undocumented(&found, &rows)
        .into_iter()
        .map(|f| format!("{}: {}", f.line, f.what))
        .collect();
    assert_eq!(
        bad,
        [
            "5: key `extra` of event `b` is not among its fields in docs/LOGGING.md",
            "6: event `missing` has no row in docs/LOGGING.md",
        ]
    );
}

#[test]
fn test_code_is_told_by_its_path() {
    for p in [
        "director/tests/sync.rs",
        "tests/x.rs",
        "common/examples/demo_daemon.rs",
        "lockmgr/benches/b.rs",
        "testsupport/src/lib.rs",
        "fuzz/src/lib.rs",
    ] {
        assert!(is_test_path(p), "{p}");
    }
    for p in [
        "director/src/daemon.rs",
        "common/src/event.rs",
        "director/l7/src/tests_of.rs",
    ] {
        assert!(!is_test_path(p), "{p}");
    }
}
