/*
 * The C API against a running lvs-lockmgr: two sessions of this process, plus a lock that
 * another process (the Rust test) holds in EX.
 *
 * usage: basic RUNDIR HELD_NAME
 * Prints one line per step; exits 0 and prints "ALL OK" when every check passed, else prints
 * the failing check and exits 1.
 */
#include <lvs_lock.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                           \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            printf("FAILED line %d: %s (last error: %s)\n", __LINE__, #cond, lvs_lock_errmsg()); \
            exit(1);                                                                          \
        }                                                                                     \
    } while (0)

#define NAME(s) (s), strlen(s)

/* The next event of `kind`, skipping others (e.g. "queued" of earlier requests); 1 if found
 * within about 30 s. */
static int next_of_kind(lvs_lock_session *s, int kind, lvs_lock_event *ev)
{
    int n;
    for (n = 0; n < 300; n++) {
        int rc = lvs_lock_next_event(s, 100, ev);
        if (rc < 0)
            return rc;
        if (rc == 1 && ev->kind == kind)
            return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    lvs_lock_session *a = NULL, *b = NULL;
    lvs_lock_grant g, g2, g3;
    lvs_lock_event ev;
    uint64_t h, token;
    uint8_t lvb[LVS_LOCK_LVB_LEN], got[LVS_LOCK_LVB_LEN];
    int valid, rc;

    CHECK(argc == 3);
    CHECK(lvs_lock_api_version() == LVS_LOCK_API_VERSION);
    CHECK(lvs_lock_open(argv[1], &a) == LVS_LOCK_OK && a != NULL);
    CHECK(lvs_lock_open(argv[1], &b) == LVS_LOCK_OK && b != NULL);
    CHECK(lvs_lock_fd(a) >= 0);

    /* A lock held in EX by another process: try-lock fails with would-block, at once. */
    rc = lvs_lock_lock(a, NULL, NAME(argv[2]), LVS_LOCK_EX, LVS_LOCK_NOQUEUE, LVS_LOCK_WAIT_FOREVER, &g);
    CHECK(rc == LVS_LOCK_E_WOULDBLOCK);
    CHECK(strstr(lvs_lock_errmsg(), "would block") != NULL);
    rc = lvs_lock_lock(a, NULL, NAME(argv[2]), LVS_LOCK_CR, 0, 0, &g);
    CHECK(rc == LVS_LOCK_E_WOULDBLOCK);
    /* ... a bounded wait gives up. */
    rc = lvs_lock_lock(a, "default", NAME(argv[2]), LVS_LOCK_PR, 0, 300, &g);
    CHECK(rc == LVS_LOCK_E_TIMEOUT);
    printf("trylock on a lock held elsewhere: would block; timeout: timed out\n");

    /* Take and release; the same between two sessions of this process. */
    CHECK(lvs_lock_lock(a, "capi", NAME("res1"), LVS_LOCK_EX, 0, LVS_LOCK_WAIT_FOREVER, &g) == 0);
    CHECK(g.mode == LVS_LOCK_EX && g.token > 0 && g.lvb_state == LVS_LOCK_LVB_NONE);
    CHECK(lvs_lock_token(a, g.handle, &token) == 0 && token == g.token);
    rc = lvs_lock_lock(b, "capi", NAME("res1"), LVS_LOCK_EX, LVS_LOCK_NOQUEUE, -1, &g2);
    CHECK(rc == LVS_LOCK_E_WOULDBLOCK);
    /* NL is compatible with EX. */
    CHECK(lvs_lock_lock(b, "capi", NAME("res1"), LVS_LOCK_NL, LVS_LOCK_NOQUEUE, -1, &g2) == 0);
    CHECK(g2.token > g.token);
    CHECK(lvs_lock_unlock(b, g2.handle, NULL) == 0);
    printf("EX held: EX try-lock of another session would block, NL granted\n");

    /* Blocking notification: b waits for PR, a (holding EX) is told; b cancels. */
    CHECK(lvs_lock_request(b, "capi", NAME("res1"), LVS_LOCK_PR, 0, -1, &h) == 0);
    CHECK(next_of_kind(a, LVS_LOCK_EV_BLOCKING, &ev) == 1);
    CHECK(ev.handle == g.handle);
    CHECK(ev.mode == LVS_LOCK_EX && ev.blocked_mode == LVS_LOCK_PR);
    printf("blocking notification: lock %llu (%s) blocks %s\n", (unsigned long long)ev.handle,
           lvs_lock_mode_name(ev.mode), lvs_lock_mode_name(ev.blocked_mode));
    /* b's own events: its request is queued. */
    CHECK(next_of_kind(b, LVS_LOCK_EV_QUEUED, &ev) == 1);
    CHECK(ev.handle == h && ev.mode == LVS_LOCK_PR && ev.blocked_mode == -1);
    CHECK(lvs_lock_cancel(b, h) == 0);
    CHECK(lvs_lock_wait(b, h, &g2) == LVS_LOCK_E_CANCELLED);
    CHECK(lvs_lock_wait(b, h, &g2) == LVS_LOCK_E_HANDLE);
    printf("request cancelled\n");

    /* A waiter is granted when the holder releases; the fd turns readable for the grant. */
    CHECK(lvs_lock_request(b, "capi", NAME("res1"), LVS_LOCK_PW, LVS_LOCK_VALBLK, -1, &h) == 0);
    while (lvs_lock_next_event(a, 0, &ev) == 1) {
    }
    /* a writes the value block while it holds EX, then releases. */
    memset(lvb, 0, sizeof lvb);
    strcpy((char *)lvb, "written by a");
    CHECK(lvs_lock_write_value(a, g.handle, lvb) == 0);
    CHECK(lvs_lock_token(a, g.handle, &token) == 0 && token > g.token);
    CHECK(lvs_lock_read_value(a, g.handle, got, &valid) == 0 && valid == 1);
    CHECK(memcmp(got, lvb, sizeof lvb) == 0);
    CHECK(lvs_lock_unlock(a, g.handle, NULL) == 0);
    CHECK(lvs_lock_unlock(a, g.handle, NULL) == LVS_LOCK_E_HANDLE);
    {
        struct pollfd p = {lvs_lock_fd(b), POLLIN, 0};
        CHECK(poll(&p, 1, 10000) == 1);
    }
    CHECK(lvs_lock_wait(b, h, &g2) == 0);
    CHECK(g2.mode == LVS_LOCK_PW && g2.lvb_state == LVS_LOCK_LVB_VALID);
    CHECK(memcmp(g2.lvb, lvb, sizeof lvb) == 0);
    CHECK(g2.token > token);
    printf("value block round trip: \"%s\", token %llu\n", (const char *)g2.lvb,
           (unsigned long long)g2.token);

    /* DLM-style: a down-conversion PW -> NL with VALBLK writes grant.lvb; an up-conversion
     * with VALBLK reads it. */
    strcpy((char *)g2.lvb, "down-converted by b");
    CHECK(lvs_lock_lock(b, NULL, NULL, 0, LVS_LOCK_NL, LVS_LOCK_CONVERT | LVS_LOCK_VALBLK, -1, &g2) == 0);
    CHECK(g2.mode == LVS_LOCK_NL);
    memset(g2.lvb, 0, sizeof g2.lvb);
    CHECK(lvs_lock_lock(b, NULL, NULL, 0, LVS_LOCK_PR, LVS_LOCK_CONVERT | LVS_LOCK_VALBLK, -1, &g2) == 0);
    CHECK(g2.mode == LVS_LOCK_PR && g2.lvb_state == LVS_LOCK_LVB_VALID);
    CHECK(strcmp((const char *)g2.lvb, "down-converted by b") == 0);
    /* A PR holder may not write it. */
    CHECK(lvs_lock_write_value(b, g2.handle, lvb) == LVS_LOCK_E_INVAL);
    CHECK(lvs_lock_unlock(b, g2.handle, lvb) == LVS_LOCK_E_INVAL);
    /* Explicit conversion with lvs_lock_convert: up to EX, then down to CR writing it. */
    CHECK(lvs_lock_convert(b, g2.handle, LVS_LOCK_EX, 0, NULL, -1, &g3) == 0 && g3.mode == LVS_LOCK_EX);
    strcpy((char *)lvb, "third value");
    CHECK(lvs_lock_convert(b, g2.handle, LVS_LOCK_CR, LVS_LOCK_VALBLK, lvb, -1, NULL) == 0);
    CHECK(lvs_lock_read_value(b, g2.handle, got, NULL) == 0);
    CHECK(strcmp((const char *)got, "third value") == 0);
    /* Writing on an up-conversion is refused by lvs-lockmgr; the lock stays in CR. */
    rc = lvs_lock_convert(b, g2.handle, LVS_LOCK_EX, LVS_LOCK_VALBLK, lvb, -1, NULL);
    CHECK(rc == LVS_LOCK_E_BADREQUEST);
    CHECK(lvs_lock_convert(b, g2.handle, LVS_LOCK_CR, LVS_LOCK_NOQUEUE, NULL, -1, &g3) == 0);
    CHECK(g3.mode == LVS_LOCK_CR);
    printf("conversions with value blocks: ok\n");

    /* Bad arguments: refused with a code, nothing sent. */
    CHECK(lvs_lock_lock(a, NULL, NAME("x"), 6, 0, -1, &g) == LVS_LOCK_E_INVAL);
    CHECK(lvs_lock_lock(a, NULL, NAME("x"), LVS_LOCK_EX, 0x100, -1, &g) == LVS_LOCK_E_INVAL);
    CHECK(lvs_lock_lock(a, NULL, NAME("x"), LVS_LOCK_EX, 0, -5, &g) == LVS_LOCK_E_INVAL);
    {
        char longname[65];
        memset(longname, 'n', sizeof longname);
        CHECK(lvs_lock_lock(a, NULL, longname, sizeof longname, LVS_LOCK_EX, 0, -1, &g) == LVS_LOCK_E_INVAL);
        CHECK(lvs_lock_lock(a, NULL, longname, 64, LVS_LOCK_EX, 0, -1, &g) == 0);
        CHECK(lvs_lock_unlock(a, g.handle, NULL) == 0);
    }
    CHECK(lvs_lock_lock(NULL, NULL, NAME("x"), LVS_LOCK_EX, 0, -1, &g) == LVS_LOCK_E_NULL);
    CHECK(lvs_lock_lock(a, NULL, NULL, 3, LVS_LOCK_EX, 0, -1, &g) == LVS_LOCK_E_NULL);
    CHECK(lvs_lock_lock(a, NULL, NAME("x"), LVS_LOCK_EX, 0, -1, NULL) == LVS_LOCK_E_NULL);
    CHECK(lvs_lock_token(a, 424242, &token) == LVS_LOCK_E_HANDLE);
    CHECK(strcmp(lvs_lock_strerror(LVS_LOCK_E_HANDLE), "this session has no lock with that handle") == 0);
    printf("bad arguments refused\n");

    /* Closing a session releases its locks: a can now take res1 in EX at once. */
    lvs_lock_close(b);
    CHECK(lvs_lock_lock(a, "capi", NAME("res1"), LVS_LOCK_EX, 0, 10000, &g) == 0);
    CHECK(lvs_lock_unlock(a, g.handle, NULL) == 0);
    lvs_lock_close(a);
    lvs_lock_close(NULL);
    printf("ALL OK\n");
    return 0;
}
