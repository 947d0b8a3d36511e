//! The `mh` scheduler plugin: Maglev hashing. The algorithm is [`lvs_sched_algos::Mh`].

lvs_sched_abi::export_scheduler!(
    lvs_sched_algos::Mh,
    name = "mh",
    description = "Maglev hashing"
);
