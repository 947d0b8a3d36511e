/*
 * lvs_sched.h - the scheduler plugin ABI of lvs-rs, version 1.0.
 *
 * A scheduler plugin is a shared object (.so) that exports one function,
 *
 *     const struct lvs_sched_ops *lvs_sched_entry(void);
 *
 * returning a pointer to a table that lives as long as the library (a static).  The director
 * opens the library with RTLD_NOW | RTLD_LOCAL, calls lvs_sched_entry() once, checks the
 * table's magic, ABI major version, size and name, and never unloads the library.
 *
 * The model is IPVS's struct ip_vs_scheduler: one state object per virtual service, told when
 * destinations (real servers) are added, updated or removed, and asked to pick one of them for
 * each new flow.
 *
 * Threading: the director never calls into one state object from two threads at once.  Calls
 * on different state objects may run concurrently, so a plugin keeps no unsynchronised global
 * mutable data.
 *
 * Memory: every pointer the director passes is valid only for the duration of the call.
 * Keep copies, not pointers.
 *
 * The Rust definition of the same ABI is the crate lvs-sched-abi; a test compiles a C plugin
 * against this header and checks that sizes and offsets agree.
 */
#ifndef LVS_SCHED_H
#define LVS_SCHED_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* "LVSS" read as a little-endian 32-bit number. */
#define LVS_SCHED_MAGIC 0x5353564Cu

/* A director accepts plugins of its own major version and any minor version. A newer minor
 * only appends fields at the end of lvs_sched_ops (taken from its reserved room) and is
 * recognised by a larger `size`. */
#define LVS_SCHED_ABI_MAJOR 1
#define LVS_SCHED_ABI_MINOR 0

/* The name of the exported entry function. */
#define LVS_SCHED_ENTRY_SYMBOL "lvs_sched_entry"

/* The longest scheduler name, without the terminating NUL. Names use [a-z0-9_-]. */
#define LVS_SCHED_NAME_MAX 15

/* Return codes of create / add_dest / del_dest / upd_dest / schedule. */
#define LVS_SCHED_OK 0       /* done; for schedule: *chosen is set */
#define LVS_SCHED_NONE 1     /* schedule only: no usable destination */
#define LVS_SCHED_EINVAL -1  /* bad argument or option; message in errbuf where there is one */
#define LVS_SCHED_ENOMEM -2  /* out of memory */
#define LVS_SCHED_EPANIC -3  /* the plugin failed internally (a Rust panic was caught) */
#define LVS_SCHED_EINTERNAL -4

/* Address families, as Linux numbers them. IPv4 addresses use the first 4 bytes of addr. */
#define LVS_AF_INET 2
#define LVS_AF_INET6 10

/* lvs_sched_dest.flags */
#define LVS_DEST_F_QUIESCED 0x1u   /* weight set to 0 by the sysadmin or the monitor */
#define LVS_DEST_F_OVERLOADED 0x2u /* over its upper connection threshold (-x) */

/* lvs_sched_service.flags */
#define LVS_SVC_F_PERSISTENT 0x1u
#define LVS_SVC_F_ONEPACKET 0x2u

/* The flow a new connection belongs to. Ports are in host byte order, addresses in network
 * byte order. */
struct lvs_sched_flow {
    uint8_t src_addr[16];
    uint8_t dst_addr[16];
    uint16_t src_port;
    uint16_t dst_port;
    uint8_t family;   /* LVS_AF_INET or LVS_AF_INET6 */
    uint8_t protocol; /* IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP */
    uint8_t reserved[2];
};

/* One destination (real server) of a virtual service, as the director sees it now. */
struct lvs_sched_dest {
    uint8_t addr[16];
    uint16_t port;
    uint8_t family;
    uint8_t reserved0;
    uint32_t flags;          /* LVS_DEST_F_* */
    uint32_t weight;         /* 0 means: never pick for a new flow */
    uint32_t active_conns;   /* connections in ESTABLISHED (TCP) */
    uint32_t inactive_conns; /* every other tracked connection */
    uint32_t persist_conns;  /* persistence templates pointing here */
    uint32_t id;             /* stable while the destination exists; chosen by the director */
    uint32_t reserved[3];
};

/* The virtual service a state object schedules for. */
struct lvs_sched_service {
    uint8_t addr[16];
    uint16_t port;
    uint8_t family;
    uint8_t protocol;
    uint32_t flags;      /* LVS_SVC_F_* */
    const char *options; /* scheduler options ("key=value,flag"), never NULL, may be "" */
    uint32_t reserved[4];
};

/*
 * The function table. In every callback that takes (dests, n, index), dests[index] is the
 * destination concerned and dests is the whole list in the director's order:
 *   add_dest: the list after the addition;
 *   upd_dest: the list after the update (weight, flags or thresholds changed);
 *   del_dest: the list before the removal (the director removes dests[index] on return).
 * add_dest, del_dest and upd_dest may be NULL when the scheduler keeps no per-destination
 * state. create, destroy and schedule are required.
 */
struct lvs_sched_ops {
    uint32_t magic;     /* LVS_SCHED_MAGIC */
    uint16_t abi_major; /* LVS_SCHED_ABI_MAJOR the plugin was built against */
    uint16_t abi_minor; /* LVS_SCHED_ABI_MINOR the plugin was built against */
    uint32_t size;      /* sizeof(struct lvs_sched_ops) as the plugin was built */
    uint32_t flags;     /* none defined yet; must be 0 */
    const char *name;   /* what `-s` takes; unique among loaded plugins */
    const char *description;

    /* Make a state object for one virtual service. On error, write a NUL-terminated message
     * of at most errlen bytes into errbuf and return a negative code. */
    int32_t (*create)(const struct lvs_sched_service *svc, void **state, char *errbuf,
                      size_t errlen);
    void (*destroy)(void *state);
    int32_t (*add_dest)(void *state, const struct lvs_sched_dest *dests, size_t n, size_t index);
    int32_t (*del_dest)(void *state, const struct lvs_sched_dest *dests, size_t n, size_t index);
    int32_t (*upd_dest)(void *state, const struct lvs_sched_dest *dests, size_t n, size_t index);
    /* Pick a destination for a new flow: LVS_SCHED_OK with *chosen an index into dests,
     * LVS_SCHED_NONE when no destination is usable, or a negative error. A destination with
     * weight 0 or any LVS_DEST_F_* flag set must not be chosen. */
    int32_t (*schedule)(void *state, const struct lvs_sched_flow *flow,
                        const struct lvs_sched_dest *dests, size_t n, size_t *chosen);

    void *reserved[8]; /* room for minor versions; must be NULL */
};

/* The one symbol a plugin exports. */
const struct lvs_sched_ops *lvs_sched_entry(void);

#ifdef __cplusplus
}
#endif

#endif /* LVS_SCHED_H */
