//! The C API for real: C programs compiled by gcc against `include/lvs_lock.h` and the built
//! `liblvslock.so`, talking to a real `lvs-lockmgr` started here, next to `lvs-lockctl`
//! processes and the Rust client.
//!
//! `liblvslock.so`, `lvs-lockmgr` and `lvs-lockctl` are found in the cargo output directory of
//! this test (`target/<profile>`); `cargo build --workspace` (which scripts/test.sh runs first)
//! builds them.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use lvs_lockclient::{LockClient, LockFlags, LockMode};
use lvs_testsupport::{TempDir, sibling_bin, wait_for};

/// `target/<profile>`, where cargo put liblvslock.so and the workspace binaries.
fn built_dir() -> PathBuf {
    lvs_testsupport::built_dir("liblvslock.so")
}

fn bin(name: &str) -> PathBuf {
    let so = built_dir().join("liblvslock.so");
    sibling_bin(so.to_str().expect("UTF-8 target path"), name)
}

/// A real lvs-lockmgr in the foreground on its own run and state directories.
struct Daemon {
    child: Child,
    dir: TempDir,
}

impl Daemon {
    fn start(tag: &str) -> Daemon {
        let dir = TempDir::new(tag);
        let conf = dir.0.join("lockmgr.toml");
        std::fs::write(
            &conf,
            format!("state_dir = \"{}\"\n", dir.0.join("state").display()),
        )
        .unwrap();
        let child = Command::new(bin("lvs-lockmgr"))
            .args(["-f", "--no-syslog", "--log-level", "warn", "--rundir"])
            .arg(dir.0.join("run"))
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .spawn()
            .expect("start lvs-lockmgr");
        let d = Daemon { child, dir };
        let run = d.rundir();
        wait_for(
            "lvs-lockmgr to accept clients",
            Duration::from_secs(30),
            || LockClient::connect(&run).ok(),
        );
        d
    }

    fn rundir(&self) -> PathBuf {
        self.dir.0.join("run")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Compiles `tests/c/<name>.c` as C99 against the header and liblvslock.so into `out_dir`.
fn compile(name: &str, out_dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/c")
        .join(format!("{name}.c"));
    compile_file(
        &src,
        &out_dir.join(name),
        "gcc",
        &["-std=c99", "-D_POSIX_C_SOURCE=200809L"],
    )
}

fn show(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn header_compiles_as_c99_and_cplusplus_and_matches_the_library() {
    use lvslock::error as e;
    use lvslock::ffi::{self, LvsLockEvent, LvsLockGrant};
    let tmp = TempDir::new("hdr");
    let src = tmp.0.join("layout.c");
    // Every constant of the header next to the library's value (and each code's message).
    let consts: [(&str, i32); 27] = [
        ("LVS_LOCK_OK", e::OK),
        ("LVS_LOCK_E_WOULDBLOCK", e::E_WOULDBLOCK),
        ("LVS_LOCK_E_DEADLOCK", e::E_DEADLOCK),
        ("LVS_LOCK_E_TIMEOUT", e::E_TIMEOUT),
        ("LVS_LOCK_E_CANCELLED", e::E_CANCELLED),
        ("LVS_LOCK_E_NOTFOUND", e::E_NOTFOUND),
        ("LVS_LOCK_E_BADREQUEST", e::E_BADREQUEST),
        ("LVS_LOCK_E_HANDLE", e::E_HANDLE),
        ("LVS_LOCK_E_CONNECT", e::E_CONNECT),
        ("LVS_LOCK_E_CLOSED", e::E_CLOSED),
        ("LVS_LOCK_E_PROTOCOL", e::E_PROTOCOL),
        ("LVS_LOCK_E_NULL", e::E_NULL),
        ("LVS_LOCK_E_INVAL", e::E_INVAL),
        ("LVS_LOCK_E_BUSY", e::E_BUSY),
        ("LVS_LOCK_E_INTERNAL", e::E_INTERNAL),
        ("LVS_LOCK_E_NOQUORUM", e::E_NOQUORUM),
        ("LVS_LOCK_NOQUEUE", 1),
        ("LVS_LOCK_CONVERT", 2),
        ("LVS_LOCK_VALBLK", 4),
        ("LVS_LOCK_NL", 0),
        ("LVS_LOCK_EX", 5),
        ("LVS_LOCK_LVB_NONE", ffi::LVB_NONE),
        ("LVS_LOCK_LVB_VALID", ffi::LVB_VALID),
        ("LVS_LOCK_LVB_INVALID", ffi::LVB_INVALID),
        ("LVS_LOCK_EV_QUEUED", ffi::EV_QUEUED),
        ("LVS_LOCK_EV_BLOCKING", ffi::EV_BLOCKING),
        ("LVS_LOCK_API_VERSION", ffi::API_VERSION),
    ];
    let mut c = String::from(
        "#include <lvs_lock.h>\n#include <stdio.h>\n#include <stddef.h>\n\
         int main(void) {\n\
         printf(\"%zu %zu %zu %zu %zu\\n\", sizeof(lvs_lock_grant), offsetof(lvs_lock_grant, token),\n\
                offsetof(lvs_lock_grant, mode), offsetof(lvs_lock_grant, lvb_state), offsetof(lvs_lock_grant, lvb));\n\
         printf(\"%zu %zu %zu\\n\", sizeof(lvs_lock_event), offsetof(lvs_lock_event, blocked_mode), offsetof(lvs_lock_event, handle));\n\
         printf(\"%d %d %d\\n\", lvs_lock_api_version(), LVS_LOCK_LVB_LEN, LVS_LOCK_MAX_NAME_LEN);\n",
    );
    let mut want = format!(
        "{} {} {} {} {}\n{} {} {}\n{} {} {}\n",
        size_of::<LvsLockGrant>(),
        std::mem::offset_of!(LvsLockGrant, token),
        std::mem::offset_of!(LvsLockGrant, mode),
        std::mem::offset_of!(LvsLockGrant, lvb_state),
        std::mem::offset_of!(LvsLockGrant, lvb),
        size_of::<LvsLockEvent>(),
        std::mem::offset_of!(LvsLockEvent, blocked_mode),
        std::mem::offset_of!(LvsLockEvent, handle),
        ffi::API_VERSION,
        lvs_lockclient::LVB_LEN,
        lvs_lockclient::MAX_NAME_LEN,
    );
    for (name, v) in consts {
        c += &format!("printf(\"{name} %d %s\\n\", (int)({name}), lvs_lock_strerror({name}));\n");
        let msg = e::describe(v).to_str().unwrap();
        want += &format!("{name} {v} {msg}\n");
    }
    c += "return 0; }\n";
    std::fs::write(&src, c).unwrap();
    let exe = compile_file(&src, &tmp.0.join("layout"), "gcc", &["-std=c99"]);
    let got = Command::new(&exe).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&got.stdout), want, "{}", show(&got));

    // The extern "C" guards: the header is usable from C++ too. The test's name promises it, so
    // a missing g++ fails here rather than leaving the half unchecked.
    assert!(
        Command::new("g++").arg("--version").output().is_ok(),
        "g++ is missing: install the Debian package g++ (scripts/test.sh does)"
    );
    let cpp = tmp.0.join("user.cpp");
    std::fs::write(
        &cpp,
        "#include <lvs_lock.h>\nint main() { return lvs_lock_api_version() == LVS_LOCK_API_VERSION ? 0 : 1; }\n",
    )
    .unwrap();
    let exe = compile_file(&cpp, &tmp.0.join("user"), "g++", &[]);
    assert!(Command::new(exe).status().unwrap().success());
}

fn compile_file(src: &Path, exe: &Path, compiler: &str, extra: &[&str]) -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = built_dir();
    let out = Command::new(compiler)
        .args(extra)
        .args(["-Wall", "-Wextra", "-Werror", "-I"])
        .arg(here.join("include"))
        .arg("-o")
        .arg(exe)
        .arg(src)
        .arg("-L")
        .arg(&lib)
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-llvslock")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {compiler} (scripts/test.sh installs gcc): {e}"));
    assert!(
        out.status.success(),
        "{compiler} {} failed:\n{}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    exe.to_path_buf()
}

#[test]
fn c_program_locks_converts_waits_and_round_trips_the_value_block() {
    let d = Daemon::start("basic");
    let exe = compile("basic", &d.dir.0);
    // Another process (this one) holds "held-elsewhere" in EX while the C program runs.
    let mut holder = LockClient::connect(&d.rundir()).unwrap();
    let g = holder
        .lock(
            "default",
            "held-elsewhere",
            LockMode::EX,
            LockFlags::NONE,
            None,
        )
        .unwrap();
    let out = Command::new(&exe)
        .arg(d.rundir())
        .arg("held-elsewhere")
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("ALL OK"),
        "{}",
        show(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("value block round trip: \"written by a\""),
        "{stdout}"
    );
    // The C program's sessions are gone with it, and so are their locks; ours stays.
    let l = holder.list(None).unwrap();
    let held: Vec<_> = l
        .resources
        .iter()
        .filter(|r| !r.granted.is_empty() || !r.waiting.is_empty())
        .map(|r| String::from_utf8_lossy(&r.name).into_owned())
        .collect();
    assert_eq!(held, ["held-elsewhere"]);
    holder.unlock(g.handle, None).unwrap();
}

#[test]
fn mutual_exclusion_for_real_c_and_lvs_lockctl_processes_lose_no_update() {
    let d = Daemon::start("mutex");
    let exe = compile("counter", &d.dir.0);
    let file = d.dir.0.join("count.txt");
    std::fs::write(&file, "0 0\n").unwrap();
    const C_PROCS: usize = 4;
    const C_ITERS: usize = 150;
    const SH_PROCS: usize = 2;
    const SH_ITERS: usize = 25;
    let mut children: Vec<(String, Child)> = (0..C_PROCS)
        .map(|i| {
            let c = Command::new(&exe)
                .arg(d.rundir())
                .arg(&file)
                .arg(C_ITERS.to_string())
                .spawn()
                .unwrap();
            (format!("C process {i}"), c)
        })
        .collect();
    // The same increment and fencing check in the shell, under `lvs-lockctl lock`.
    let script = format!(
        "i=0; while [ $i -lt {SH_ITERS} ]; do \"$CTL\" --rundir \"$RUN\" lock counter --mode EX -- \
         sh -c 'read n t < \"$F\"; [ \"$LVS_LOCK_TOKEN\" -gt \"$t\" ] || exit 3; \
         echo \"$((n+1)) $LVS_LOCK_TOKEN\" > \"$F\"' || exit 1; i=$((i+1)); done"
    );
    for i in 0..SH_PROCS {
        let c = Command::new("sh")
            .arg("-c")
            .arg(&script)
            .env("CTL", bin("lvs-lockctl"))
            .env("RUN", d.rundir())
            .env("F", &file)
            .spawn()
            .unwrap();
        children.push((format!("lvs-lockctl loop {i}"), c));
    }
    for (what, mut c) in children {
        let st = c.wait().unwrap();
        assert!(st.success(), "{what} failed: {st:?}");
    }
    let text = std::fs::read_to_string(&file).unwrap();
    let count: usize = text.split_whitespace().next().unwrap().parse().unwrap();
    assert_eq!(
        count,
        C_PROCS * C_ITERS + SH_PROCS * SH_ITERS,
        "updates lost: {text}"
    );
}

#[test]
fn a_c_holder_that_dies_releases_its_lock_at_once() {
    let d = Daemon::start("death");
    let exe = compile("counter", &d.dir.0);
    // A counter process that can never finish: its file is missing, so it exits with 4 while
    // holding the lock (it never unlocks): the daemon must release it when the process goes.
    let out = Command::new(&exe)
        .arg(d.rundir())
        .arg(d.dir.0.join("no-such-file"))
        .arg("1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", show(&out));
    let mut c = LockClient::connect(&d.rundir()).unwrap();
    let g = wait_for(
        "the dead holder's lock to go",
        Duration::from_secs(30),
        || c.try_lock("default", "counter", LockMode::EX).ok(),
    );
    c.unlock(g.handle, None).unwrap();
}

/// A session to `d` opened by the library's `lvs_lock_open` called from Rust.
fn open_session(d: &Daemon) -> *mut lvslock::ffi::LvsLockSession {
    let run = std::ffi::CString::new(d.rundir().to_str().unwrap()).unwrap();
    let mut s = std::ptr::null_mut();
    // SAFETY: a valid C string and a writable out pointer.
    let rc = unsafe { lvslock::ffi::lvs_lock_open(run.as_ptr(), &raw mut s) };
    assert_eq!(rc, lvslock::error::OK);
    s
}

/// A grant for `lvs_lock_lock` to fill in.
fn empty_grant() -> lvslock::ffi::LvsLockGrant {
    lvslock::ffi::LvsLockGrant {
        handle: 0,
        token: 0,
        mode: 0,
        lvb_state: 0,
        lvb: [0; 32],
    }
}

/// The session pointer, moved to another thread as a number (the session itself is shared
/// through `&`; its mutex is what this test checks).
#[derive(Clone, Copy)]
struct Ptr(usize);

#[test]
fn a_second_thread_on_a_busy_session_gets_busy_not_undefined_behaviour() {
    use lvslock::error::{E_BUSY, OK};
    use lvslock::ffi::{self, LvsLockSession};

    let d = Daemon::start("busy");
    let mut holder = LockClient::connect(&d.rundir()).unwrap();
    let held = holder
        .lock("default", "busy", LockMode::EX, LockFlags::NONE, None)
        .unwrap();
    let s = open_session(&d);
    let p = Ptr(s as usize);
    // One thread blocks in lvs_lock_lock until the holder lets go.
    let waiter = std::thread::spawn(move || {
        let mut g = empty_grant();
        let p = p;
        // SAFETY: the session stays open until this thread is joined; the name is 4 bytes.
        let rc = unsafe {
            ffi::lvs_lock_lock(
                p.0 as *const LvsLockSession,
                std::ptr::null(),
                b"busy".as_ptr().cast(),
                4,
                5,
                0,
                -1,
                &raw mut g,
            )
        };
        (rc, g)
    });
    // Meanwhile this thread is refused with E_BUSY, and can still get the fd.
    let mut token = 0u64;
    wait_for("the session to be busy", Duration::from_secs(30), || {
        // SAFETY: the session is open; token is writable.
        let rc = unsafe { ffi::lvs_lock_token(s, 1, &raw mut token) };
        (rc == E_BUSY).then_some(())
    });
    // SAFETY: the session is open.
    assert!(unsafe { ffi::lvs_lock_fd(s) } >= 0);
    holder.unlock(held.handle, None).unwrap();
    let (rc, g) = waiter.join().unwrap();
    assert_eq!(rc, OK);
    assert!(g.token > held.token);
    // SAFETY: the session is open and no other thread uses it any more.
    let rc = unsafe { ffi::lvs_lock_token(s, g.handle, &raw mut token) };
    assert_eq!(rc, OK);
    assert_eq!(token, g.token);
    // SAFETY: closed once, by its only user.
    unsafe { ffi::lvs_lock_close(s) };
}

#[test]
fn a_daemon_that_goes_away_ends_the_session_with_closed() {
    use lvslock::error::E_CLOSED;
    use lvslock::ffi;

    let mut d = Daemon::start("gone");
    let s = open_session(&d);
    let _ = d.child.kill();
    let _ = d.child.wait();
    let mut g = empty_grant();
    // SAFETY: the session is open; the name is 1 byte; g is writable.
    let rc = unsafe {
        ffi::lvs_lock_lock(
            s,
            std::ptr::null(),
            b"x".as_ptr().cast(),
            1,
            5,
            0,
            -1,
            &raw mut g,
        )
    };
    assert_eq!(rc, E_CLOSED);
    // SAFETY: lvs_lock_errmsg returns this thread's NUL-terminated message.
    let msg = unsafe { std::ffi::CStr::from_ptr(ffi::lvs_lock_errmsg()) };
    assert!(msg.to_string_lossy().contains("lvs-lockmgr"), "{msg:?}");
    // SAFETY: closed once, by its only user.
    unsafe { ffi::lvs_lock_close(s) };
}

/// Three real `lvs-lockmgr` peers (on 127.0.0.1, ports of a network namespace of the test's
/// own, removed with it), each with its run directory.
struct RaftCluster {
    ns: String,
    dir: TempDir,
    nodes: Vec<Child>,
}

impl RaftCluster {
    fn start(tag: &str, lease_ms: u64) -> RaftCluster {
        let ns = format!("lvscapi-{}-{tag}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        let ok = |c: &mut Command| assert!(c.status().unwrap().success(), "{c:?}");
        ok(Command::new("ip").args(["netns", "add", &ns]));
        let mut c = RaftCluster {
            ns,
            dir: TempDir::new(tag),
            nodes: Vec::new(),
        };
        ok(Command::new("ip").args(["-n", &c.ns, "link", "set", "lo", "up"]));
        let key = c.dir.0.join("key");
        std::fs::write(&key, "the shared key of this test cluster").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let peers = (1..=3)
            .map(|i| format!("{{ id = {i}, address = \"127.0.0.1:{}\" }}", 7480 + i))
            .collect::<Vec<_>>()
            .join(", ");
        for id in 1..=3u64 {
            let nd = c.dir.0.join(format!("n{id}"));
            std::fs::create_dir_all(&nd).unwrap();
            let conf = nd.join("lockmgr.toml");
            std::fs::write(
                &conf,
                format!(
                    "node_id = {id}\nstate_dir = \"{}\"\nlease_ms = {lease_ms}\nkey_file = \"{}\"\npeers = [{peers}]\n",
                    nd.join("state").display(),
                    key.display()
                ),
            )
            .unwrap();
            // A process group of its own: see lockmgr/tests/cluster.rs, Cluster::spawn.
            let child = Command::new("ip")
                .process_group(0)
                .args(["netns", "exec", &c.ns])
                .arg(bin("lvs-lockmgr"))
                .args(["-f", "--no-syslog", "--log-level", "warn", "--rundir"])
                .arg(c.rundir(id))
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .spawn()
                .expect("start lvs-lockmgr");
            c.nodes.push(child);
        }
        c
    }

    fn rundir(&self, id: u64) -> PathBuf {
        self.dir.0.join(format!("n{id}")).join("run")
    }

    /// The leader, once every node names the same one.
    fn leader(&self) -> u64 {
        wait_for(
            "the nodes to agree on a leader",
            Duration::from_secs(60),
            || {
                let seen: Vec<Option<u64>> = (1..=3)
                    .map(|id| {
                        let mut c = LockClient::connect(&self.rundir(id)).ok()?;
                        c.status().ok()?.leader.map(|n| n.0)
                    })
                    .collect();
                seen[0].filter(|l| seen.iter().all(|s| *s == Some(*l)))
            },
        )
    }

    /// SIGSTOP / SIGCONT to node `id`'s daemon (`ip netns exec` runs it in its own process).
    fn signal(&self, id: u64, signal: &str) {
        let pid = self.nodes[usize::try_from(id - 1).unwrap()]
            .id()
            .to_string();
        let st = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for RaftCluster {
    fn drop(&mut self) {
        for child in &mut self.nodes {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

/// The C block of README.md's section `title`, as it stands.
fn readme_example(title: &str) -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = &readme[readme.find(title).expect("the README's example")..];
    let code = &section[section.find("```c\n").expect("its C block") + 5..];
    code[..code.find("```").expect("the block's end")].to_owned()
}

/// README.md's fencing example, compiled from the README itself and run against three nodes:
/// A's node is stopped while A stalls, B gets the lock after A's lease, and the storage refuses
/// A's write with the older token.
#[test]
fn the_readme_fencing_example_refuses_the_stale_write() {
    if !lvs_testsupport::root_or_skip("the_readme_fencing_example_refuses_the_stale_write") {
        return;
    }
    let c = RaftCluster::start("fence", 3000);
    let leader = c.leader();
    let a_node = (1..=3).find(|&i| i != leader).unwrap();
    let src = c.dir.0.join("fencing.c");
    std::fs::write(
        &src,
        readme_example("## Example: a lock, and its fencing token passed to the storage"),
    )
    .unwrap();
    let exe = compile_file(
        &src,
        &c.dir.0.join("fencing"),
        "gcc",
        &["-std=c99", "-D_POSIX_C_SOURCE=200809L"],
    );
    let mut run = Command::new(&exe)
        .arg(c.rundir(a_node))
        .arg(c.rundir(leader))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(run.stdout.take().unwrap());
    let mut first = String::new();
    use std::io::BufRead;
    out.read_line(&mut first).unwrap();
    assert!(first.starts_with("A holds orders.db, token "), "{first}");
    // A's node stalls longer than the lease while A does: the lock moves on to B.
    c.signal(a_node, "STOP");
    use std::io::Write;
    writeln!(run.stdin.take().unwrap(), "go").unwrap();
    let status = wait_for("the example to end", Duration::from_secs(60), || {
        run.try_wait().unwrap()
    });
    c.signal(a_node, "CONT");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    println!("{first}{rest}");
    assert!(status.success(), "{status}: {first}{rest}");
    let token_a: u64 = first.trim().rsplit(' ').next().unwrap().parse().unwrap();
    assert!(rest.contains(": write accepted"), "{rest}");
    assert!(
        rest.contains(&format!("A's write with token {token_a} refused")),
        "{rest}"
    );
    assert!(rest.contains("orders.db holds \"B's order\""), "{rest}");
}
