//! The request path rules match on, and the path the real server gets.
//!
//! A client can spell one resource many ways (`/a/./b`, `/x/../a/b`, `/%61/b`); a rule that
//! matched the spelling instead of the resource could be walked around (`/static/../admin`
//! would match `path_prefix = "/static/"`, and the server would serve `/admin`). So the
//! target of an origin-form request is normalised once, before routing, and the normalised
//! target is also what the server receives: the server then cannot resolve the path to
//! anything the rules did not see. (HAProxy forwards the original; we prefer one meaning.)
//!
//! Exactly this is done, to the path only (the query after `?` is kept byte for byte):
//! 1. percent-encoded unreserved characters (RFC 3986 §2.3: `A-Z a-z 0-9 - . _ ~`) are
//!    decoded (`%7E` → `~`, `%2E` → `.`); every other escape is kept, its hex digits in upper
//!    case (`%2f` → `%2F`: an encoded slash stays encoded, it is not a segment boundary);
//!    a `%` not followed by two hex digits makes the request a 400;
//! 2. dot segments are removed (RFC 3986 §5.2.4): `.` segments go, `..` removes the segment
//!    before it, never climbing above the root.
//!
//! Nothing else changes: not empty segments (`//`), not backslashes, not case, not `+`.
//! Targets that do not start with `/` (`*`, authority-form) are left as they are. Methods
//! are compared as sent: they are case-sensitive (RFC 9110 §9.1), `get` is not `GET`.

use std::borrow::Cow;

/// The target has a `%` not followed by two hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadEscape;

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Step 1: decode unreserved escapes, upper-case the others.
fn decode_unreserved(path: &str) -> Result<String, BadEscape> {
    let b = path.as_bytes();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            let next = b[i..]
                .iter()
                .position(|&c| c == b'%')
                .map_or(b.len(), |p| i + p);
            out.push_str(&path[i..next]);
            i = next;
            continue;
        }
        let (hi, lo) = match (b.get(i + 1).copied(), b.get(i + 2).copied()) {
            (Some(h), Some(l)) => (hex(h).ok_or(BadEscape)?, hex(l).ok_or(BadEscape)?),
            _ => return Err(BadEscape),
        };
        let c = hi * 16 + lo;
        if unreserved(c) {
            out.push(char::from(c));
        } else {
            out.push('%');
            out.push(char::from(b[i + 1].to_ascii_uppercase()));
            out.push(char::from(b[i + 2].to_ascii_uppercase()));
        }
        i += 3;
    }
    Ok(out)
}

/// Step 2, for a path that starts with `/`.
fn remove_dot_segments(path: &str) -> String {
    let segs: Vec<&str> = path[1..].split('/').collect();
    let last = segs.len() - 1;
    let mut out: Vec<&str> = Vec::with_capacity(segs.len());
    for (i, seg) in segs.iter().enumerate() {
        match *seg {
            "." => {}
            ".." => {
                out.pop();
            }
            s => {
                out.push(s);
                continue;
            }
        }
        // A dot segment at the end leaves a directory: `/a/b/..` is `/a/`.
        if i == last {
            out.push("");
        }
    }
    let mut s = String::with_capacity(path.len());
    for seg in out {
        s.push('/');
        s.push_str(seg);
    }
    if s.is_empty() {
        s.push('/');
    }
    s
}

/// The normalised form of a request target (see the module's text).
pub(crate) fn normalise(target: &str) -> Result<Cow<'_, str>, BadEscape> {
    if !target.starts_with('/') {
        return Ok(Cow::Borrowed(target));
    }
    let (path, query) = match target.find('?') {
        Some(q) => target.split_at(q),
        None => (target, ""),
    };
    let clean = !path.contains('%') && !path.split('/').any(|s| s == "." || s == "..");
    if clean {
        return Ok(Cow::Borrowed(target));
    }
    let mut out = remove_dot_segments(&decode_unreserved(path)?);
    out.push_str(query);
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn n(s: &str) -> String {
        normalise(s).expect("valid").into_owned()
    }

    #[test]
    fn dot_segments_go() {
        for (from, to) in [
            ("/static/../admin", "/admin"),
            ("/a/./b", "/a/b"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("/..", "/"),
            ("/../../x", "/x"),
            ("/.", "/"),
            ("/a/b/../../..", "/"),
            ("/a//..", "/a/"),
            ("/a/..b/c.", "/a/..b/c."),
            ("/a/../b?x=/../y", "/b?x=/../y"),
        ] {
            assert_eq!(n(from), to, "{from}");
        }
    }

    #[test]
    fn only_unreserved_escapes_are_decoded() {
        for (from, to) in [
            ("/%61%7e%2D", "/a~-"),
            ("/static/%2E%2E/admin", "/admin"),
            ("/static/%2e./admin", "/admin"),
            ("/a%2Fb", "/a%2Fb"),
            ("/a%2fb/../c", "/c"),
            ("/a%2f..%2fb", "/a%2F..%2Fb"),
            ("/%25%2541", "/%25%2541"),
            ("/x?%61", "/x?%61"),
        ] {
            assert_eq!(n(from), to, "{from}");
        }
    }

    #[test]
    fn bad_escapes_are_refused_and_other_forms_kept() {
        for bad in ["/%", "/%4", "/%zz", "/a%g1"] {
            assert_eq!(normalise(bad), Err(BadEscape), "{bad}");
        }
        for same in ["*", "/", "/a//b", "/a\\..\\b", "/A/B", "/plain?a=%zz"] {
            assert!(
                matches!(normalise(same), Ok(Cow::Borrowed(s)) if s == same),
                "{same}"
            );
        }
    }

    proptest! {
        #[test]
        fn normalising_is_idempotent_and_leaves_no_dot_segments(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just(".".to_owned()), Just("..".to_owned()), Just("%2E".to_owned()),
                    Just("%2e%2E".to_owned()), Just("%2F".to_owned()), Just("%41".to_owned()),
                    Just("%25".to_owned()), Just("".to_owned()), "[a-z.%~]{1,4}",
                ],
                0..8,
            ),
            query in proptest::option::of("[a-z./%]{0,6}"),
        ) {
            let mut t = String::new();
            for p in &parts {
                t.push('/');
                t.push_str(p);
            }
            if t.is_empty() {
                t.push('/');
            }
            if let Some(q) = &query {
                t.push('?');
                t.push_str(q);
            }
            if let Ok(once) = normalise(&t) {
                let twice = normalise(&once).expect("a normalised target stays valid");
                prop_assert_eq!(&once, &twice);
                let path = once.split('?').next().unwrap_or("");
                prop_assert!(path.starts_with('/'));
                prop_assert!(
                    !path.split('/').any(|s| s == "." || s == ".."),
                    "dot segment left in {:?} from {:?}", path, t
                );
            }
        }
    }
}
