//! Connection thresholds (`-x`): a real server with as many connections as its upper
//! threshold is overloaded and gets no new connection until it has fewer.

mod common;

use common::{KEEPALIVE_CLIENT, Lines, NAMES, RS, Testbed, VIP};

#[test]
fn a_server_at_its_upper_threshold_gets_no_new_connection() {
    let Some(mut tb) = Testbed::start(
        "a_server_at_its_upper_threshold_gets_no_new_connection",
        "nat",
    ) else {
        return;
    };
    // Weighted failover: everything goes to r1 (the highest weight) while it can take it.
    tb.adm(&format!("-A -t {VIP}:80 -s fo"));
    tb.adm(&format!("-a -t {VIP}:80 -r {}:80 -m -w 5 -x 2", RS[0]));
    tb.adm(&format!("-a -t {VIP}:80 -r {}:80 -m -w 1", RS[1]));
    let listing = tb.adm("-L -n --thresholds");
    assert!(
        listing
            .lines()
            .any(|l| l.contains(&format!("{}:80", RS[0]))
                && l.split_whitespace().nth(2) == Some("2")),
        "upper threshold listed:\n{listing}"
    );
    assert_eq!(
        tb.curl(),
        NAMES[0],
        "below its threshold r1 takes the connection"
    );
    // Two connections held open on r1 reach its threshold (the finished one above is still
    // counted while it lingers in TIME_WAIT, as IPVS counts inactive connections too).
    let h = tb.spawn("c", &["python3", "-c", KEEPALIVE_CLIENT, VIP, "3"]);
    let first = Lines::new(tb.helper(h)).next_line();
    // One connection on r1 is below its threshold: fo still picks r1.
    assert!(first.starts_with(NAMES[0]), "{first}");
    let got = tb.curls(4);
    assert!(
        got.iter().all(|n| n == NAMES[1]),
        "r1 is overloaded: new connections go to r2: {got:?}\n{}",
        tb.adm("-L -n")
    );
}
