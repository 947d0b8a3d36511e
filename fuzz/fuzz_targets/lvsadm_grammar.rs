//! lvsadm's grammar: the command line (`lvs_control::parse_args`: ipvsadm's commands and
//! lvsadm's own content-switching ones), and the rules file (`load_rules`, as `lvsadm -R`
//! and the director read it). The input is split into arguments at NUL bytes and newlines.
//! Invariants: no panic; rules that load save to text that loads again to the same rules.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lvs_control::{AnyScheduler, load_rules, parse_args};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let args: Vec<String> = text
        .split(['\0', '\n'])
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect();
    if let Ok(cmd) = parse_args(&args) {
        let _ = cmd;
    }
    // The same bytes as a rules file: NULs become spaces.
    let rules = text.replace('\0', " ");
    if let Ok(state) = load_rules(&rules, &AnyScheduler) {
        let saved = state.save();
        let again = load_rules(&saved, &AnyScheduler)
            .unwrap_or_else(|e| panic!("saved rules do not load: {e}\n{saved}"));
        assert_eq!(again.save(), saved, "save/load round trip");
    }
});
