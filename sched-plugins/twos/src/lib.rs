//! The `twos` scheduler plugin: random two choices by weighted load. The algorithm is [`lvs_sched_algos::Twos`].

lvs_sched_abi::export_scheduler!(
    lvs_sched_algos::Twos,
    name = "twos",
    description = "random two choices by weighted load"
);
