//! The end-to-end testbed for lvs-monitord: the namespace testbed of `lvs_testsupport::cluster`
//! (client, router, director, three real servers with HTTP servers, the real `lvs-director`
//! and the real `lvs-monitord` in the director's namespace), and what only monitord's tests
//! need: a real SMTP server. The binaries come from the default target directory: `cargo build
//! --workspace` first.
#![allow(dead_code)] // each test file uses its own part of this module

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

pub use lvs_testsupport::cluster::*;
pub use lvs_testsupport::wait_for;

/// Namespaces `m<pid><n>-*`, run directories `lvs-mon-*`; the binaries beside lvs-monitord.
pub const TESTBED: Testbed = Testbed {
    built: env!("CARGO_BIN_EXE_lvs-monitord"),
    letter: "m",
    rundir: "lvs-mon",
};

pub fn monitord_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lvs-monitord"))
}

// ---- a real SMTP server (aiosmtpd) in the director's namespace -----------------------------

const SMTP_PY: &str = r#"
import asyncio, logging, os, sys, warnings
warnings.simplefilter("ignore")
logging.disable(logging.CRITICAL)
from aiosmtpd.smtp import SMTP
outdir = sys.argv[1]
class Handler:
    def __init__(self):
        self.n = 0
    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        tmp = os.path.join(outdir, ".%04d.tmp" % self.n)
        with open(tmp, "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(tmp, os.path.join(outdir, "%04d.eml" % self.n))
        return "250 Message accepted for delivery"
async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Handler(), hostname="lvs-test-smtp"), "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await loop.run_in_executor(None, sys.stdin.read)
asyncio.run(main())
"#;

/// aiosmtpd on 127.0.0.1 of a namespace (Debian's /usr/bin/python3 with python3-aiosmtpd).
#[derive(Debug)]
pub struct Smtp {
    child: Child,
    _stdin: ChildStdin,
    pub port: u16,
    dir: PathBuf,
}

impl Smtp {
    pub fn start(ns: &str, dir: &Path) -> Smtp {
        std::fs::create_dir_all(dir).expect("mail dir");
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "/usr/bin/python3", "-c", SMTP_PY])
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the SMTP server (needs python3-aiosmtpd)");
        let stdin = child.stdin.take().expect("stdin");
        let mut line = String::new();
        let _ = BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line);
        let Ok(port) = line.trim().parse() else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the SMTP server did not start ({line:?}): install python3-aiosmtpd");
        };
        Smtp {
            child,
            _stdin: stdin,
            port,
            dir: dir.to_path_buf(),
        }
    }

    pub fn messages(&self) -> Vec<String> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        names.retain(|p| p.extension().is_some_and(|e| e == "eml"));
        names.sort();
        names
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
