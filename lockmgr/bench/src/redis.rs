//! The usual single-instance Redis lock: `SET key value NX PX ttl` to take it, `DEL key` to
//! release it, in RESP over one connection. Redis has no queue: a client that finds the key
//! taken retries at once (spins), which is the best case for Redis's throughput.

use std::io::{Read, Write};
use std::net::TcpStream;

use crate::{BenchError, Locker};

/// One Redis client locking one key.
#[derive(Debug)]
pub struct Redis {
    stream: TcpStream,
    buf: Vec<u8>,
    set_cmd: Vec<u8>,
    del_cmd: Vec<u8>,
    /// SET NX attempts that found the key taken.
    pub retries: u64,
}

fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        v.extend_from_slice(a);
        v.extend_from_slice(b"\r\n");
    }
    v
}

/// A RESP reply, as far as SET and DEL need it.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    Simple(String),
    Integer(i64),
    Nil,
}

impl Redis {
    /// Connects to `addr`; the lock is `key`, the value identifies this client, and a holder
    /// that dies loses it after `ttl_ms`.
    pub fn connect(addr: &str, key: &str, client: &str, ttl_ms: u64) -> Result<Redis, BenchError> {
        let stream =
            TcpStream::connect(addr).map_err(|e| BenchError::io(format!("connect {addr}"), e))?;
        stream
            .set_nodelay(true)
            .map_err(|e| BenchError::io("TCP_NODELAY", e))?;
        Ok(Redis {
            stream,
            buf: Vec::with_capacity(256),
            set_cmd: command(&[
                b"SET",
                key.as_bytes(),
                client.as_bytes(),
                b"NX",
                b"PX",
                ttl_ms.to_string().as_bytes(),
            ]),
            del_cmd: command(&[b"DEL", key.as_bytes()]),
            retries: 0,
        })
    }

    fn call(&mut self, cmd: &[u8]) -> Result<Reply, BenchError> {
        self.stream
            .write_all(cmd)
            .map_err(|e| BenchError::io("send to redis", e))?;
        self.read_reply()
    }

    fn line(&mut self) -> Result<Vec<u8>, BenchError> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let l = self.buf[..i].to_vec();
                self.buf.drain(..i + 2);
                return Ok(l);
            }
            self.fill()?;
        }
    }

    fn fill(&mut self) -> Result<(), BenchError> {
        let mut chunk = [0u8; 4096];
        let n = self
            .stream
            .read(&mut chunk)
            .map_err(|e| BenchError::io("read from redis", e))?;
        if n == 0 {
            return Err(BenchError::Protocol("redis closed the connection".into()));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    fn read_reply(&mut self) -> Result<Reply, BenchError> {
        let l = self.line()?;
        let text = String::from_utf8_lossy(l.get(1..).unwrap_or_default()).into_owned();
        match l.first() {
            Some(b'+') => Ok(Reply::Simple(text)),
            Some(b'-') => Err(BenchError::Protocol(format!("redis: {text}"))),
            Some(b':') => text
                .parse()
                .map(Reply::Integer)
                .map_err(|_| BenchError::Protocol(format!("redis: bad integer {text:?}"))),
            Some(b'$') if text == "-1" => Ok(Reply::Nil),
            _ => Err(BenchError::Protocol(format!(
                "redis: unexpected reply {:?}",
                String::from_utf8_lossy(&l)
            ))),
        }
    }
}

impl Locker for Redis {
    fn lock(&mut self) -> Result<(), BenchError> {
        let cmd = std::mem::take(&mut self.set_cmd);
        let r = loop {
            match self.call(&cmd) {
                Ok(Reply::Simple(s)) if s == "OK" => break Ok(()),
                Ok(Reply::Nil) => self.retries += 1,
                Ok(other) => {
                    break Err(BenchError::Protocol(format!(
                        "redis SET NX answered {other:?}"
                    )));
                }
                Err(e) => break Err(e),
            }
        };
        self.set_cmd = cmd;
        r
    }

    fn unlock(&mut self) -> Result<(), BenchError> {
        let cmd = std::mem::take(&mut self.del_cmd);
        let r = self.call(&cmd);
        self.del_cmd = cmd;
        match r? {
            Reply::Integer(1) => Ok(()),
            other => Err(BenchError::Protocol(format!(
                "redis DEL answered {other:?}: the lock had expired or been taken"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::command;

    #[test]
    fn resp_commands_are_arrays_of_bulk_strings() {
        assert_eq!(command(&[b"DEL", b"k"]), b"*2\r\n$3\r\nDEL\r\n$1\r\nk\r\n");
    }
}
