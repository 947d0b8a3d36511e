//! etcd 3's lock API (`v3lockpb.Lock`) through its HTTP/JSON gateway: a lease per client
//! (granted once), then `/v3/lock/lock` with the lease and `/v3/lock/unlock` with the key it
//! returned, over one keep-alive connection.

use crate::http::Http;
use crate::{BenchError, Locker};

/// One etcd client.
#[derive(Debug)]
pub struct Etcd {
    http: Http,
    lock_body: String,
    key: Option<String>,
}

impl Etcd {
    /// Connects to `endpoint` (host:port) and grants a lease of `ttl_s` seconds for the locks
    /// on `name`.
    pub fn connect(endpoint: &str, name: &str, ttl_s: u64) -> Result<Etcd, BenchError> {
        let mut http = Http::connect(endpoint)?;
        let v = call(
            &mut http,
            "/v3/lease/grant",
            &format!("{{\"TTL\":{ttl_s}}}"),
        )?;
        let lease = match &v["ID"] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            other => {
                return Err(BenchError::Protocol(format!(
                    "etcd lease grant without an ID: {other}"
                )));
            }
        };
        Ok(Etcd {
            http,
            lock_body: format!(
                "{{\"name\":\"{}\",\"lease\":\"{lease}\"}}",
                base64(name.as_bytes())
            ),
            key: None,
        })
    }
}

impl Locker for Etcd {
    fn lock(&mut self) -> Result<(), BenchError> {
        let v = call(&mut self.http, "/v3/lock/lock", &self.lock_body)?;
        match v["key"].as_str() {
            Some(k) => {
                self.key = Some(k.to_owned());
                Ok(())
            }
            None => Err(BenchError::Protocol(format!(
                "etcd lock without a key: {v}"
            ))),
        }
    }

    fn unlock(&mut self) -> Result<(), BenchError> {
        let key = self
            .key
            .take()
            .ok_or_else(|| BenchError::Protocol("unlock without a lock".into()))?;
        call(
            &mut self.http,
            "/v3/lock/unlock",
            &format!("{{\"key\":\"{key}\"}}"),
        )?;
        Ok(())
    }
}

fn call(http: &mut Http, path: &str, body: &str) -> Result<serde_json::Value, BenchError> {
    let (status, resp) = http.post_json(path, body)?;
    if status != 200 {
        return Err(BenchError::Protocol(format!(
            "etcd {path}: HTTP {status}: {}",
            String::from_utf8_lossy(&resp)
        )));
    }
    serde_json::from_slice(&resp)
        .map_err(|e| BenchError::Protocol(format!("etcd {path}: bad JSON: {e}")))
}

/// Standard base64 with padding (the JSON encoding of protobuf `bytes`).
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }
}
