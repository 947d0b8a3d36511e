//! Rust sources read as tokens, for the lints that read the workspace's code
//! (`programs_declared`, `events_through_macro`): comments dropped, string literals decoded,
//! bracketed runs grouped. Not a parser: enough to find macro calls and their literal arguments.

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Ident(String),
    Str(String),
    Punct(char),
    Other,
    Group(char, Vec<T>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct T {
    pub tok: Tok,
    pub line: usize,
}

/// Rust source to flat tokens: comments dropped, string literals decoded.
pub fn lex(src: &str) -> Vec<T> {
    let c: Vec<char> = src.chars().collect();
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(c[i] == '\n');
                    i += 1;
                }
            }
        } else if let Some((s, next, lines)) = string_at(&c, i) {
            out.push(T {
                tok: Tok::Str(s),
                line,
            });
            line += lines;
            i = next;
        } else if ch == '\'' {
            // A char literal ('a', '\n', '\'') or a lifetime ('a).
            if at(i + 1) == '\\' {
                i += 3;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                i += 1;
                continue;
            }
            out.push(T {
                tok: Tok::Other,
                line,
            });
        } else if ch.is_alphabetic() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push(T {
                tok: Tok::Ident(c[start..i].iter().collect()),
                line,
            });
        } else if ch.is_ascii_digit() {
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push(T {
                tok: Tok::Other,
                line,
            });
        } else {
            out.push(T {
                tok: Tok::Punct(ch),
                line,
            });
            i += 1;
        }
    }
    out
}

/// A string literal starting at `i` (plain, raw, byte or C): its value, the index after it
/// and the newlines inside it.
fn string_at(c: &[char], i: usize) -> Option<(String, usize, usize)> {
    let at = |k: usize| c.get(k).copied().unwrap_or('\0');
    let mut k = i;
    if matches!(at(k), 'b' | 'c') {
        k += 1;
    }
    if at(k) == 'r' {
        k += 1;
        let hashes = (k..).take_while(|&j| at(j) == '#').count();
        k += hashes;
        if at(k) != '"' {
            return None;
        }
        let body = k + 1;
        let mut j = body;
        while j < c.len() {
            if c[j] == '"' && (1..=hashes).all(|h| at(j + h) == '#') {
                let s: String = c[body..j].iter().collect();
                let lines = s.matches('\n').count();
                return Some((s, j + 1 + hashes, lines));
            }
            j += 1;
        }
        return None;
    }
    if at(k) != '"' {
        return None;
    }
    let (mut s, mut lines, mut j) = (String::new(), 0, k + 1);
    while j < c.len() && c[j] != '"' {
        if c[j] == '\\' {
            j += 1;
            match at(j) {
                'n' => s.push('\n'),
                't' => s.push('\t'),
                'r' => s.push('\r'),
                '0' => s.push('\0'),
                'x' => {
                    let hex: String = c[j + 1..(j + 3).min(c.len())].iter().collect();
                    s.extend(u8::from_str_radix(&hex, 16).ok().map(char::from));
                    j += 2;
                }
                'u' => {
                    let end = (j..c.len()).find(|&e| c[e] == '}').unwrap_or(j);
                    let hex: String = c[j + 2..end].iter().collect();
                    s.extend(u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32));
                    j = end;
                }
                '\n' => {
                    // A line continuation: the newline and the next line's indent go.
                    lines += 1;
                    while at(j + 1).is_whitespace() {
                        j += 1;
                        lines += usize::from(c[j] == '\n');
                    }
                }
                other => s.push(other),
            }
        } else {
            lines += usize::from(c[j] == '\n');
            s.push(c[j]);
        }
        j += 1;
    }
    Some((s, j + 1, lines))
}

/// Flat tokens to a tree: each bracketed run becomes one `Group`.
pub fn tree(flat: Vec<T>) -> Vec<T> {
    fn group(it: &mut std::vec::IntoIter<T>, close: Option<char>) -> Vec<T> {
        let mut out = Vec::new();
        while let Some(t) = it.next() {
            match t.tok {
                Tok::Punct(open @ ('(' | '[' | '{')) => {
                    let want = match open {
                        '(' => ')',
                        '[' => ']',
                        _ => '}',
                    };
                    let inner = group(it, Some(want));
                    out.push(T {
                        tok: Tok::Group(open, inner),
                        line: t.line,
                    });
                }
                Tok::Punct(p @ (')' | ']' | '}')) if Some(p) == close => return out,
                _ => out.push(t),
            }
        }
        out
    }
    group(&mut flat.into_iter(), None)
}

/// The top-level comma-separated parts of a group's tokens.
pub fn split_args(toks: &[T]) -> Vec<&[T]> {
    if toks.is_empty() {
        return Vec::new();
    }
    let mut parts: Vec<&[T]> = toks.split(|t| t.tok == Tok::Punct(',')).collect();
    if parts.last().is_some_and(|p| p.is_empty()) {
        parts.pop(); // a trailing comma
    }
    parts
}

pub fn ident_is(t: Option<&T>, name: &str) -> bool {
    matches!(t, Some(T { tok: Tok::Ident(s), .. }) if s == name)
}

pub fn punct_is(t: Option<&T>, p: char) -> bool {
    matches!(t, Some(T { tok: Tok::Punct(c), .. }) if *c == p)
}

pub fn paren(t: Option<&T>) -> Option<&[T]> {
    match t {
        Some(T {
            tok: Tok::Group('(', inner),
            ..
        }) => Some(inner),
        _ => None,
    }
}
