/*
 * One process of the mutual-exclusion test: ITERS times, take the lock "counter" in EX, read
 * "COUNT TOKEN" from FILE, refuse to write if the stored token is not smaller than ours (the
 * storage-side fencing check), write "COUNT+1 OURTOKEN", release.
 *
 * usage: counter RUNDIR FILE ITERS
 * Exits 0 when done, 2 on a lock error, 3 on a fencing violation, 4 on a file error.
 */
#include <lvs_lock.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    lvs_lock_session *s;
    lvs_lock_grant g;
    long i, iters;
    int rc;

    if (argc != 4) {
        fprintf(stderr, "usage: counter RUNDIR FILE ITERS\n");
        return 2;
    }
    iters = atol(argv[3]);
    rc = lvs_lock_open(argv[1], &s);
    if (rc != LVS_LOCK_OK) {
        fprintf(stderr, "counter: %s\n", lvs_lock_errmsg());
        return 2;
    }
    for (i = 0; i < iters; i++) {
        unsigned long long count, stored;
        FILE *f;

        rc = lvs_lock_lock(s, NULL, "counter", strlen("counter"), LVS_LOCK_EX, 0,
                           LVS_LOCK_WAIT_FOREVER, &g);
        if (rc != LVS_LOCK_OK) {
            fprintf(stderr, "counter: lock: %s\n", lvs_lock_errmsg());
            return 2;
        }
        f = fopen(argv[2], "r");
        if (f == NULL || fscanf(f, "%llu %llu", &count, &stored) != 2) {
            fprintf(stderr, "counter: cannot read %s\n", argv[2]);
            return 4;
        }
        fclose(f);
        if (stored >= g.token) {
            fprintf(stderr, "counter: fencing: stored token %llu >= ours %" PRIu64 "\n", stored,
                    g.token);
            return 3;
        }
        f = fopen(argv[2], "w");
        if (f == NULL || fprintf(f, "%llu %" PRIu64 "\n", count + 1, g.token) < 0 ||
            fclose(f) != 0) {
            fprintf(stderr, "counter: cannot write %s\n", argv[2]);
            return 4;
        }
        rc = lvs_lock_unlock(s, g.handle, NULL);
        if (rc != LVS_LOCK_OK) {
            fprintf(stderr, "counter: unlock: %s\n", lvs_lock_errmsg());
            return 2;
        }
    }
    lvs_lock_close(s);
    return 0;
}
