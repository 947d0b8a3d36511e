//! A Rust plugin that panics: the ABI macro's thunks catch the panic, the host quarantines the
//! plugin, and the service carries on with round robin. The process must not abort.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

#[test]
fn a_rust_plugin_that_panics_is_quarantined_and_the_service_falls_back_to_rr() {
    let build = TempDir::new("panicky-build");
    let plugins = TempDir::new("panicky");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/panic-plugin/Cargo.toml");
    let out = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--offline", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(build.path())
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "building the panicking plugin: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::copy(
        build.path().join("debug/liblvs_sched_test_panicky.so"),
        plugins.path().join("panicky.so"),
    )
    .unwrap();

    let mut reg = registry(&[plugins.path()]);
    let mut inst = instance(&mut reg, "panicky", "", &[dest(1, 1), dest(2, 1)]);
    assert!(!inst.is_fallback());
    let got = picks(&mut inst, 4);
    assert_eq!(
        got,
        [Some(1), Some(2), Some(1), Some(2)],
        "round robin after the panic"
    );
    assert!(inst.is_fallback());
    let plugin = inst.plugin();
    assert!(plugin.is_quarantined());
    assert!(plugin.quarantine_reason().unwrap().contains("panicked"));
    let err = reg.get("panicky").unwrap_err().to_string();
    assert!(
        err.contains("scheduler \"panicky\" is quarantined"),
        "{err}"
    );
}
