//! lvs-monitord end to end, what happens to a pool: `on_failure = "remove"`, the sorry
//! server, and the quorum. The real daemon against the real director in the namespace
//! testbed, real HTTP servers, a real client (curl). SKIPPED when not root.

mod cluster;

use std::collections::HashMap;

use cluster::*;

const SORRY: &str = "203.0.113.11:8080";

fn rs(i: usize) -> String {
    format!("{}:80", RS[i])
}

/// Waits until `lvsadm -L -n` lists exactly `want` (ADDR:PORT -> weight).
fn wait_dests(c: &Cluster, what: &str, want: &[(String, u32)]) {
    let want: HashMap<String, u32> = want.iter().cloned().collect();
    wait_for(what, SOON, || (c.dests() == want).then_some(()));
}

/// Waits until a client's GET of the VIP is answered by `name`.
fn wait_answer(c: &Cluster, name: &str) {
    wait_for(&format!("a client answered by {name}"), SOON, || {
        (c.try_curl().as_deref() == Some(name)).then_some(())
    });
}

fn all_up(_c: &Cluster) -> Vec<(String, u32)> {
    (0..3).map(|i| (rs(i), WEIGHTS[i])).collect()
}

#[test]
fn on_failure_remove_takes_the_server_out_of_the_table_and_adds_it_back_with_its_weight() {
    let test =
        "on_failure_remove_takes_the_server_out_of_the_table_and_adds_it_back_with_its_weight";
    let Some(mut c) = Cluster::start(test, TESTBED) else {
        return;
    };
    c.start_monitord(&Cluster::http_config("", "on_failure = \"remove\""));
    wait_dests(&c, "all three servers in", &all_up(&c));

    c.kill_http("r2");
    wait_dests(
        &c,
        "r2 removed from the service",
        &[(rs(0), WEIGHTS[0]), (rs(2), WEIGHTS[2])],
    );
    let answers = c.curls(8);
    assert!(
        answers.iter().all(|n| n == "r1" || n == "r3"),
        "only r1 and r3 answer: {answers:?}"
    );
    assert_eq!(c.monitord_lines("action=remove").len(), 1);

    c.start_http("r2");
    wait_dests(&c, "r2 back with weight 2", &all_up(&c));
    wait_answer(&c, "r2");
    assert_eq!(c.monitord_lines("action=add").len(), 1);
    c.stop_monitord();
}

#[test]
fn the_sorry_server_answers_when_every_server_is_down_and_leaves_when_one_recovers() {
    let test = "the_sorry_server_answers_when_every_server_is_down_and_leaves_when_one_recovers";
    let Some(mut c) = Cluster::start(test, TESTBED) else {
        return;
    };
    c.start_monitord(&Cluster::http_config(
        "",
        &format!("sorry_server = \"{SORRY}\""),
    ));
    wait_dests(&c, "all three servers in", &all_up(&c));

    for node in NAMES {
        c.kill_http(node);
    }
    // The sorry server's HTTP server lives on r1's host, on another port.
    c.start_http_as("r1", "sorry", 8080);
    let mut want: Vec<(String, u32)> = (0..3).map(|i| (rs(i), 0)).collect();
    want.push((SORRY.to_owned(), 1));
    wait_dests(&c, "every server quiesced, the sorry server in", &want);
    wait_answer(&c, "sorry");
    let answers = c.curls(4);
    assert!(answers.iter().all(|n| n == "sorry"), "{answers:?}");
    assert_eq!(c.monitord_lines("event=sorry_server_on").len(), 1);

    c.start_http("r2");
    wait_dests(
        &c,
        "r2 back, the sorry server gone",
        &[(rs(0), 0), (rs(1), WEIGHTS[1]), (rs(2), 0)],
    );
    let answers = c.curls(4);
    assert!(answers.iter().all(|n| n == "r2"), "{answers:?}");
    assert_eq!(c.monitord_lines("event=sorry_server_off").len(), 1);
    c.stop_monitord();
}

#[test]
fn losing_the_quorum_hands_the_service_to_the_sorry_server_and_runs_the_notify_command() {
    let test =
        "losing_the_quorum_hands_the_service_to_the_sorry_server_and_runs_the_notify_command";
    let Some(mut c) = Cluster::start(test, TESTBED) else {
        return;
    };
    let events = c.rundir.join("notify.events");
    let alert = format!(
        "[alert]\n[alert.notify]\ncommand = [\"/bin/sh\", \"-c\", \
         \"echo \\\"$1 $2 $4\\\" >> {}\", \"notify\"]\n",
        events.display()
    );
    // Quorum 2 of 3: one server down is fine, two down is not.
    c.start_monitord(&Cluster::http_config(
        &alert,
        &format!("sorry_server = \"{SORRY}\"\nquorum = 2\nhysteresis = 0"),
    ));
    wait_dests(&c, "all three servers in", &all_up(&c));
    c.start_http_as("r1", "sorry", 8080);

    c.kill_http("r2");
    wait_dests(
        &c,
        "r2 quiesced, quorum still met",
        &[(rs(0), WEIGHTS[0]), (rs(1), 0), (rs(2), WEIGHTS[2])],
    );
    c.kill_http("r3");
    // r1 still passes its checks, but alone it is below the quorum: out, the sorry server in.
    wait_dests(
        &c,
        "quorum lost: the sorry server in, r1 out too",
        &[(rs(0), 0), (rs(1), 0), (rs(2), 0), (SORRY.to_owned(), 1)],
    );
    wait_answer(&c, "sorry");
    let lost = wait_for("the quorum_down notify", SOON, || {
        let text = std::fs::read_to_string(&events).ok()?;
        text.lines()
            .find(|l| l.starts_with("quorum_down "))
            .map(str::to_owned)
    });
    assert!(
        lost.contains("tcp/203.0.113.100:80") && lost.ends_with(" lost"),
        "{lost}"
    );
    assert_eq!(c.monitord_lines("event=quorum_down").len(), 1);

    // Back to two: the quorum is met again, the sorry server leaves.
    c.start_http("r3");
    wait_dests(
        &c,
        "quorum met: r1 and r3 in, the sorry server gone",
        &[(rs(0), WEIGHTS[0]), (rs(1), 0), (rs(2), WEIGHTS[2])],
    );
    wait_for("the quorum_up notify", SOON, || {
        let text = std::fs::read_to_string(&events).ok()?;
        text.lines()
            .any(|l| l.starts_with("quorum_up "))
            .then_some(())
    });
    let answers = c.curls(6);
    assert!(
        answers.iter().all(|n| n == "r1" || n == "r3"),
        "{answers:?}"
    );
    c.stop_monitord();
}

#[test]
fn syn_probes_through_the_director_take_a_dead_server_out_and_bring_it_back() {
    let test = "syn_probes_through_the_director_take_a_dead_server_out_and_bring_it_back";
    let Some(mut c) = Cluster::start(test, TESTBED) else {
        return;
    };
    // No checks configured: the implicit TCP check, as a half-open probe.
    let config = format!(
        "tcp_probe = \"syn\"\n[[service]]\nvip = \"{VIP}\"\nport = 80\n{}",
        Cluster::servers_config()
    );
    c.start_monitord(&config);
    wait_for("SYN-ACKs from all three servers", SOON, || {
        let out = text(&c.ctl(&["list"]).stdout);
        (out.matches("SYN-ACK").count() == 3).then_some(())
    });
    assert_eq!(c.dests(), all_up(&c).into_iter().collect());

    c.kill_http("r2");
    wait_dests(
        &c,
        "r2 quiesced",
        &[(rs(0), WEIGHTS[0]), (rs(1), 0), (rs(2), WEIGHTS[2])],
    );
    assert!(
        c.monitord_lines("event=server_down")[0].contains("Connection refused"),
        "{}",
        c.monitord_log()
    );
    c.start_http("r2");
    wait_dests(&c, "r2 back with weight 2", &all_up(&c));
    wait_answer(&c, "r2");
    c.stop_monitord();
}
