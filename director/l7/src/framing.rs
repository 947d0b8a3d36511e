//! Where a message ends, read from its header fields as strictly as RFC 9112 says, so that the
//! director and the real server cannot disagree about it: `Transfer-Encoding` and
//! `Content-Length` (§6), `Host` and the request target (§3.2, §3.2.2). What is accepted is
//! forwarded in one canonical form of our own (one `Host`, one `Content-Length`, a
//! `Transfer-Encoding` list of validated tokens), never as the client or server spelled it.
//!
//! Requests: more than one `Transfer-Encoding` field, an empty or malformed coding list, or a
//! `Transfer-Encoding` in an HTTP/1.0 request is a 400; any coding list other than exactly
//! `chunked` is a 501 (we implement no other); `Content-Length` must be `1*DIGIT` (ASCII
//! spaces or tabs around it allowed), repeated only with the same value; `Transfer-Encoding`
//! together with `Content-Length` is a 400 (RFC 9112 §6.1 allows reading such a request as
//! chunked and closing after it; refusing it outright leaves no room for a disagreement). Field
//! names containing `_` are dropped, as nginx does: `Transfer_Encoding` reaches no server that
//! could read it as `Transfer-Encoding` (CGI-style gateways map both to one name).
//!
//! Responses: the same rules (502 where a request gets 400 or 501, as nginx does for codings it
//! does not know), except that a response with both fields loses its `Content-Length` (RFC 9112
//! §6.3) and its server connection is not reused.

use httparse::Header;

use crate::chunked::is_tchar;
use crate::http::BodyKind;

/// How a checked message is framed, and the `Content-Length` to forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Framing {
    pub body: BodyKind,
    /// The canonical `Content-Length` to send on (none when `Transfer-Encoding` frames).
    pub length: Option<u64>,
    /// `Transfer-Encoding: chunked` frames the message.
    pub coded: bool,
    /// Both fields came: the next hop's connection must not carry another message.
    pub conflict: bool,
}

fn is(h: &Header<'_>, name: &str) -> bool {
    h.name.eq_ignore_ascii_case(name)
}

/// The fields whose forwarded copy is written by us, not copied.
pub(crate) fn is_framing_field(name: &str) -> bool {
    ["content-length", "transfer-encoding", "host"]
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n))
}

/// `Content-Length` and `Transfer-Encoding`: a response's fields that we write ourselves.
pub(crate) fn is_length_field(name: &str) -> bool {
    name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("transfer-encoding")
}

/// Move the fields whose names contain `_` to the end; returns how many are kept (in order).
pub(crate) fn drop_underscore_fields(headers: &mut [Header<'_>]) -> usize {
    let mut kept = 0;
    for i in 0..headers.len() {
        if !headers[i].name.contains('_') {
            headers.swap(kept, i);
            kept += 1;
        }
    }
    kept
}

/// `1*DIGIT` with optional spaces or tabs around it; `None` for anything else (a sign, a
/// list, Unicode spaces, more than fits a `u64`).
pub(crate) fn content_length(v: &[u8]) -> Option<u64> {
    let v = ows_trim(v);
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// The codings of a `Transfer-Encoding` field value: tokens separated by `,` with optional
/// whitespace. `Err` for an empty element or anything not a token (parameters included).
fn codings(v: &[u8]) -> impl Iterator<Item = Result<&[u8], ()>> {
    v.split(|&b| b == b',').map(|c| {
        let c = ows_trim(c);
        if !c.is_empty() && c.iter().all(|&b| is_tchar(b)) {
            Ok(c)
        } else {
            Err(())
        }
    })
}

/// Without the optional whitespace (`OWS`: spaces and tabs) around it.
fn ows_trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// The one `Content-Length`: several fields only with identical values (RFC 9110 §8.6:
/// `5` and `05` are not identical, though they are the same number).
fn lengths(headers: &[Header<'_>]) -> Result<Option<u64>, ()> {
    let mut first: Option<&[u8]> = None;
    for h in headers.iter().filter(|h| is(h, "content-length")) {
        let v = ows_trim(h.value);
        if first.is_some_and(|f| f != v) {
            return Err(());
        }
        first = Some(v);
    }
    first.map(|v| content_length(v).ok_or(())).transpose()
}

/// Whether `Transfer-Encoding` frames the message: `Ok(false)` without the field, `Ok(true)`
/// for exactly one field saying exactly `chunked`; 400 for a malformed list or a second
/// field, 501 for any other coding (none is implemented; a proxy that passed `gzip, chunked`
/// on would leave the coding's framing to whoever reads it next).
fn chunked(headers: &[Header<'_>]) -> Result<bool, u16> {
    let mut te = headers.iter().filter(|h| is(h, "transfer-encoding"));
    let Some(field) = te.next() else {
        return Ok(false);
    };
    if te.next().is_some() {
        return Err(400);
    }
    let mut chunked = 0;
    let mut other = false;
    for c in codings(field.value) {
        let c = c.map_err(|()| 400u16)?;
        if c.eq_ignore_ascii_case(b"chunked") {
            chunked += 1;
        } else {
            other = true;
        }
    }
    if chunked != 1 || other {
        return Err(501);
    }
    Ok(true)
}

/// A request's framing, or the status to refuse it with.
pub(crate) fn request(headers: &[Header<'_>], http10: bool) -> Result<Framing, u16> {
    let length = lengths(headers).map_err(|()| 400u16)?;
    let coded = chunked(headers)?;
    if coded && (http10 || length.is_some()) {
        return Err(400);
    }
    Ok(Framing {
        body: match (coded, length) {
            (true, _) => BodyKind::Chunked,
            (false, None | Some(0)) => BodyKind::None,
            (false, Some(n)) => BodyKind::Length(n),
        },
        length,
        coded,
        conflict: false,
    })
}

/// A response's framing; `Err` for one that must not be forwarded (502): the same rules as
/// for requests, but `Content-Length` beside `chunked` is dropped (RFC 9112 §6.3) rather than
/// refused. `bodiless`: the response to a HEAD, or a 1xx, 204 or 304, which has no body
/// whatever its fields say.
pub(crate) fn response(
    headers: &[Header<'_>],
    http10: bool,
    bodiless: bool,
) -> Result<Framing, ()> {
    let length = lengths(headers)?;
    let coded = chunked(headers).map_err(|_| ())?;
    if coded && http10 {
        return Err(());
    }
    let body = match (bodiless, coded, length) {
        (true, _, _) => BodyKind::None,
        (false, true, _) => BodyKind::Chunked,
        (false, false, Some(0)) => BodyKind::None,
        (false, false, Some(n)) => BodyKind::Length(n),
        (false, false, None) => BodyKind::UntilClose,
    };
    Ok(Framing {
        body,
        length: if coded { None } else { length },
        coded,
        conflict: coded && length.is_some(),
    })
}

/// `uri-host [ ":" port ]` (RFC 9110 §7.2), possibly empty; `None` when malformed.
/// Returns the host without its port, for routing.
pub(crate) fn authority(v: &str) -> Option<&str> {
    let port_ok = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if let Some(rest) = v.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        // IP-literal (RFC 3986 §3.2.2): an IPv6address, nothing else. No IPvFuture and no
        // zone identifier (RFC 6874): neither can name a host of ours. Rust's parser takes
        // exactly the RFC 4291 text forms (with or without an embedded IPv4 tail).
        let ok = ip.parse::<std::net::Ipv6Addr>().is_ok();
        let port = match after {
            "" => true,
            a => a.strip_prefix(':').is_some_and(port_ok),
        };
        return (ok && port).then_some(ip);
    }
    let (host, port) = v.rsplit_once(':').unwrap_or((v, ""));
    let reg_name = |h: &str| {
        let b = h.as_bytes();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'%' if b.len() > i + 2
                    && b[i + 1].is_ascii_hexdigit()
                    && b[i + 2].is_ascii_hexdigit() =>
                {
                    i += 2
                }
                c if c.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&c) => {}
                _ => return false,
            }
            i += 1;
        }
        true
    };
    (reg_name(host) && port_ok(port)).then_some(host)
}

/// A request's target and `Host`, checked (RFC 9112 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Target<'a> {
    /// The path (origin-form), what rules look at and what the server gets.
    pub path: &'a str,
    /// The authority to send as the one `Host` field.
    pub authority: Option<&'a str>,
    /// The host without port, for routing.
    pub host: Option<&'a str>,
}

/// Check the target and the `Host` fields; an absolute-form target (`http://a.example/x`)
/// gives the authority (its `Host` is ignored, RFC 9112 §3.2.2) and becomes origin-form.
pub(crate) fn target<'a>(
    method: &str,
    target: &'a str,
    headers: &[Header<'a>],
    http10: bool,
) -> Result<Target<'a>, u16> {
    let mut hosts = headers.iter().filter(|h| is(h, "host"));
    let host_field = match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => return Err(400),
        (None, _) if !http10 => return Err(400),
        (None, _) => None,
        (Some(h), None) => Some(std::str::from_utf8(h.value).map_err(|_| 400u16)?),
    };
    let host_field = host_field.map(str::trim_ascii);
    let field_host = match host_field {
        Some(v) => Some(authority(v).ok_or(400u16)?),
        None => None,
    };
    if method == "CONNECT" {
        return Err(501);
    }
    if target.starts_with('/') {
        return Ok(Target {
            path: target,
            authority: host_field,
            host: field_host.filter(|h| !h.is_empty()),
        });
    }
    if target == "*" {
        return if method == "OPTIONS" {
            Ok(Target {
                path: target,
                authority: host_field,
                host: field_host.filter(|h| !h.is_empty()),
            })
        } else {
            Err(400)
        };
    }
    let scheme_end = target.find("://").ok_or(400u16)?;
    if !target[..scheme_end].eq_ignore_ascii_case("http") {
        return Err(400);
    }
    let rest = &target[scheme_end + 3..];
    let (auth, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if !path.starts_with('/') {
        // `http://a.example?q`: its origin-form would need a `/` we would have to invent.
        return Err(400);
    }
    let host = authority(auth).filter(|h| !h.is_empty()).ok_or(400u16)?;
    Ok(Target {
        path,
        authority: Some(auth),
        host: Some(host),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h<'a>(name: &'a str, value: &'a [u8]) -> Header<'a> {
        Header { name, value }
    }

    #[test]
    fn content_length_is_digits_only() {
        assert_eq!(content_length(b"5"), Some(5));
        assert_eq!(content_length(b" \t42 "), Some(42));
        assert_eq!(content_length(b"007"), Some(7));
        for bad in [
            &b"+5"[..],
            b"-5",
            b"",
            b" ",
            b"5 5",
            b"5,5",
            b"0x5",
            b"5\xc2\xa0",
            b"\xe2\x80\x825",
            b"99999999999999999999",
            b"18446744073709551616",
        ] {
            assert_eq!(content_length(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn request_framing_rules() {
        let chunked = Framing {
            body: BodyKind::Chunked,
            length: None,
            coded: true,
            conflict: false,
        };
        assert_eq!(
            request(&[h("Content-Length", b"5")], false).map(|f| f.body),
            Ok(BodyKind::Length(5))
        );
        assert_eq!(
            request(
                &[h("Content-Length", b"5"), h("content-length", b" 5")],
                false
            )
            .map(|f| f.length),
            Ok(Some(5))
        );
        assert_eq!(
            request(
                &[h("Content-Length", b"5"), h("Content-Length", b"6")],
                false
            ),
            Err(400)
        );
        assert_eq!(
            request(
                &[h("Content-Length", b"5"), h("Content-Length", b"05")],
                false
            ),
            Err(400)
        );
        assert_eq!(request(&[h("Content-Length", b"+5")], false), Err(400));
        assert_eq!(
            request(&[h("Transfer-Encoding", b"chunked")], false),
            Ok(chunked)
        );
        assert_eq!(
            request(&[h("Transfer-Encoding", b" Chunked\t")], false),
            Ok(chunked)
        );
        assert_eq!(
            request(&[h("Transfer-Encoding", b"chunked")], true),
            Err(400)
        );
        for (v, status) in [
            (&b"identity, chunked"[..], 501),
            (b"gzip, chunked", 501),
            (b"chunked, chunked", 501),
            (b"gzip", 501),
            (b",chunked", 400),
            (b"chunked,", 400),
            (b"", 400),
            (b"chunked;q=1", 400),
            (b"chun ked", 400),
            (b"\"chunked\"", 400),
        ] {
            assert_eq!(
                request(&[h("Transfer-Encoding", v)], false),
                Err(status),
                "{v:?}"
            );
        }
        assert_eq!(
            request(
                &[
                    h("Transfer-Encoding", b"chunked"),
                    h("Transfer-Encoding", b"chunked")
                ],
                false
            ),
            Err(400)
        );
        assert_eq!(
            request(
                &[
                    h("Transfer-Encoding", b"chunked"),
                    h("Content-Length", b"5")
                ],
                false
            ),
            Err(400)
        );
    }

    #[test]
    fn response_framing_rules() {
        let r = |hs: &[Header<'_>]| response(hs, false, false);
        assert_eq!(
            r(&[
                h("Transfer-Encoding", b"chunked"),
                h("Content-Length", b"5")
            ]),
            Ok(Framing {
                body: BodyKind::Chunked,
                length: None,
                coded: true,
                conflict: true
            })
        );
        assert!(r(&[h("Transfer-Encoding", b"gzip, chunked")]).is_err());
        assert!(r(&[h("Transfer-Encoding", b"gzip")]).is_err());
        assert!(r(&[h("Transfer-Encoding", b"chunked, gzip")]).is_err());
        assert!(
            r(&[
                h("Transfer-Encoding", b"chunked"),
                h("Transfer-Encoding", b"chunked")
            ])
            .is_err()
        );
        assert!(r(&[h("Content-Length", b"+5")]).is_err());
        assert!(r(&[h("Content-Length", b"5"), h("Content-Length", b"6")]).is_err());
        assert!(response(&[h("Transfer-Encoding", b"chunked")], true, false).is_err());
        assert_eq!(r(&[]).map(|f| f.body), Ok(BodyKind::UntilClose));
        assert_eq!(
            response(&[h("Content-Length", b"5")], false, true).map(|f| (f.body, f.length)),
            Ok((BodyKind::None, Some(5)))
        );
    }

    #[test]
    fn targets_and_hosts() {
        let host = [h("Host", b"b.example:8080")];
        assert_eq!(
            target("GET", "/x", &host, false),
            Ok(Target {
                path: "/x",
                authority: Some("b.example:8080"),
                host: Some("b.example")
            })
        );
        assert_eq!(
            target("GET", "http://a.example/x?y", &host, false),
            Ok(Target {
                path: "/x?y",
                authority: Some("a.example"),
                host: Some("a.example")
            })
        );
        assert_eq!(
            target("GET", "HTTP://[::1]:81", &host, false).map(|t| (t.path, t.host)),
            Ok(("/", Some("::1")))
        );
        assert_eq!(target("GET", "/x", &[], false), Err(400));
        assert_eq!(target("GET", "/x", &[], true).map(|t| t.host), Ok(None));
        assert_eq!(
            target("GET", "/x", &[h("Host", b"a"), h("host", b"a")], false),
            Err(400)
        );
        for bad in [&b"a b"[..], b"a/b", b"a:x", b"[zz]", b"a@b", b"\xff"] {
            assert_eq!(
                target("GET", "/", &[h("Host", bad)], false),
                Err(400),
                "{bad:?}"
            );
        }
        assert_eq!(
            target("GET", "/", &[h("Host", b"")], false).map(|t| t.host),
            Ok(None)
        );
        for bad in [
            "https://a.example/",
            "http:///x",
            "http://u@a.example/",
            "http://a.example?q",
            "a.example:80",
            "x",
        ] {
            assert_eq!(target("GET", bad, &host, false), Err(400), "{bad}");
        }
        assert_eq!(target("CONNECT", "a.example:443", &host, false), Err(501));
        assert!(target("OPTIONS", "*", &host, false).is_ok());
        assert_eq!(target("GET", "*", &host, false), Err(400));
    }

    /// IPv6 literals in `Host` and in absolute-form targets: the host routed on is the
    /// address without brackets; anything but an IPv6 address in brackets is refused.
    #[test]
    fn ipv6_literal_hosts() {
        for (v, host) in [
            ("[2001:db8::100]", "2001:db8::100"),
            ("[2001:db8::100]:80", "2001:db8::100"),
            ("[2001:DB8::100]:8080", "2001:DB8::100"),
            ("[::1]", "::1"),
            ("[::ffff:192.0.2.1]:80", "::ffff:192.0.2.1"),
        ] {
            let hs = [h("Host", v.as_bytes())];
            let t = target("GET", "/x", &hs, false).unwrap_or_else(|e| panic!("{v}: {e}"));
            assert_eq!((t.authority, t.host), (Some(v), Some(host)), "{v}");
        }
        let any = [h("Host", b"a.example")];
        let t = target("GET", "http://[2001:db8::100]:81/p", &any, false).unwrap();
        assert_eq!(
            (t.authority, t.host, t.path),
            (Some("[2001:db8::100]:81"), Some("2001:db8::100"), "/p")
        );
        for bad in [
            "[]",
            "[:::]",
            "[1:2:3]",
            "[2001:db8::1::2]",
            "[2001:db8::12345]",
            "[2001:db8::1%25eth0]",
            "[fe80::1%eth0]",
            "[v1.x]",
            "[192.0.2.1]",
            "[2001:db8::1",
            "2001:db8::1",
            "[2001:db8::1]80",
            "[2001:db8::1]:x",
            "[2001:db8::1]:80:80",
            "[[2001:db8::1]]",
            "[ 2001:db8::1]",
        ] {
            let hs = [h("Host", bad.as_bytes())];
            assert_eq!(target("GET", "/", &hs, false), Err(400), "Host {bad}");
            assert_eq!(
                target("GET", &format!("http://{bad}/"), &any, false),
                Err(400),
                "target {bad}"
            );
        }
    }

    proptest::proptest! {
        /// Every IPv6 address, in any of its text forms, with or without a port, is a host.
        #[test]
        fn every_ipv6_address_is_a_host(
            octets in proptest::prelude::any::<[u8; 16]>(),
            port in proptest::option::of(proptest::prelude::any::<u16>()),
            upper in proptest::prelude::any::<bool>(),
        ) {
            let a = std::net::Ipv6Addr::from(octets);
            let text = if upper { a.to_string().to_ascii_uppercase() } else { a.to_string() };
            let v = match port {
                Some(p) => format!("[{text}]:{p}"),
                None => format!("[{text}]"),
            };
            proptest::prop_assert_eq!(authority(&v), Some(text.as_str()));
        }

        /// Inside brackets, exactly what parses as an IPv6 address is accepted.
        #[test]
        fn brackets_hold_an_ipv6_address_or_nothing_is_accepted(inside in "[0-9a-fA-F:.%vV]{0,45}") {
            let v = format!("[{inside}]:80");
            let want = inside.parse::<std::net::Ipv6Addr>().is_ok().then_some(inside.as_str());
            proptest::prop_assert_eq!(authority(&v), want);
        }
    }

    #[test]
    fn underscores_are_dropped_in_order() {
        let mut hs = [
            h("A", b"1"),
            h("Transfer_Encoding", b"chunked"),
            h("B", b"2"),
            h("x_y", b""),
            h("C", b"3"),
        ];
        let n = drop_underscore_fields(&mut hs);
        let names: Vec<&str> = hs[..n].iter().map(|h| h.name).collect();
        assert_eq!(names, ["A", "B", "C"]);
    }
}
