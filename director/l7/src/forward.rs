//! Which fields of a client's request head reach the real server.
//!
//! - Hop-by-hop fields are the director's business, not the server's (RFC 9110 §7.6.1): the
//!   standard ones (`Connection`, `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`,
//!   `Upgrade`, `HTTP2-Settings`) and every field the client names in `Connection`. A client
//!   naming `Host`, `Content-Length` or `Transfer-Encoding` there is refused (400): dropping
//!   them would change where the request ends for the server, keeping them would ignore the
//!   client.
//! - `Upgrade` passes only when every protocol it asks for is in the service's `upgrades`
//!   list (default `websocket`): after a switch the director only relays bytes, so whatever
//!   speaks on that connection afterwards is no longer routed. An `h2c` upgrade would carry
//!   any number of HTTP/2 requests past the rules; it is stripped (with `HTTP2-Settings`) and
//!   the request goes on as plain HTTP/1.1.
//! - With `forwarded_for = "replace"` the client's own `X-Forwarded-For`, `Forwarded` and
//!   `X-Real-IP` are dropped: the server then sees only the address the director writes.

use httparse::Header;

use crate::config::ForwardedFor;
use crate::route::Settings;

/// Always hop-by-hop. `Upgrade` is here too, and kept only for an allowed upgrade.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "http2-settings",
];

/// Fields that carry a client address, dropped in `replace` mode.
const CLIENT_ADDRESS_FIELDS: [&str; 3] = ["x-forwarded-for", "forwarded", "x-real-ip"];

/// Fields every recipient needs: never hop-by-hop.
const END_TO_END: [&str; 3] = ["host", "content-length", "transfer-encoding"];

fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

fn named_in(list: &[&[u8]], name: &str) -> bool {
    list.iter().any(|t| t.eq_ignore_ascii_case(name.as_bytes()))
}

/// The decision for one request head.
#[derive(Debug)]
pub(crate) struct Forwarding<'h> {
    /// Field names listed in the client's `Connection` fields.
    connection: Vec<&'h [u8]>,
    upgrade: bool,
    replace_client_address: bool,
}

impl<'h> Forwarding<'h> {
    /// `Err(400)` when the client names an end-to-end field as hop-by-hop.
    pub fn new(headers: &[Header<'h>], s: &Settings) -> Result<Self, u16> {
        let mut connection = Vec::new();
        for h in headers {
            if h.name.eq_ignore_ascii_case("connection") {
                connection.extend(tokens(h.value));
            }
        }
        if END_TO_END.iter().any(|f| named_in(&connection, f)) {
            return Err(400);
        }
        let mut asked = false;
        let mut allowed = true;
        for h in headers {
            if h.name.eq_ignore_ascii_case("upgrade") {
                for proto in tokens(h.value) {
                    asked = true;
                    // `websocket` or `name/version`: the list names protocols, any version.
                    let name = proto.split(|&b| b == b'/').next().unwrap_or(proto);
                    allowed &= s
                        .upgrades
                        .iter()
                        .any(|a| a.as_bytes().eq_ignore_ascii_case(name));
                }
            }
        }
        Ok(Self {
            upgrade: asked && allowed && named_in(&connection, "upgrade"),
            connection,
            replace_client_address: s.forwarded_for == ForwardedFor::Replace,
        })
    }

    /// The client asked for an upgrade the service allows: `Upgrade` goes to the server.
    pub fn upgrade(&self) -> bool {
        self.upgrade
    }

    /// Whether the field `name` stays behind.
    pub fn drops(&self, name: &str) -> bool {
        if self.upgrade && name.eq_ignore_ascii_case("upgrade") {
            return false;
        }
        HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
            || named_in(&self.connection, name)
            || (self.replace_client_address
                && CLIENT_ADDRESS_FIELDS
                    .iter()
                    .any(|h| name.eq_ignore_ascii_case(h)))
    }
}

/// Whether an authentication scheme authenticates the connection rather than the request.
fn connection_scheme(value: &[u8]) -> bool {
    // Challenges are comma-separated; each begins with its scheme.
    value.split(|&b| b == b',').any(|c| {
        let scheme = c.trim_ascii().split(|&b| b == b' ').next().unwrap_or(b"");
        scheme.eq_ignore_ascii_case(b"ntlm") || scheme.eq_ignore_ascii_case(b"negotiate")
    })
}

/// Whether the fields of a response head bind its server connection to the client: an NTLM
/// or Negotiate challenge (`WWW-Authenticate`), after which the server takes the connection
/// as authenticated, or `Persistent-Auth: true`. Such a connection must never serve another
/// client.
pub(crate) fn response_binds_connection(headers: &[Header<'_>]) -> bool {
    headers.iter().any(|h| {
        (h.name.eq_ignore_ascii_case("www-authenticate") && connection_scheme(h.value))
            || (h.name.eq_ignore_ascii_case("persistent-auth")
                && h.value.trim_ascii().eq_ignore_ascii_case(b"true"))
    })
}

/// Whether a request field forwarded to the server carries NTLM or Negotiate credentials: the
/// server connection it rides is then the client's alone, whatever the answer says.
pub(crate) fn credentials_bind(h: &Header<'_>) -> bool {
    h.name.eq_ignore_ascii_case("authorization") && connection_scheme(h.value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ContentServiceConfig;

    fn settings(extra: &str) -> Settings {
        let c: ContentServiceConfig =
            toml::from_str(&format!("address = \"192.0.2.1\"\nport = 80\n{extra}")).unwrap();
        Settings::from_config(&c)
    }

    fn h<'a>(name: &'a str, value: &'a str) -> Header<'a> {
        Header {
            name,
            value: value.as_bytes(),
        }
    }

    #[test]
    fn hop_by_hop_and_connection_named_fields_are_dropped() {
        let s = settings("");
        let hs = [
            h("Connection", "keep-alive, X-Secret ,x-other"),
            h("X-Secret", "1"),
            h("TE", "trailers"),
        ];
        let f = Forwarding::new(&hs, &s).unwrap();
        for name in [
            "X-Secret",
            "x-other",
            "TE",
            "Keep-Alive",
            "Proxy-Connection",
            "Trailer",
            "Upgrade",
            "HTTP2-Settings",
            "X-Forwarded-For",
            "Forwarded",
            "X-Real-IP",
        ] {
            assert!(f.drops(name), "{name}");
        }
        assert!(!f.drops("Accept"));
        for bad in ["Host", "content-length", "Transfer-Encoding"] {
            let v = format!("close, {bad}");
            let hs = [h("Connection", &v)];
            assert_eq!(Forwarding::new(&hs, &s).unwrap_err(), 400, "{bad}");
        }
    }

    #[test]
    fn only_allowed_upgrades_pass() {
        let s = settings("");
        let ws = [h("Connection", "Upgrade"), h("Upgrade", "WebSocket")];
        let f = Forwarding::new(&ws, &s).unwrap();
        assert!(f.upgrade() && !f.drops("Upgrade"));
        let h2c = [
            h("Connection", "Upgrade, HTTP2-Settings"),
            h("Upgrade", "h2c"),
            h("HTTP2-Settings", "AAMAAABkAAQCAAAAAAIAAAAA"),
        ];
        let f = Forwarding::new(&h2c, &s).unwrap();
        assert!(!f.upgrade() && f.drops("Upgrade") && f.drops("HTTP2-Settings"));
        let both = [h("Connection", "upgrade"), h("Upgrade", "websocket, h2c")];
        assert!(!Forwarding::new(&both, &s).unwrap().upgrade());
        let no_conn = [h("Upgrade", "websocket")];
        assert!(!Forwarding::new(&no_conn, &s).unwrap().upgrade());
        let s = settings("upgrades = [\"websocket\", \"foo\"]");
        let foo = [h("Connection", "upgrade"), h("Upgrade", "foo/2, websocket")];
        assert!(Forwarding::new(&foo, &s).unwrap().upgrade());
    }

    #[test]
    fn connection_bound_authentication_is_recognised() {
        let r = |fields: &str| format!("HTTP/1.1 401 Unauthorized\r\n{fields}\r\n");
        let response_binds_connection = |head: &[u8]| {
            let mut headers = [httparse::EMPTY_HEADER; 8];
            let mut resp = httparse::Response::new(&mut headers);
            resp.parse(head).expect("a head");
            response_binds_connection(resp.headers)
        };
        for yes in [
            "WWW-Authenticate: NTLM\r\n",
            "www-authenticate: Negotiate oYH1MIHyoAMKAQ\r\n",
            "WWW-Authenticate: Basic realm=\"x\", NTLM\r\n",
            "WWW-Authenticate: Basic realm=\"x\"\r\nWWW-Authenticate: ntlm TlRMTVNTUAACAAAA\r\n",
            "Persistent-Auth: true\r\n",
        ] {
            assert!(response_binds_connection(r(yes).as_bytes()), "{yes}");
        }
        for no in [
            "WWW-Authenticate: Basic realm=\"ntlm\"\r\n",
            "WWW-Authenticate: Bearer\r\n",
            "X-Auth: NTLM\r\n",
            "Persistent-Auth: false\r\n",
        ] {
            assert!(!response_binds_connection(r(no).as_bytes()), "{no}");
        }
    }

    #[test]
    fn connection_bound_credentials_are_recognised() {
        let r = |f: &str| format!("GET / HTTP/1.1\r\nHost: a\r\n{f}\r\n");
        let request_binds_connection = |head: &[u8]| {
            let mut headers = [httparse::EMPTY_HEADER; 8];
            let mut req = httparse::Request::new(&mut headers);
            req.parse(head).expect("a head");
            req.headers.iter().any(credentials_bind)
        };
        assert!(request_binds_connection(
            r("Authorization: NTLM TlRMTVNTUAABAAAA\r\n").as_bytes()
        ));
        assert!(request_binds_connection(
            r("authorization: negotiate YIIJ\r\n").as_bytes()
        ));
        assert!(!request_binds_connection(
            r("Authorization: Basic YTpi\r\n").as_bytes()
        ));
        assert!(!request_binds_connection(r("").as_bytes()));
    }

    #[test]
    fn append_mode_keeps_client_address_fields() {
        let s = settings("forwarded_for = \"append\"");
        let f = Forwarding::new(&[], &s).unwrap();
        assert!(!f.drops("X-Forwarded-For") && !f.drops("X-Real-IP"));
    }
}
