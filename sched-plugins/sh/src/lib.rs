//! The `sh` scheduler plugin: source hashing. The algorithm is [`lvs_sched_algos::Sh`].

lvs_sched_abi::export_scheduler!(
    lvs_sched_algos::Sh,
    name = "sh",
    description = "source hashing"
);
