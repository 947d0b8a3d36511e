//! The `sed` scheduler plugin: shortest expected delay. The algorithm is [`lvs_sched_algos::Sed`].

lvs_sched_abi::export_scheduler!(
    lvs_sched_algos::Sed,
    name = "sed",
    description = "shortest expected delay"
);
