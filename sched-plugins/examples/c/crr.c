/*
 * crr.c - a round-robin scheduler written in C: the smallest complete lvs-rs scheduler plugin.
 *
 * Build and install:
 *     gcc -shared -fPIC -O2 -Wall -I../../abi/include -o crr.so crr.c
 *     install -m 0644 crr.so /usr/lib/lvs/sched/
 * Then `lvsadm -A -t VIP:80 -s crr` uses it; the director finds it by the name in the table
 * below, not by the file name.
 */
#include <stdlib.h>
#include <string.h>

#include "lvs_sched.h"

struct crr_state {
    size_t last; /* index picked last time */
};

static int dest_usable(const struct lvs_sched_dest *d)
{
    return d->weight > 0 && (d->flags & (LVS_DEST_F_QUIESCED | LVS_DEST_F_OVERLOADED)) == 0;
}

static int32_t crr_create(const struct lvs_sched_service *svc, void **state, char *errbuf,
                          size_t errlen)
{
    struct crr_state *s;

    if (svc->options[0] != '\0') {
        strncpy(errbuf, "crr takes no options", errlen - 1);
        errbuf[errlen - 1] = '\0';
        return LVS_SCHED_EINVAL;
    }
    s = calloc(1, sizeof(*s));
    if (!s)
        return LVS_SCHED_ENOMEM;
    s->last = (size_t)-1; /* so the first pick is index 0 */
    *state = s;
    return LVS_SCHED_OK;
}

static void crr_destroy(void *state)
{
    free(state);
}

/* Keep the rotation where it was when an earlier destination goes away. */
static int32_t crr_del_dest(void *state, const struct lvs_sched_dest *dests, size_t n,
                            size_t index)
{
    struct crr_state *s = state;

    (void)dests;
    (void)n;
    if (s->last != (size_t)-1 && index <= s->last)
        s->last = s->last == 0 ? (size_t)-1 : s->last - 1;
    return LVS_SCHED_OK;
}

static int32_t crr_schedule(void *state, const struct lvs_sched_flow *flow,
                            const struct lvs_sched_dest *dests, size_t n, size_t *chosen)
{
    struct crr_state *s = state;
    size_t i, k;

    (void)flow;
    for (k = 1; k <= n; k++) {
        i = (s->last + k) % n; /* unsigned wrap-around: from (size_t)-1 this starts at 0 */
        if (dest_usable(&dests[i])) {
            s->last = i;
            *chosen = i;
            return LVS_SCHED_OK;
        }
    }
    return LVS_SCHED_NONE;
}

static const struct lvs_sched_ops crr_ops = {
    .magic = LVS_SCHED_MAGIC,
    .abi_major = LVS_SCHED_ABI_MAJOR,
    .abi_minor = LVS_SCHED_ABI_MINOR,
    .size = sizeof(struct lvs_sched_ops),
    .flags = 0,
    .name = "crr",
    .description = "round robin, written in C",
    .create = crr_create,
    .destroy = crr_destroy,
    .add_dest = NULL, /* nothing to do: the next pick sees the new list */
    .del_dest = crr_del_dest,
    .upd_dest = NULL,
    .schedule = crr_schedule,
};

const struct lvs_sched_ops *lvs_sched_entry(void)
{
    return &crr_ops;
}
