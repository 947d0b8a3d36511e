//! The plugin host against real shared objects: the C example plugin built with gcc, the
//! bundled Rust plugins, and every kind of bad plugin file.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::*;
use lvs_sched_host::{HostError, LoadError, ScanProblem};

const CRR: &str = include_str!("../../examples/c/crr.c");

/// A minimal C plugin with its table fields given as C expressions, for the bad-table tests.
fn c_table_plugin(name: &str, magic: &str, major: &str, size: &str) -> String {
    format!(
        r#"#include "lvs_sched.h"
static int32_t c(const struct lvs_sched_service *s, void **st, char *e, size_t l)
{{ (void)s; (void)e; (void)l; static int x; *st = &x; return 0; }}
static void d(void *st) {{ (void)st; }}
static int32_t sc(void *st, const struct lvs_sched_flow *f, const struct lvs_sched_dest *ds,
                  size_t n, size_t *ch)
{{ (void)st; (void)f; (void)ds; if (n == 0) return LVS_SCHED_NONE; *ch = 0; return 0; }}
static const struct lvs_sched_ops ops = {{
    .magic = {magic}, .abi_major = {major}, .abi_minor = 0, .size = {size},
    .name = "{name}", .description = "test", .create = c, .destroy = d, .schedule = sc,
}};
const struct lvs_sched_ops *lvs_sched_entry(void) {{ return &ops; }}
"#
    )
}

fn good_c_plugin(name: &str) -> String {
    c_table_plugin(
        name,
        "LVS_SCHED_MAGIC",
        "LVS_SCHED_ABI_MAJOR",
        "sizeof(struct lvs_sched_ops)",
    )
}

fn load_problems(dir: &Path) -> Vec<LoadError> {
    let mut reg = registry(&[dir]);
    reg.rescan()
        .problems
        .into_iter()
        .filter_map(|p| match p {
            ScanProblem::Load(e) => Some(e),
            _ => None,
        })
        .collect()
}

#[test]
fn c_plugin_built_with_gcc_is_loaded_and_used() {
    let tmp = TempDir::new("crr");
    compile_c_plugin(CRR, &tmp.path().join("anything-named.so"));
    let mut reg = registry(&[tmp.path()]);
    assert_eq!(reg.names(), vec!["crr".to_string()]);
    let mut inst = instance(&mut reg, "crr", "", &[dest(1, 1), dest(2, 1), dest(3, 1)]);
    assert_eq!(
        picks(&mut inst, 7),
        [1, 2, 3, 1, 2, 3, 1].map(Some).to_vec(),
        "crr cycles in list order"
    );
    // Weight 0 is skipped; deleting an earlier server keeps the rotation.
    inst.update_dest(dest(2, 0)).unwrap();
    assert_eq!(picks(&mut inst, 4), [3, 1, 3, 1].map(Some).to_vec());
    inst.del_dest(1).unwrap();
    assert_eq!(picks(&mut inst, 2), [Some(3), Some(3)]);
    inst.update_dest(dest(3, 0)).unwrap();
    assert_eq!(
        picks(&mut inst, 1),
        [None],
        "no usable destination gives none"
    );
    // Options it does not take are refused with the plugin's own message.
    let plugin = reg.get("crr").unwrap();
    let err = lvs_sched_host::Instance::new(plugin, spec("x=1")).unwrap_err();
    assert!(err.to_string().contains("crr takes no options"), "{err}");
}

/// Compile a C program that prints the header's sizes and offsets, and compare with Rust's.
#[test]
fn c_header_and_rust_types_have_one_layout() {
    use lvs_sched_abi::{Dest, Flow, Ops, Service};
    use std::mem::{offset_of, size_of};
    let tmp = TempDir::new("layout");
    let fields: &[(&str, &str, usize)] = &[
        ("lvs_sched_flow", "src_port", offset_of!(Flow, src_port)),
        ("lvs_sched_flow", "dst_port", offset_of!(Flow, dst_port)),
        ("lvs_sched_flow", "family", offset_of!(Flow, family)),
        ("lvs_sched_flow", "protocol", offset_of!(Flow, protocol)),
        ("lvs_sched_dest", "port", offset_of!(Dest, port)),
        ("lvs_sched_dest", "family", offset_of!(Dest, family)),
        ("lvs_sched_dest", "flags", offset_of!(Dest, flags)),
        ("lvs_sched_dest", "weight", offset_of!(Dest, weight)),
        (
            "lvs_sched_dest",
            "active_conns",
            offset_of!(Dest, active_conns),
        ),
        (
            "lvs_sched_dest",
            "inactive_conns",
            offset_of!(Dest, inactive_conns),
        ),
        (
            "lvs_sched_dest",
            "persist_conns",
            offset_of!(Dest, persist_conns),
        ),
        ("lvs_sched_dest", "id", offset_of!(Dest, id)),
        ("lvs_sched_dest", "reserved", offset_of!(Dest, reserved)),
        ("lvs_sched_service", "port", offset_of!(Service, port)),
        ("lvs_sched_service", "flags", offset_of!(Service, flags)),
        ("lvs_sched_service", "options", offset_of!(Service, options)),
        (
            "lvs_sched_service",
            "reserved",
            offset_of!(Service, reserved),
        ),
        ("lvs_sched_ops", "abi_major", offset_of!(Ops, abi_major)),
        ("lvs_sched_ops", "size", offset_of!(Ops, size)),
        ("lvs_sched_ops", "name", offset_of!(Ops, name)),
        ("lvs_sched_ops", "create", offset_of!(Ops, create)),
        ("lvs_sched_ops", "destroy", offset_of!(Ops, destroy)),
        ("lvs_sched_ops", "add_dest", offset_of!(Ops, add_dest)),
        ("lvs_sched_ops", "del_dest", offset_of!(Ops, del_dest)),
        ("lvs_sched_ops", "upd_dest", offset_of!(Ops, upd_dest)),
        ("lvs_sched_ops", "schedule", offset_of!(Ops, schedule)),
        ("lvs_sched_ops", "reserved", offset_of!(Ops, reserved)),
    ];
    let sizes: &[(&str, usize)] = &[
        ("lvs_sched_flow", size_of::<Flow>()),
        ("lvs_sched_dest", size_of::<Dest>()),
        ("lvs_sched_service", size_of::<Service>()),
        ("lvs_sched_ops", size_of::<Ops>()),
    ];
    let mut src = String::from(
        "#include <stdio.h>\n#include <stddef.h>\n#include \"lvs_sched.h\"\nint main(void) {\n",
    );
    let mut want = String::new();
    for (s, size) in sizes {
        src += &format!("printf(\"sizeof {s} %zu\\n\", sizeof(struct {s}));\n");
        want += &format!("sizeof {s} {size}\n");
    }
    for (s, f, off) in fields {
        src += &format!("printf(\"offsetof {s}.{f} %zu\\n\", offsetof(struct {s}, {f}));\n");
        want += &format!("offsetof {s}.{f} {off}\n");
    }
    src += "printf(\"magic %u major %u\\n\", LVS_SCHED_MAGIC, LVS_SCHED_ABI_MAJOR);\nreturn 0; }\n";
    want += &format!(
        "magic {} major {}\n",
        lvs_sched_abi::MAGIC,
        lvs_sched_abi::ABI_MAJOR
    );
    let c = tmp.path().join("layout.c");
    let exe = tmp.path().join("layout");
    std::fs::write(&c, src).unwrap();
    let out = Command::new("gcc")
        .args(["-Wall", "-Werror", "-I"])
        .arg(header_dir())
        .arg("-o")
        .arg(&exe)
        .arg(&c)
        .output()
        .expect("gcc");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = Command::new(&exe).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&got.stdout), want);
}

#[test]
fn bundled_plugins_all_load_by_their_declared_names() {
    let dir = built_plugin_dir();
    let reg = registry(&[&dir]);
    let mut names = reg.names();
    names.retain(|n| n != "crr");
    assert_eq!(
        names,
        [
            "dh", "fo", "lc", "mh", "nq", "ovf", "rr", "sed", "sh", "twos", "wlc", "wrr"
        ]
    );
}

#[test]
fn a_file_that_is_not_elf_is_refused_and_the_others_still_load() {
    let tmp = TempDir::new("notelf");
    std::fs::write(tmp.path().join("readme.so"), "this is text\n").unwrap();
    std::fs::write(tmp.path().join("empty.so"), "").unwrap();
    compile_c_plugin(&good_c_plugin("good"), &tmp.path().join("good.so"));
    let problems = load_problems(tmp.path());
    assert_eq!(problems.len(), 2, "{problems:?}");
    for p in &problems {
        assert!(matches!(p, LoadError::NotElf { .. }), "{p}");
        assert!(p.to_string().contains("not an ELF shared object"));
    }
    let mut reg = registry(&[tmp.path()]);
    assert!(reg.get("good").is_ok());
}

#[test]
fn a_shared_object_without_the_entry_symbol_is_refused() {
    let tmp = TempDir::new("noentry");
    compile_c_plugin(
        "int not_a_scheduler(void) { return 1; }\n",
        &tmp.path().join("libz.so"),
    );
    let problems = load_problems(tmp.path());
    assert!(
        matches!(&problems[..], [LoadError::NoEntry { .. }]),
        "{problems:?}"
    );
    assert!(
        problems[0]
            .to_string()
            .contains("does not export lvs_sched_entry")
    );
}

#[test]
fn a_wrong_magic_is_refused() {
    let tmp = TempDir::new("magic");
    let src = c_table_plugin("bad", "0x12345678u", "1", "sizeof(struct lvs_sched_ops)");
    compile_c_plugin(&src, &tmp.path().join("bad.so"));
    let problems = load_problems(tmp.path());
    assert!(
        matches!(
            &problems[..],
            [LoadError::BadMagic {
                found: 0x1234_5678,
                ..
            }]
        ),
        "{problems:?}"
    );
}

#[test]
fn a_plugin_for_another_abi_major_is_refused_with_both_versions_named() {
    let tmp = TempDir::new("abi");
    for (file, major) in [("newer.so", "2"), ("older.so", "0")] {
        let src = c_table_plugin(
            file,
            "LVS_SCHED_MAGIC",
            major,
            "sizeof(struct lvs_sched_ops)",
        );
        compile_c_plugin(&src.replace(".so\"", "\""), &tmp.path().join(file));
    }
    let msgs: Vec<String> = load_problems(tmp.path())
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert!(
        msgs[0].contains("newer.so was built for scheduler ABI 2; this director speaks 1"),
        "{msgs:?}"
    );
    assert!(
        msgs[1].contains("older.so was built for scheduler ABI 0; this director speaks 1"),
        "{msgs:?}"
    );
}

#[test]
fn a_table_too_short_for_its_version_is_refused() {
    let tmp = TempDir::new("short");
    let src = c_table_plugin("short", "LVS_SCHED_MAGIC", "1", "40");
    compile_c_plugin(&src, &tmp.path().join("short.so"));
    let problems = load_problems(tmp.path());
    assert!(
        matches!(&problems[..], [LoadError::TableTooShort { size: 40, .. }]),
        "{problems:?}"
    );
    assert!(problems[0].to_string().contains("too short for ABI 1.0"));
}

#[test]
fn two_plugins_with_one_name_keep_the_first_in_search_order_and_say_so() {
    let first = TempDir::new("dup1");
    let second = TempDir::new("dup2");
    compile_c_plugin(CRR, &first.path().join("a.so"));
    compile_c_plugin(CRR, &second.path().join("b.so"));
    compile_c_plugin(CRR, &second.path().join("c.so"));
    let mut reg = registry(&[first.path(), second.path()]);
    let report = reg.rescan();
    assert_eq!(report.found.len(), 1);
    assert_eq!(report.found[0].1, first.path().join("a.so"));
    let dups: Vec<_> = report
        .problems
        .iter()
        .filter(|p| matches!(p, ScanProblem::Duplicate { name, .. } if name == "crr"))
        .collect();
    assert_eq!(dups.len(), 2, "{:?}", report.problems);
    assert!(
        dups[0]
            .to_string()
            .contains("two plugins declare the scheduler name \"crr\"")
    );
    assert_eq!(reg.get("crr").unwrap().path(), first.path().join("a.so"));
}

#[test]
fn a_plugin_dropped_in_later_is_found_by_name_without_a_restart() {
    let dir = TempDir::new("later");
    let build = TempDir::new("later-build");
    let mut reg = registry(&[dir.path()]);
    let err = reg.get("crr").unwrap_err();
    assert!(matches!(err, HostError::NotFound { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("no scheduler plugin provides \"crr\""),
        "{msg}"
    );
    assert!(
        msg.contains(&dir.path().display().to_string()),
        "the message names the directories searched: {msg}"
    );
    compile_c_plugin(CRR, &build.path().join("crr.so"));
    std::fs::copy(build.path().join("crr.so"), dir.path().join("crr.so")).unwrap();
    assert_eq!(reg.get("crr").unwrap().name(), "crr");
}

#[test]
fn a_world_writable_plugin_is_refused() {
    let tmp = TempDir::new("ww");
    let so = tmp.path().join("crr.so");
    compile_c_plugin(CRR, &so);
    std::fs::set_permissions(&so, std::fs::Permissions::from_mode(0o666)).unwrap();
    let problems = load_problems(tmp.path());
    assert!(
        matches!(&problems[..], [LoadError::WorldWritable { .. }]),
        "{problems:?}"
    );
}

#[test]
fn a_plugin_that_returns_an_error_is_quarantined_and_the_service_falls_back_to_rr() {
    let tmp = TempDir::new("fails");
    // Fails on the third pick.
    let src = good_c_plugin("flaky").replace(
        "*ch = 0; return 0;",
        "static int calls; if (++calls >= 3) return LVS_SCHED_EINTERNAL; *ch = 0; return 0;",
    );
    compile_c_plugin(&src, &tmp.path().join("flaky.so"));
    let mut reg = registry(&[tmp.path()]);
    let mut inst = instance(&mut reg, "flaky", "", &[dest(1, 1), dest(2, 1), dest(3, 1)]);
    let mut second = instance(&mut reg, "flaky", "", &[dest(7, 1)]);
    let got = picks(&mut inst, 6);
    assert_eq!(&got[..2], &[Some(1), Some(1)], "the plugin's own picks");
    assert!(
        inst.is_fallback(),
        "an error switches the instance to round robin"
    );
    let rest: Vec<u32> = got[2..].iter().map(|p| p.unwrap()).collect();
    let mut sorted = rest[..3].to_vec();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        [1, 2, 3],
        "round robin over the same servers: {rest:?}"
    );
    assert!(
        reg.get("flaky")
            .unwrap_err()
            .to_string()
            .contains("quarantined")
    );
    // Every other service using that plugin falls back too, at its next pick.
    assert_eq!(picks(&mut second, 1), [Some(7)]);
    assert!(second.is_fallback());
}
