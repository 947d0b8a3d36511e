//! The lint behind the program list of `scripts/test.sh` (scripts/lint.sh runs it, before scripts/test.sh
//! installs anything): every external program a test starts must be listed there, so that
//! `scripts/test.sh` installs it on a fresh machine. It reads the sources only, never the
//! machine, so its verdict does not depend on what happens to be installed.
//!
//! What it reads as "starts a program":
//! - `Command::new("prog")` in any Rust file of the workspace (tests and daemons alike), with
//!   the `.arg`/`.args` that follow it;
//! - in test code (`*/tests/`, `testsupport/`): the first element of a literal array given to
//!   a helper that runs a command ([`ARRAY_HELPERS`]: `tb.exec("c", &["nft", ...])`), and the
//!   string arguments of [`PROGRAM_ARG_HELPERS`] (`run("ip", &[...])`);
//! - in any literal argument list: the program after `timeout [OPTIONS] DURATION`, after
//!   `ip netns exec NS`, after `env VAR=...`, and after `--` (`lvs-lockctl lock NAME -- prog`);
//! - shell: the script after `sh -c`/`bash -c`, a string literal starting with `#!`, a
//!   `format!` string bound to a variable whose name contains `script`, the body given to
//!   [`SHELL_ARG_HELPERS`], and the shell scripts tests run ([`SHELL_FILES`]): each command's
//!   first word (after assignments and wrappers) that is not a builtin, a keyword or a
//!   function of the script; `$(...)` and backquotes included.
//!
//! Not seen: program names computed at run time (they are listed by hand) and python
//! snippets (none starts a program). A path under `/nonexistent/` names a program that a test
//! expects to be missing.

mod rust_source;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use lvs_testsupport::{source_files, workspace_root};
use rust_source::{T, Tok, ident_is, lex, paren, punct_is, split_args, tree};

/// Test helpers whose first literal-array argument is a command line, program first.
const ARRAY_HELPERS: &[&str] = &["exec", "spawn", "sh", "sh_out", "must"];
/// Test helpers with a program as the string argument at this position.
const PROGRAM_ARG_HELPERS: &[(&str, usize)] = &[("run", 0), ("compile_file", 2)];
/// Test helpers with a shell script body as the string argument at this position.
const SHELL_ARG_HELPERS: &[(&str, usize)] = &[("script", 2)];
/// Shell scripts the tests run (the testbed; the init scripts under test; the Debian package
/// test scripts/test.sh runs, and the package build it starts).
const SHELL_FILES: &[&str] = &[
    "scripts/testbed.sh",
    "etc/init.d",
    "scripts/package-test.sh",
    "scripts/package.sh",
];
/// Shell functions of those scripts that run their arguments after skipping this many.
const SHELL_FN_WRAPPERS: &[(&str, usize)] = &[("inns", 1)];

#[rustfmt::skip]
const SHELL_BUILTINS: &[&str] = &[
    ".", ":", "[", "[[", "alias", "bg", "break", "builtin", "cd", "command", "continue",
    "declare", "dirs", "disown", "echo", "eval", "exec", "exit", "export", "false", "fg",
    "getopts", "hash", "jobs", "kill", "let", "local", "mapfile", "popd", "printf", "pushd",
    "pwd", "read", "readarray", "readonly", "return", "set", "shift", "shopt", "source", "test",
    "times", "trap", "true", "type", "typeset", "ulimit", "umask", "unalias", "unset", "wait",
];
/// Words that open or close a compound command; the command proper follows them.
#[rustfmt::skip]
const SHELL_KEYWORDS: &[&str] = &[
    "if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "{", "}", "time",
    "]]",
];

/// One program started, and where.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Found {
    line: usize,
    program: String,
}

// ------------------------------------------------------------------ the list

/// The program list of `scripts/test.sh`: the lines of its `<<'PROGRAMS'` here-document.
fn program_list(test_sh: &str) -> &str {
    let start = test_sh
        .find("<<'PROGRAMS'\n")
        .expect("scripts/test.sh has its <<'PROGRAMS' list")
        + "<<'PROGRAMS'\n".len();
    let len = test_sh[start..]
        .find("\nPROGRAMS\n")
        .expect("scripts/test.sh's program list ends with a PROGRAMS line");
    &test_sh[start..start + len]
}

/// The programs of that list (every first field but `-`).
fn listed(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let program = f.next()?;
            assert!(
                f.next().is_some(),
                "scripts/test.sh's program list: `{l}` has no Debian package"
            );
            (program != "-").then(|| program.to_owned())
        })
        .collect()
}

/// One argument of a command line: a literal, or anything else.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    Lit(String, usize),
    Expr,
}

fn strip_refs(mut toks: &[T]) -> &[T] {
    while let [first, rest @ ..] = toks
        && first.tok == Tok::Punct('&')
    {
        toks = rest;
    }
    toks
}

fn item(toks: &[T]) -> Item {
    match strip_refs(toks) {
        [
            T {
                tok: Tok::Str(s),
                line,
            },
        ] => Item::Lit(s.clone(), *line),
        _ => Item::Expr,
    }
}

/// The elements of `[...]`, `&[...]` or `vec![...]`.
fn array(toks: &[T]) -> Option<Vec<Item>> {
    let inner = match strip_refs(toks) {
        [
            T {
                tok: Tok::Group('[', inner),
                ..
            },
        ] => inner,
        [
            T {
                tok: Tok::Ident(v), ..
            },
            T {
                tok: Tok::Punct('!'),
                ..
            },
            T {
                tok: Tok::Group('[', inner),
                ..
            },
        ] if v == "vec" => inner,
        _ => return None,
    };
    Some(split_args(inner).into_iter().map(item).collect())
}

// ------------------------------------------------------------------ command lines

fn lit(items: &[Item], i: usize) -> Option<&str> {
    match items.get(i) {
        Some(Item::Lit(s, _)) => Some(s),
        _ => None,
    }
}

/// A name or path, not an option or an address (what may follow `--` as a program).
fn program_like(p: &str) -> bool {
    p.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/' || c == '.')
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._+-".contains(c))
}

fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// Everything a command line starts; `start`: its first item is the program.
fn command_line(items: &[Item], start: bool, out: &mut Vec<Found>) {
    if start {
        program_at(items, 0, out);
    }
    for k in 0..items.len() {
        if lit(items, k) == Some("netns") && lit(items, k + 1) == Some("exec") {
            program_at(items, k + 3, out);
        }
        if lit(items, k) == Some("--") && lit(items, k + 1).is_some_and(program_like) {
            program_at(items, k + 1, out);
        }
    }
}

/// The program at `i`, and the one it runs in turn if it is a wrapper.
fn program_at(items: &[Item], i: usize, out: &mut Vec<Found>) {
    let Some(Item::Lit(program, line)) = items.get(i) else {
        return;
    };
    out.push(Found {
        line: *line,
        program: program.clone(),
    });
    let option = |j: usize| lit(items, j).is_some_and(|a| a.starts_with('-'));
    let mut j = i + 1;
    match basename(program) {
        "timeout" => {
            while option(j) {
                let takes_value = matches!(
                    lit(items, j),
                    Some("-s" | "-k" | "--signal" | "--kill-after")
                );
                j += if takes_value { 2 } else { 1 };
            }
            program_at(items, j + 1, out);
        }
        "env" => {
            while option(j) || lit(items, j).is_some_and(|a| a.contains('=')) {
                j += 1;
            }
            program_at(items, j, out);
        }
        "xargs" | "nohup" | "setsid" => {
            while option(j) {
                j += 1;
            }
            program_at(items, j, out);
        }
        "sh" | "bash" | "dash" => {
            while option(j) {
                if lit(items, j) == Some("-c")
                    && let Some(Item::Lit(script, line)) = items.get(j + 1)
                {
                    shell(script, *line, out);
                }
                j += 1;
            }
        }
        _ => {}
    }
}

// ------------------------------------------------------------------ walking Rust code

fn walk(toks: &[T], test_code: bool, out: &mut Vec<Found>) {
    for (i, t) in toks.iter().enumerate() {
        match &t.tok {
            Tok::Group(open, inner) => {
                if *open == '[' {
                    command_line(
                        &split_args(inner).into_iter().map(item).collect::<Vec<_>>(),
                        false,
                        out,
                    );
                }
                walk(inner, test_code, out);
            }
            Tok::Str(s) if s.starts_with("#!") => shell(s, t.line, out),
            Tok::Ident(name) => {
                if name == "Command"
                    && punct_is(toks.get(i + 1), ':')
                    && punct_is(toks.get(i + 2), ':')
                    && ident_is(toks.get(i + 3), "new")
                    && let Some(args) = paren(toks.get(i + 4))
                {
                    command_line(&chain(args, &toks[i + 5..]), true, out);
                }
                if name == "let" {
                    let_script(&toks[i + 1..], out);
                }
                if test_code
                    && !punct_is(i.checked_sub(1).and_then(|p| toks.get(p)), ':')
                    && let Some(args) = paren(toks.get(i + 1))
                {
                    helper_call(name, &split_args(args), out);
                }
            }
            _ => {}
        }
    }
}

/// `Command::new(args)` and the `.arg(..)`/`.args(..)` calls after it, as one command line.
fn chain(new_args: &[T], rest: &[T]) -> Vec<Item> {
    let mut items = vec![item(new_args)];
    let mut j = 0;
    while punct_is(rest.get(j), '.')
        && let Some(T {
            tok: Tok::Ident(method),
            ..
        }) = rest.get(j + 1)
        && let Some(args) = paren(rest.get(j + 2))
    {
        match method.as_str() {
            "arg" => items.push(item(args)),
            "args" => items.extend(array(args).unwrap_or_else(|| vec![Item::Expr])),
            "spawn" | "output" | "status" => break,
            _ => {}
        }
        j += 3;
    }
    items
}

/// `let <..script..> = format!("...")`: a shell script.
fn let_script(rest: &[T], out: &mut Vec<Found>) {
    let mut j = usize::from(ident_is(rest.first(), "mut"));
    let named_script =
        matches!(rest.get(j), Some(T { tok: Tok::Ident(n), .. }) if n.contains("script"));
    j += 1;
    if named_script
        && punct_is(rest.get(j), '=')
        && ident_is(rest.get(j + 1), "format")
        && punct_is(rest.get(j + 2), '!')
        && let Some(args) = paren(rest.get(j + 3))
        && let Some(T {
            tok: Tok::Str(s),
            line,
        }) = args.first()
    {
        shell(s, *line, out);
    }
}

fn helper_call(name: &str, args: &[&[T]], out: &mut Vec<Found>) {
    if ARRAY_HELPERS.contains(&name)
        && let Some(items) = args.iter().find_map(|a| array(a))
    {
        command_line(&items, true, out);
    }
    for &(helper, at) in PROGRAM_ARG_HELPERS {
        if helper == name
            && let Some(Item::Lit(p, line)) = args.get(at).map(|a| item(a))
        {
            let mut items = vec![Item::Lit(p, line)];
            items.extend(args.get(at + 1).and_then(|a| array(a)).unwrap_or_default());
            command_line(&items, true, out);
        }
    }
    for &(helper, at) in SHELL_ARG_HELPERS {
        if helper == name
            && let Some(Item::Lit(body, line)) = args.get(at).map(|a| item(a))
        {
            shell(&body, line, out);
        }
    }
}

fn rust_programs(src: &str, test_code: bool) -> Vec<Found> {
    let mut out = Vec::new();
    walk(&tree(lex(src)), test_code, &mut out);
    out
}

// ------------------------------------------------------------------ shell

#[derive(Debug, Clone, PartialEq)]
enum Sh {
    /// A word: its text with quotes removed, whether it is literal (no expansion), whether it
    /// is an assignment (`NAME=...`).
    Word {
        text: String,
        literal: bool,
        assign: bool,
        line: usize,
    },
    Op(String),
}

/// The end of the balanced `open`..`close` run starting after index `i` (quotes skipped).
fn balanced(c: &[char], mut i: usize, open: char, close: char) -> usize {
    let mut depth = 1;
    while i < c.len() {
        match c[i] {
            '\\' => i += 1,
            '\'' => {
                i += 1;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
            }
            '"' => {
                i += 1;
                while i < c.len() && c[i] != '"' {
                    i += usize::from(c[i] == '\\') + 1;
                }
            }
            ch if ch == open => depth += 1,
            ch if ch == close => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
        i += 1;
    }
    c.len()
}

/// A word being read.
#[derive(Default)]
struct Word {
    text: String,
    /// Something was read (an empty `""` is a word too).
    real: bool,
    expanded: bool,
    assign: bool,
    line: usize,
}

/// Shell text to words and operators; command substitutions are read as scripts of their
/// own (into `out`). Redirections and their targets are dropped.
fn sh_lex(src: &str, first_line: usize, out: &mut Vec<Found>) -> Vec<Sh> {
    let c: Vec<char> = src.chars().collect();
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let mut toks = Vec::new();
    let mut line = first_line;
    let mut i = 0;
    let mut w = Word {
        line,
        ..Word::default()
    };
    let mut redirect_target = false;
    while i < c.len() {
        let ch = c[i];
        if !w.real {
            w.line = line;
        }
        match ch {
            '\\' if at(i + 1) == '\n' => {
                line += 1;
                i += 2;
                continue;
            }
            '\\' => {
                w.text.push(at(i + 1));
                w.real = true;
                i += 2;
                continue;
            }
            '#' if !w.real => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '\'' => {
                let end = (i + 1..c.len()).find(|&j| c[j] == '\'').unwrap_or(c.len());
                w.text.extend(&c[i + 1..end]);
                w.real = true;
                line += c[i + 1..end].iter().filter(|&&x| x == '\n').count();
                i = end + 1;
                continue;
            }
            '"' => {
                w.real = true;
                let mut j = i + 1;
                while j < c.len() && c[j] != '"' {
                    if c[j] == '$' || c[j] == '`' {
                        w.expanded = true;
                        j = expansion(&c, j, line, out);
                        continue;
                    }
                    if c[j] == '\\' {
                        j += 1;
                    }
                    if let Some(&x) = c.get(j) {
                        w.text.push(x);
                        line += usize::from(x == '\n');
                    }
                    j += 1;
                }
                i = j + 1;
                continue;
            }
            '$' | '`' => {
                w.real = true;
                w.expanded = true;
                w.text.push('$');
                i = expansion(&c, i, line, out);
                continue;
            }
            '=' if !w.assign && !w.expanded && is_name(&w.text) => {
                w.assign = true;
                w.text.push('=');
                i += 1;
                if at(i) == '(' {
                    // NAME=(...): an array assignment.
                    i = balanced(&c, i + 1, '(', ')') + 1;
                }
                continue;
            }
            _ => {}
        }
        if !(ch.is_whitespace() || matches!(ch, ';' | '&' | '|' | '(' | ')' | '<' | '>')) {
            w.text.push(ch);
            w.real = true;
            i += 1;
            continue;
        }
        // The end of a word. Digits right before `<` or `>` are a file descriptor.
        let fd = matches!(ch, '<' | '>') && w.text.chars().all(|x| x.is_ascii_digit());
        let done = std::mem::take(&mut w);
        if done.real && !fd && !std::mem::take(&mut redirect_target) {
            toks.push(Sh::Word {
                literal: !done.expanded,
                text: done.text,
                assign: done.assign,
                line: done.line,
            });
        }
        if ch == '\n' {
            toks.push(Sh::Op("\n".into()));
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if matches!(ch, '<' | '>') || (ch == '&' && at(i + 1) == '>') {
            while matches!(at(i), '<' | '>' | '&' | '|') {
                i += 1;
            }
            redirect_target = true;
        } else {
            let two = [ch, at(i + 1)];
            let op: String = if matches!(two, [';', ';'] | ['&', '&'] | ['|', '|']) {
                two.iter().collect()
            } else {
                ch.to_string()
            };
            i += op.len();
            toks.push(Sh::Op(op));
        }
    }
    if w.real && !redirect_target {
        toks.push(Sh::Word {
            literal: !w.expanded,
            text: w.text,
            assign: w.assign,
            line: w.line,
        });
    }
    toks
}

fn is_name(s: &str) -> bool {
    let mut ch = s.chars();
    ch.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && ch.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

/// Skips the expansion at `i` (`$x`, `${..}`, `$((..))`, `$(..)`, `` `..` ``); reads a
/// command substitution as a script. Returns the index after it.
fn expansion(c: &[char], i: usize, line: usize, out: &mut Vec<Found>) -> usize {
    let at = |k: usize| c.get(k).copied().unwrap_or('\0');
    if c[i] == '`' {
        let end = (i + 1..c.len()).find(|&j| c[j] == '`').unwrap_or(c.len());
        shell(&c[i + 1..end].iter().collect::<String>(), line, out);
        return end + 1;
    }
    match at(i + 1) {
        '(' if at(i + 2) == '(' => balanced(c, i + 3, '(', ')') + 2,
        '(' => {
            let end = balanced(c, i + 2, '(', ')');
            shell(
                &c[i + 2..end.min(c.len())].iter().collect::<String>(),
                line,
                out,
            );
            end + 1
        }
        '{' => balanced(c, i + 2, '{', '}') + 1,
        x if x.is_ascii_alphanumeric() || x == '_' => {
            let mut j = i + 1;
            while at(j).is_ascii_alphanumeric() || at(j) == '_' {
                j += 1;
            }
            j
        }
        _ => i + 2, // $$, $?, $@, $*, $#, $!, $-
    }
}

/// The programs a shell script starts.
fn shell(src: &str, first_line: usize, out: &mut Vec<Found>) {
    if let Some(first) = src.lines().next()
        && let Some(interp) = first.strip_prefix("#!")
    {
        // `#!/usr/bin/env bash` runs env, which runs bash.
        let mut words = interp.split_whitespace();
        for program in words.next().into_iter().chain(
            words
                .filter(|_| interp.trim_start().starts_with("/usr/bin/env"))
                .take(1),
        ) {
            out.push(Found {
                line: first_line,
                program: program.to_owned(),
            });
        }
    }
    // `name() {`: the script's own functions are not programs.
    let functions: BTreeSet<String> = src
        .match_indices("()")
        .filter_map(|(i, _)| {
            let before = src[..i].trim_end();
            let start = before
                .rfind(|x: char| !(x.is_alphanumeric() || x == '_' || x == '-'))
                .map_or(0, |k| k + 1);
            let name = &before[start..];
            is_name(&name.replace('-', "_")).then(|| name.to_owned())
        })
        .collect();
    let toks = sh_lex(src, first_line, out);
    let mut cases = 0usize; // open `case`s
    let mut pattern = false; // a case pattern comes next
    let mut i = 0;
    while i < toks.len() {
        // One command: from here to the next separator.
        let end = (i..toks.len())
            .find(|&j| matches!(&toks[j], Sh::Op(_)))
            .unwrap_or(toks.len());
        let words: Vec<(&str, bool, bool, usize)> = toks[i..end]
            .iter()
            .filter_map(|t| match t {
                Sh::Word {
                    text,
                    literal,
                    assign,
                    line,
                } => Some((text.as_str(), *literal, *assign, *line)),
                Sh::Op(_) => None,
            })
            .collect();
        let next_op = match toks.get(end) {
            Some(Sh::Op(o)) => o.as_str(),
            _ => "",
        };
        if words.is_empty() {
            // An empty line, or `;;` alone on one.
            pattern |= next_op == ";;";
            i = end + 1;
            continue;
        }
        let mut w = 0;
        // Keywords that open or close a compound command.
        while w < words.len() && words[w].1 && SHELL_KEYWORDS.contains(&words[w].0) {
            w += 1;
        }
        let first = words.get(w).map(|x| x.0);
        if first == Some("esac") {
            cases = cases.saturating_sub(1);
            pattern = false;
        } else if pattern && cases > 0 {
            // `pat1|pat2)`: skip to the `)`.
            let close = (i..toks.len())
                .find(|&j| toks[j] == Sh::Op(")".into()))
                .unwrap_or(toks.len());
            pattern = false;
            i = close + 1;
            continue;
        } else if first == Some("case") {
            cases += 1;
            pattern = true;
        } else if matches!(first, Some("for" | "select" | "function")) {
            // `for x in words`: no command here.
        } else if first.is_some() && next_op == "(" && words.len() == w + 1 {
            // `name() {`: a function definition.
            i = end + 2;
            continue;
        } else {
            while w < words.len() && words[w].2 {
                w += 1;
            }
            shell_command(&words[w..], &functions, out);
        }
        if next_op == ";;" {
            pattern = true;
        }
        i = end + 1;
    }
}

/// One simple command's words (assignments already skipped).
fn shell_command(
    words: &[(&str, bool, bool, usize)],
    functions: &BTreeSet<String>,
    out: &mut Vec<Found>,
) {
    let items: Vec<Item> = words
        .iter()
        .map(|&(text, literal, _, line)| {
            // `{name}` is a format! argument, filled in at run time.
            let placeholder = text.starts_with('{') && text.ends_with('}') && text.len() > 2;
            if literal && !placeholder {
                Item::Lit(text.to_owned(), line)
            } else {
                Item::Expr
            }
        })
        .collect();
    let mut w = 0;
    loop {
        let Some(first) = lit(&items, w) else {
            // Not a literal program; its arguments may still hold `-- prog` or `netns exec`.
            command_line(&items, false, out);
            return;
        };
        if first == "exec"
            || (first == "command" && !matches!(lit(&items, w + 1), Some("-v" | "-V")))
        {
            w += 1;
            while lit(&items, w).is_some_and(|a| a.starts_with('-')) {
                w += 1;
            }
            continue;
        }
        if let Some(&(_, skip)) = SHELL_FN_WRAPPERS.iter().find(|(f, _)| *f == first) {
            w += 1 + skip;
            continue;
        }
        if SHELL_BUILTINS.contains(&first) || functions.contains(first) {
            return;
        }
        command_line(&items[w..], true, out);
        return;
    }
}

// ------------------------------------------------------------------ the check

/// Every program the sources under `root` start, by file.
fn programs_started(root: &Path) -> BTreeMap<PathBuf, Vec<Found>> {
    let all = source_files(root);
    let mut found = BTreeMap::new();
    for path in all {
        let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
        let rel_s = rel.to_string_lossy();
        let text = || std::fs::read_to_string(&path).unwrap_or_default();
        let got = if rel_s == "testsupport/tests/programs_declared.rs" {
            continue; // its own examples
        } else if rel_s.ends_with(".rs") {
            let test_code = rel_s.contains("tests/") || rel_s.starts_with("testsupport/");
            rust_programs(&text(), test_code)
        } else if SHELL_FILES
            .iter()
            .any(|f| rel_s == *f || rel_s.starts_with(&format!("{f}/")))
        {
            let mut out = Vec::new();
            shell(&text(), 1, &mut out);
            out
        } else {
            continue;
        };
        if !got.is_empty() {
            found.insert(rel, got);
        }
    }
    found
}

#[test]
fn every_program_a_test_starts_is_in_the_list_of_scripts_test_sh() {
    let root = workspace_root();
    let test_sh =
        std::fs::read_to_string(root.join("scripts/test.sh")).expect("read scripts/test.sh");
    let listed = listed(program_list(&test_sh));
    let mut missing = BTreeSet::new();
    for (file, found) in programs_started(&root) {
        for f in found {
            if !listed.contains(&f.program) && !f.program.starts_with("/nonexistent/") {
                missing.insert((file.clone(), f.line, f.program));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "tests start programs that scripts/test.sh's program list does not name (add \
         `PROGRAM DEBIAN-PACKAGE` lines to it so that it installs them):\n{}",
        missing
            .iter()
            .map(|(file, line, program)| format!("{}:{line}: {program}", file.display()))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

// ------------------------------------------------------------------ the reader's own tests

fn names(found: &[Found]) -> Vec<&str> {
    let mut v: Vec<&str> = found.iter().map(|f| f.program.as_str()).collect();
    v.sort_unstable();
    v.dedup();
    v
}

#[test]
fn rust_commands_helpers_and_wrappers_are_read() {
    // The sample source lives outside Rust source, so that no scanner of test code takes its
    // commands for programs the tests start.
    let src = include_str!("fixtures/rust_commands.txt");
    assert_eq!(
        names(&rust_programs(src, true)),
        [
            "cat", "date", "ethtool", "flock", "ip", "nft", "openssl", "seq", "sh", "socat",
            "tcpdump", "timeout"
        ]
    );
    // Helpers are read in test code only; `Command::new` everywhere.
    assert_eq!(
        names(&rust_programs(
            "fn f() { exec(&[\"a\"]); Command::new(\"b\"); }",
            false
        )),
        ["b"]
    );
}

#[test]
fn shell_scripts_are_read_command_by_command() {
    let src = r#"#!/bin/sh
# a comment naming notaprogram
set -eu
VIP=1.2.3.4
RS=(a b c)
die() { echo "x: $*" >&2; exit 1; }
inns() { local n=$1; shift; ip netns exec "$P-$n" "$@"; }
[ "$(id -u)" -eq 0 ] || die "root"
case "$1" in
    a|b) gw=${2:-$X} ;;
    *[!a-z]*) die "bad" ;;
    start)
        inns d python3 -c 'print(1)' >/dev/null 2>&1 &
        case "$?" in
            0) echo "pid $(cat "$F")" ;;
        esac
        ;;
esac
for i in 1 2 3; do
    xargs -r kill < "$f" || true
    "$DAEMON" --check-config && start-stop-daemon --start \
        --quiet
    exec 3<>/dev/tcp/127.0.0.1/80
    out="$(dirname "$0")/calls"
    env | sort
    exec sleep 60
    command -v ethtool >/dev/null
done
"#;
    let mut out = Vec::new();
    shell(src, 1, &mut out);
    assert_eq!(
        names(&out),
        [
            "/bin/sh",
            "cat",
            "dirname",
            "env",
            "id",
            "ip",
            "kill",
            "python3",
            "sleep",
            "sort",
            "start-stop-daemon",
            "xargs"
        ]
    );
    let line = |p: &str| out.iter().find(|f| f.program == p).map(|f| f.line);
    assert_eq!(line("start-stop-daemon"), Some(21));
    assert_eq!(line("sleep"), Some(26));
}

#[test]
fn the_list_gives_programs_and_skips_package_only_lines() {
    let l = listed("# c\nip iproute2\n- libc6-dev\n/usr/bin/chromium chromium\n");
    assert_eq!(
        l.into_iter().collect::<Vec<_>>(),
        ["/usr/bin/chromium", "ip"]
    );
}
