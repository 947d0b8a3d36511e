//! The server name of a TLS ClientHello, read without decrypting anything. The hello may
//! arrive in several TCP segments and even several TLS records; the caller keeps the bytes
//! and asks again when more came.

/// The answer for the bytes seen so far.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Sni {
    /// Need more bytes.
    Incomplete,
    /// A complete ClientHello; its server name, if it has one.
    Done(Option<String>),
    /// Not a TLS ClientHello.
    NotTls,
}

/// The most handshake bytes gathered for one hello.
pub(crate) const MAX_HELLO: usize = 16 * 1024;

pub(crate) fn parse(buf: &[u8]) -> Sni {
    // Gather the handshake message from consecutive handshake records.
    let mut hs: Vec<u8> = Vec::new();
    let mut at = 0;
    loop {
        if buf.len() < at + 5 {
            return Sni::Incomplete;
        }
        if buf[at] != 22 || buf[at + 1] != 3 {
            return Sni::NotTls;
        }
        let len = usize::from(u16::from_be_bytes([buf[at + 3], buf[at + 4]]));
        if len == 0 {
            return Sni::NotTls;
        }
        let end = at + 5 + len;
        let have = &buf[at + 5..buf.len().min(end)];
        hs.extend_from_slice(have);
        if hs.len() >= 4 {
            if hs[0] != 1 {
                return Sni::NotTls;
            }
            let want =
                4 + (usize::from(hs[1]) << 16 | usize::from(hs[2]) << 8 | usize::from(hs[3]));
            if want > MAX_HELLO {
                return Sni::NotTls;
            }
            if hs.len() >= want {
                return Sni::Done(server_name(&hs[4..want]));
            }
        }
        if buf.len() < end {
            return Sni::Incomplete;
        }
        at = end;
    }
}

/// A cursor that answers `None` past the end.
struct Rd<'a>(&'a [u8]);

impl<'a> Rd<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<usize> {
        self.take(1).map(|b| usize::from(b[0]))
    }
    fn u16(&mut self) -> Option<usize> {
        self.take(2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
}

fn server_name(hello: &[u8]) -> Option<String> {
    let mut r = Rd(hello);
    r.take(2 + 32)?; // version, random
    let n = r.u8()?;
    r.take(n)?; // session id
    let n = r.u16()?;
    r.take(n)?; // cipher suites
    let n = r.u8()?;
    r.take(n)?; // compression methods
    let n = r.u16()?;
    let mut ext = Rd(r.take(n)?);
    while !ext.0.is_empty() {
        let kind = ext.u16()?;
        let n = ext.u16()?;
        let body = ext.take(n)?;
        if kind != 0 {
            continue;
        }
        let mut list = Rd(body);
        let n = list.u16()?;
        let mut names = Rd(list.take(n)?);
        while !names.0.is_empty() {
            let kind = names.u8()?;
            let n = names.u16()?;
            let name = names.take(n)?;
            if kind == 0 {
                let s = std::str::from_utf8(name).ok()?;
                return Some(s.to_ascii_lowercase());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn len16(n: usize) -> [u8; 2] {
        u16::try_from(n).expect("short").to_be_bytes()
    }

    fn hello(name: &str) -> Vec<u8> {
        let mut sni = Vec::new();
        let n = u16::try_from(name.len()).expect("short");
        sni.extend_from_slice(&(n + 3).to_be_bytes());
        sni.push(0);
        sni.extend_from_slice(&n.to_be_bytes());
        sni.extend_from_slice(name.as_bytes());
        let mut ext = vec![0, 0];
        ext.extend_from_slice(&len16(sni.len()));
        ext.extend_from_slice(&sni);
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7; 32]);
        body.push(0);
        body.extend_from_slice(&[0, 2, 0x13, 0x01, 1, 0]);
        body.extend_from_slice(&len16(ext.len()));
        body.extend_from_slice(&ext);
        let mut hs = vec![1, 0];
        hs.extend_from_slice(&len16(body.len()));
        hs.extend_from_slice(&body);
        hs
    }

    fn records(hs: &[u8], split: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for part in hs.chunks(split) {
            out.extend_from_slice(&[22, 3, 1]);
            out.extend_from_slice(&len16(part.len()));
            out.extend_from_slice(part);
        }
        out
    }

    #[test]
    fn finds_the_name_in_one_record_and_in_pieces() {
        let wire = records(&hello("A.Example"), 1000);
        assert_eq!(parse(&wire), Sni::Done(Some("a.example".into())));
        for cut in 0..wire.len() {
            assert_eq!(parse(&wire[..cut]), Sni::Incomplete, "cut {cut}");
        }
        let wire = records(&hello("b.example"), 7);
        assert_eq!(parse(&wire), Sni::Done(Some("b.example".into())));
    }

    #[test]
    fn http_is_not_tls() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Sni::NotTls);
    }
}
