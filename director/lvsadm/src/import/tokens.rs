//! keepalived.conf's syntax: words, `"quoted strings"`, `{ }` blocks, comments from a word
//! starting with `#` or `!` to the end of the line, and `include FILE` (followed, with `*`
//! and `?` in the file name part, as keepalived does with glob(3)). The result is a tree of
//! [`Node`]s, each with the file and line it came from; what the words mean is
//! [`super::keepalived`]'s business.

use std::path::{Path, PathBuf};

use super::{ImportError, Origin};

/// Includes nested deeper than this are refused: a file including itself would never end.
const MAX_INCLUDE_DEPTH: usize = 8;

/// One statement: a keyword, its arguments on the same line, and its block if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub at: Origin,
    pub words: Vec<String>,
    pub children: Vec<Node>,
    /// Whether a `{ }` block followed (an empty one too).
    pub block: bool,
    /// The statement's line as written, comments removed, for notes.
    pub text: String,
}

impl Node {
    pub fn keyword(&self) -> &str {
        self.words.first().map_or("", String::as_str)
    }

    pub fn args(&self) -> &[String] {
        self.words.get(1..).unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Open,
    Close,
    Newline,
}

/// Splits one file's text into tokens with their line numbers.
fn lex(text: &str, file: &str) -> Result<Vec<(Tok, usize)>, ImportError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let mut chars = line.char_indices().peekable();
        while let Some(&(_, c)) = chars.peek() {
            if c.is_whitespace() {
                chars.next();
            } else if c == '#' || c == '!' {
                break;
            } else if c == '{' {
                chars.next();
                out.push((Tok::Open, n));
            } else if c == '}' {
                chars.next();
                out.push((Tok::Close, n));
            } else if c == '"' {
                chars.next();
                let mut word = String::new();
                let mut closed = false;
                while let Some((_, c)) = chars.next() {
                    match c {
                        '"' => {
                            closed = true;
                            break;
                        }
                        '\\' => match chars.next() {
                            Some((_, e)) => word.push(e),
                            None => break,
                        },
                        c => word.push(c),
                    }
                }
                if !closed {
                    return Err(ImportError::syntax(
                        Origin::new(file, n),
                        "a quoted string is not closed on its line",
                    ));
                }
                out.push((Tok::Word(word), n));
            } else {
                let mut word = String::new();
                while let Some(&(_, c)) = chars.peek() {
                    if c.is_whitespace() || c == '{' || c == '}' || c == '"' {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                out.push((Tok::Word(word), n));
            }
        }
        out.push((Tok::Newline, n));
    }
    Ok(out)
}

/// The comment-free text of line `n` (1-based), for notes.
fn line_text(text: &str, n: usize) -> String {
    let line = text.lines().nth(n.saturating_sub(1)).unwrap_or("");
    let mut in_quote = false;
    let mut end = line.len();
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_quote = !in_quote,
            '#' | '!' if !in_quote && prev_space => {
                end = i;
                break;
            }
            _ => {}
        }
        prev_space = c.is_whitespace() || c == '{' || c == '}';
    }
    line[..end].trim().to_owned()
}

/// Reads what keepalived would read from `path`: the tree of its statements, includes
/// followed.
pub fn read(path: &Path) -> Result<Vec<Node>, ImportError> {
    let text = std::fs::read_to_string(path).map_err(|e| ImportError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    parse(&text, &path.display().to_string(), path.parent(), 0)
}

/// Parses text already read; `dir` resolves relative includes (None: includes refused, for
/// the property test and callers without files).
pub fn parse(
    text: &str,
    file: &str,
    dir: Option<&Path>,
    depth: usize,
) -> Result<Vec<Node>, ImportError> {
    let toks = lex(text, file)?;
    let mut stack: Vec<Vec<Node>> = vec![Vec::new()];
    // The statement being read, and whether its block is open (then it is on `open`).
    let mut open: Vec<Node> = Vec::new();
    let mut current: Option<Node> = None;
    for (tok, n) in toks {
        let at = Origin::new(file, n);
        match tok {
            Tok::Word(w) => match current.as_mut() {
                Some(node) => node.words.push(w),
                None => {
                    current = Some(Node {
                        at,
                        words: vec![w],
                        children: Vec::new(),
                        block: false,
                        text: line_text(text, n),
                    });
                }
            },
            Tok::Open => {
                // `{` opens the block of the statement on its line, or of the one just
                // ended on an earlier line (`virtual_server 192.0.2.1 80` + `{` below it).
                let node = match current.take() {
                    Some(node) => node,
                    None => match stack.last_mut().and_then(Vec::pop) {
                        Some(node) if !node.block => node,
                        _ => {
                            return Err(ImportError::syntax(at, "`{` without a keyword before it"));
                        }
                    },
                };
                let mut node = node;
                node.block = true;
                open.push(node);
                stack.push(Vec::new());
            }
            Tok::Close => {
                if let Some(node) = current.take() {
                    stack.last_mut().expect("the stack has a level").push(node);
                }
                let Some(mut node) = open.pop() else {
                    return Err(ImportError::syntax(at, "`}` closes no block"));
                };
                node.children = stack.pop().expect("one level per open block");
                stack.last_mut().expect("the top level stays").push(node);
            }
            Tok::Newline => {
                if let Some(node) = current.take() {
                    if node.keyword() == "include" {
                        let nodes = include(&node, dir, depth)?;
                        let level = stack.last_mut().expect("the top level stays");
                        level.extend(nodes);
                        // Kept (after what it brought in), so that its line is accounted for.
                        level.push(node);
                    } else {
                        stack.last_mut().expect("the top level stays").push(node);
                    }
                }
            }
        }
    }
    if let Some(node) = open.pop() {
        return Err(ImportError::syntax(
            node.at.clone(),
            format!(
                "the block of `{}` opened here is not closed (a `}}` is missing)",
                node.keyword()
            ),
        ));
    }
    Ok(stack.pop().unwrap_or_default())
}

/// `include PATTERN`: the files it names, in name order, parsed in place.
fn include(node: &Node, dir: Option<&Path>, depth: usize) -> Result<Vec<Node>, ImportError> {
    let [pattern] = node.args() else {
        return Err(ImportError::syntax(
            node.at.clone(),
            "include takes one file name (or pattern)",
        ));
    };
    let Some(dir) = dir else {
        return Err(ImportError::syntax(
            node.at.clone(),
            "include is not followed here",
        ));
    };
    if depth >= MAX_INCLUDE_DEPTH {
        return Err(ImportError::syntax(
            node.at.clone(),
            format!(
                "includes nested more than {MAX_INCLUDE_DEPTH} deep (does a file include itself?)"
            ),
        ));
    }
    let path = dir.join(pattern);
    let files = expand(&path).map_err(|reason| ImportError::syntax(node.at.clone(), reason))?;
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| {
            ImportError::syntax(node.at.clone(), format!("include {}: {e}", f.display()))
        })?;
        out.extend(parse(
            &text,
            &f.display().to_string(),
            f.parent(),
            depth + 1,
        )?);
    }
    Ok(out)
}

/// The files `path` names: itself, or with `*`/`?` in its last part the matching files.
/// A pattern that matches nothing is no error (keepalived skips it); a plain name that does
/// not exist is.
fn expand(path: &Path) -> Result<Vec<PathBuf>, String> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("include {}: not a file name", path.display()))?;
    let parent = path.parent().unwrap_or(Path::new("/"));
    if parent.to_string_lossy().contains(['*', '?']) {
        return Err(format!(
            "include {}: patterns are followed in the file name only",
            path.display()
        ));
    }
    if !name.contains(['*', '?']) {
        if !path.is_file() {
            return Err(format!("include {}: no such file", path.display()));
        }
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = match std::fs::read_dir(parent) {
        Ok(rd) => rd
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| !n.starts_with('.') && glob_match(name, n))
            })
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    Ok(files)
}

/// `*` and `?` of glob(3) over one file name.
fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = name.chars().collect();
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(text: &str) -> Vec<Node> {
        parse(text, "k.conf", None, 0).unwrap()
    }

    #[test]
    fn blocks_words_quotes_and_comments() {
        let t = tree(
            "! Configuration File for keepalived\nglobal_defs {\n  notification_email {\n    a@example.org # ops\n  }\n  router_id LVS_1\n}\n\
             virtual_server 192.0.2.1 80\n{\n  real_server 10.0.0.1 80 { weight 2 }\n  MISC_CHECK {\n    misc_path \"/bin/check \\\"x\\\" #1\"\n  }\n}\n",
        );
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].keyword(), "global_defs");
        assert_eq!(t[0].children[0].children[0].words, ["a@example.org"]);
        assert_eq!(t[0].children[1].words, ["router_id", "LVS_1"]);
        assert_eq!(t[1].at.line, 8);
        assert_eq!(t[1].args(), ["192.0.2.1", "80"]);
        let rs = &t[1].children[0];
        assert_eq!(rs.children[0].words, ["weight", "2"]);
        assert_eq!(rs.at.line, 10);
        let misc = &t[1].children[1].children[0];
        assert_eq!(misc.words, ["misc_path", "/bin/check \"x\" #1"]);
        assert_eq!(t[0].children[0].children[0].text, "a@example.org");
    }

    #[test]
    fn errors_name_the_line() {
        for (text, line, what) in [
            ("a {\n b\n", 1, "not closed"),
            ("a\n}\n", 2, "closes no block"),
            ("x \"open\n", 1, "quoted"),
            ("a {\n}\n{\n", 3, "without a keyword"),
            ("include other.conf\n", 1, "not followed"),
        ] {
            let e = parse(text, "k.conf", None, 0).unwrap_err().to_string();
            assert!(e.starts_with(&format!("k.conf:{line}:")), "{e}");
            assert!(e.contains(what), "{e}");
        }
    }

    #[test]
    fn includes_are_followed_with_their_own_lines() {
        let dir = std::env::temp_dir().join(format!("lvsadm-inc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("conf.d")).unwrap();
        std::fs::write(dir.join("conf.d/b.conf"), "\nb 2\n").unwrap();
        std::fs::write(dir.join("conf.d/a.conf"), "a 1\n").unwrap();
        std::fs::write(dir.join("conf.d/a.txt"), "no\n").unwrap();
        std::fs::write(dir.join("main.conf"), "top\ninclude conf.d/*.conf\nend\n").unwrap();
        let t = read(&dir.join("main.conf")).unwrap();
        let words: Vec<_> = t.iter().map(|n| n.keyword().to_owned()).collect();
        assert_eq!(words, ["top", "a", "b", "include", "end"]);
        assert!(t[2].at.file.ends_with("conf.d/b.conf") && t[2].at.line == 2);
        std::fs::write(dir.join("main.conf"), "include main.conf\n").unwrap();
        let e = read(&dir.join("main.conf")).unwrap_err().to_string();
        assert!(e.contains("nested"), "{e}");
        std::fs::write(dir.join("main.conf"), "include none.conf\n").unwrap();
        let e = read(&dir.join("main.conf")).unwrap_err().to_string();
        assert!(
            e.contains("main.conf:1:") && e.contains("no such file"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn globs() {
        assert!(glob_match("*.conf", "a.conf"));
        assert!(glob_match("a?c*", "abcdef"));
        assert!(!glob_match("*.conf", "a.txt"));
        assert!(glob_match("*", ""));
    }

    proptest::proptest! {
        #[test]
        fn the_tokenizer_never_panics(text in "[ -~\t\n{}\"#!\\\\é]{0,400}") {
            let _ = parse(&text, "k.conf", None, 0);
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            let _ = parse(&text, "k.conf", None, 0);
        }
    }
}
