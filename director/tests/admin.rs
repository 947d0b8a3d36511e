//! lvsadm against the running director: save, clear and restore round-trip exactly, and the
//! restored rules forward traffic.

mod common;

use common::{Testbed, VIP};

/// `-S` of a varied rule set, `-C`, `-R` from stdin, `-S` again: the same text. The kernel
/// guard follows (cleared: no rules; restored: rules back), and HTTP works after the restore.
#[test]
fn save_clear_restore_round_trip() {
    let Some(tb) = Testbed::start("save_clear_restore_round_trip", "nat") else {
        return;
    };
    tb.service("-t", 80, "-s rr", "-m", &[1, 2, 3]);
    tb.adm(&format!("-A -u {VIP}:53 -s wlc -p 120 -M 255.255.255.0"));
    tb.adm(&format!("-a -u {VIP}:53 -r 203.0.113.11:5353 -m -w 5"));
    tb.adm(&format!("-A -t {VIP}:443 -s sh"));
    tb.adm(&format!(
        "-a -t {VIP}:443 -r 203.0.113.12:443 -g -w 1 -x 100 -y 50"
    ));
    tb.adm(&format!("-a -t {VIP}:443 -r 203.0.113.13:443 -i -w 0"));
    tb.adm("-A -t 203.0.113.101:8080 -s wrr -p");

    let saved = tb.adm("-S -n");
    assert_eq!(
        saved.lines().filter(|l| l.starts_with("-A")).count(),
        4,
        "{saved}"
    );
    assert_eq!(
        saved.lines().filter(|l| l.starts_with("-a")).count(),
        6,
        "{saved}"
    );

    tb.adm("-C");
    assert_eq!(tb.adm("-S -n"), "", "nothing left after -C");
    let nft = tb.exec("d", &["nft", "list", "table", "inet", "lvs_director"]);
    let table = String::from_utf8_lossy(&nft.stdout).into_owned();
    assert!(!table.contains(VIP), "the guard follows -C:\n{table}");

    tb.adm_stdin("-R", &saved);
    let again = tb.adm("-S -n");
    assert_eq!(again, saved, "save after restore equals the first save");

    let nft = tb.exec("d", &["nft", "list", "table", "inet", "lvs_director"]);
    let table = String::from_utf8_lossy(&nft.stdout).into_owned();
    assert!(
        table.contains(&format!("ip daddr {VIP} tcp dport 80 drop")),
        "{table}"
    );

    // The restored NAT service forwards: rr over weights 1:2:3 is still plain rr.
    let got = tb.curls(3);
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(sorted, ["r1", "r2", "r3"], "{got:?}");
}
