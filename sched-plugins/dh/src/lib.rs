//! The `dh` scheduler plugin: destination hashing. The algorithm is [`lvs_sched_algos::Dh`].

lvs_sched_abi::export_scheduler!(
    lvs_sched_algos::Dh,
    name = "dh",
    description = "destination hashing"
);
