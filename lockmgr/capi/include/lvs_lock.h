/*
 * lvs_lock.h - the C API of lvs-lockmgr, the lvs-rs distributed lock manager.
 *
 * Link with -llvslock (liblvslock.so). C99. See lockmgr/capi/README.md for a guide.
 *
 * A session is one connection to the local lvs-lockmgr. Every lock belongs to the session
 * that took it; when the session is closed, or the process dies, lvs-lockmgr releases all of
 * its locks and requests at once. If the node itself dies, the other nodes release them after
 * the session lease (lease_ms in lockmgr.toml).
 *
 * The lock semantics are the VMS / Linux DLM's: six modes with the standard compatibility
 * matrix, conversions up and down, try-locks (LVS_LOCK_NOQUEUE), bounded waits, a 32-byte lock
 * value block, blocking notifications, deadlock detection. Every grant carries a fencing token
 * that is larger than every token granted before: pass it with each write to the shared
 * storage, so that the storage can refuse a write from a holder whose lock has since gone to
 * someone else (see README.md).
 *
 * Return values: 0 (LVS_LOCK_OK) on success, a negative LVS_LOCK_E_* code on failure; then
 * lvs_lock_errmsg() says what happened in detail. No function aborts or unwinds into the caller;
 * a NULL where a pointer is required gives LVS_LOCK_E_NULL.
 *
 * Threads: a session serves one thread at a time (a second thread calling into the same session
 * while a call is running gets LVS_LOCK_E_BUSY). Use one session per thread, or a mutex. Different
 * sessions are independent, and so are their locks: two sessions of one process conflict like two
 * processes.
 */
#ifndef LVS_LOCK_H
#define LVS_LOCK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this API; lvs_lock_api_version() returns the library's. */
#define LVS_LOCK_API_VERSION 1

/* ---- lock modes (weakest first) ---- */
#define LVS_LOCK_NL 0 /* null: holds a place and the value block, blocks nobody */
#define LVS_LOCK_CR 1 /* concurrent read: others may read and write */
#define LVS_LOCK_CW 2 /* concurrent write: others may read and write (CR, CW) */
#define LVS_LOCK_PR 3 /* protected read: others may only read */
#define LVS_LOCK_PW 4 /* protected write: others may only read concurrently (CR) */
#define LVS_LOCK_EX 5 /* exclusive: nobody else except NL */

/* ---- request flags (bit mask) ---- */
/* Try-lock: fail at once with LVS_LOCK_E_WOULDBLOCK instead of waiting (in a Raft cluster that
 * cannot commit: LVS_LOCK_E_NOQUORUM within two election timeouts, 4 s by default). */
#define LVS_LOCK_NOQUEUE 0x1u
/* lvs_lock_lock only: convert the lock grant->handle (lockspace and name are ignored). With
 * LVS_LOCK_VALBLK, a conversion from PW or EX to a mode that is not stronger first writes
 * grant->lvb to the resource, as the DLM does. */
#define LVS_LOCK_CONVERT 0x2u
/* Return the resource's lock value block with the grant (grant->lvb, grant->lvb_state). */
#define LVS_LOCK_VALBLK 0x4u

/* ---- timeouts (milliseconds) of lock requests ---- */
#define LVS_LOCK_WAIT_FOREVER (-1) /* wait until granted (or deadlock, cancel) */
/* 0 means "do not wait": the request is a try-lock (as with LVS_LOCK_NOQUEUE). A positive value
 * gives up with LVS_LOCK_E_TIMEOUT after that long (resolution: lvs-lockmgr's tick, 100 ms by
 * default). */

/* Bytes in a lock value block. */
#define LVS_LOCK_LVB_LEN 32
/* Longest lockspace or resource name, in bytes. */
#define LVS_LOCK_MAX_NAME_LEN 64

/* ---- error codes (all negative) ---- */
#define LVS_LOCK_OK 0
#define LVS_LOCK_E_WOULDBLOCK (-1)  /* NOQUEUE (or timeout 0): held in a conflicting mode */
#define LVS_LOCK_E_DEADLOCK (-2)    /* chosen to break a deadlock: release locks, retry */
#define LVS_LOCK_E_TIMEOUT (-3)     /* the request's timeout ran out */
#define LVS_LOCK_E_CANCELLED (-4)   /* the request was cancelled (lvs_lock_cancel) */
#define LVS_LOCK_E_NOTFOUND (-5)    /* lvs-lockmgr knows no such lock, session or lockspace */
#define LVS_LOCK_E_BADREQUEST (-6)  /* lvs-lockmgr refused the request; nothing changed */
#define LVS_LOCK_E_HANDLE (-7)      /* this session has no lock with that handle */
#define LVS_LOCK_E_CONNECT (-8)     /* cannot reach lvs-lockmgr (not running? permissions?) */
#define LVS_LOCK_E_CLOSED (-9)      /* connection lost: the session and all its locks ended */
#define LVS_LOCK_E_PROTOCOL (-10)   /* lvs-lockmgr sent something this library does not know */
#define LVS_LOCK_E_NULL (-11)       /* a required pointer argument is NULL */
#define LVS_LOCK_E_INVAL (-12)      /* invalid argument: mode, flags, name length, timeout */
#define LVS_LOCK_E_BUSY (-13)       /* another thread is using this session right now */
#define LVS_LOCK_E_INTERNAL (-14)   /* a bug in liblvslock: close the session */
#define LVS_LOCK_E_NOQUORUM (-15)   /* NOQUEUE in a cluster that cannot commit (this node is cut
                                       off, no leader): not granted; retry later or elsewhere */

/* ---- value block state in a grant ---- */
#define LVS_LOCK_LVB_NONE 0    /* the request had no LVS_LOCK_VALBLK: lvb is zeros */
#define LVS_LOCK_LVB_VALID 1   /* lvb is what the last PW/EX holder wrote (zeros if none) */
#define LVS_LOCK_LVB_INVALID 2 /* a PW/EX holder died without writing it: rebuild it */

/* ---- event kinds ---- */
#define LVS_LOCK_EV_QUEUED 1   /* a request of this session waits in a queue */
#define LVS_LOCK_EV_BLOCKING 2 /* a lock of this session blocks another request */

/* A session with the local lvs-lockmgr (opaque). */
typedef struct lvs_lock_session lvs_lock_session;

/* A granted lock or conversion. */
typedef struct lvs_lock_grant {
    uint64_t handle;   /* the lock, for unlock/convert/token; unique in its session */
    uint64_t token;    /* the fencing token of this grant: pass it to the storage */
    int32_t mode;      /* the granted mode, LVS_LOCK_NL .. LVS_LOCK_EX */
    int32_t lvb_state; /* LVS_LOCK_LVB_NONE, _VALID or _INVALID */
    uint8_t lvb[LVS_LOCK_LVB_LEN]; /* with LVS_LOCK_VALBLK: the resource's value block */
} lvs_lock_grant;

/* Something lvs-lockmgr tells the session without being asked. */
typedef struct lvs_lock_event {
    int32_t kind;         /* LVS_LOCK_EV_QUEUED or LVS_LOCK_EV_BLOCKING */
    int32_t mode;         /* queued: the requested mode; blocking: the lock's granted mode */
    int32_t blocked_mode; /* blocking: the mode of the first request it blocks; queued: -1 */
    uint32_t reserved;    /* zero */
    uint64_t handle;      /* the lock */
} lvs_lock_event;

/* The API version of the loaded library (LVS_LOCK_API_VERSION it was built with). */
int lvs_lock_api_version(void);

/* ---- sessions ---- */

/* Opens a session with the lvs-lockmgr listening on <rundir>/lockmgr.sock. rundir NULL: the
 * environment variable LVS_RUNDIR, else /run/lvs. On success *out is the session.
 * Errors: LVS_LOCK_E_CONNECT (not running, no permission), LVS_LOCK_E_NULL (out). */
int lvs_lock_open(const char *rundir, lvs_lock_session **out);

/* Opens a session on the socket at socket_path. client_name (NULL: the program's name) is
 * what `lvs-lockctl list` shows as the holder. */
int lvs_lock_open_socket(const char *socket_path, const char *client_name,
                         lvs_lock_session **out);

/* Closes the session: lvs-lockmgr releases every lock and request of it at once. NULL is
 * ignored. The session must not be used afterwards. */
void lvs_lock_close(lvs_lock_session *s);

/* ---- locks ---- */

/* Takes a lock on resource `name` (name_len bytes, 1 to 64, any bytes) in `lockspace` (NULL:
 * "default"; created if missing), in `mode`, and blocks until it is granted, then fills *grant.
 * timeout_ms: LVS_LOCK_WAIT_FOREVER (-1), 0 (do not wait), or a limit in milliseconds.
 * flags: LVS_LOCK_NOQUEUE, LVS_LOCK_VALBLK, and LVS_LOCK_CONVERT to convert the lock whose
 * handle is in grant->handle instead (then grant is read first; see LVS_LOCK_CONVERT).
 * Errors: LVS_LOCK_E_WOULDBLOCK, _DEADLOCK, _TIMEOUT, _INVAL, _CLOSED, _NOQUORUM (a try-lock in a
 * cluster that cannot commit) ...; a new lock that is not
 * granted does not exist afterwards. */
int lvs_lock_lock(lvs_lock_session *s, const char *lockspace, const void *name, size_t name_len,
                  int mode, unsigned int flags, int64_t timeout_ms, lvs_lock_grant *grant);

/* Sends a lock request like lvs_lock_lock but does not wait: *handle names it. Then either
 * lvs_lock_wait() for the answer, or lvs_lock_cancel() it (and still lvs_lock_wait(), which
 * returns LVS_LOCK_E_CANCELLED), or lvs_lock_unlock() to abandon it. */
int lvs_lock_request(lvs_lock_session *s, const char *lockspace, const void *name,
                     size_t name_len, int mode, unsigned int flags, int64_t timeout_ms,
                     uint64_t *handle);

/* Waits for the answer to the request `handle` of lvs_lock_request(). */
int lvs_lock_wait(lvs_lock_session *s, uint64_t handle, lvs_lock_grant *grant);

/* Cancels the pending request of `handle`: its lvs_lock_wait() returns LVS_LOCK_E_CANCELLED.
 * Errors: LVS_LOCK_E_BADREQUEST if nothing is pending (e.g. it was granted meanwhile). */
int lvs_lock_cancel(lvs_lock_session *s, uint64_t handle);

/* Converts the granted lock `handle` to `mode` (up or down), blocking until granted (flags:
 * LVS_LOCK_NOQUEUE, LVS_LOCK_VALBLK; timeout_ms as for lvs_lock_lock). lvb (NULL: none): the
 * value block to write, allowed only on a conversion from PW or EX to a mode that is not
 * stronger. A failed conversion leaves the lock in its old mode. grant may be NULL. */
int lvs_lock_convert(lvs_lock_session *s, uint64_t handle, int mode, unsigned int flags,
                     const uint8_t *lvb, int64_t timeout_ms, lvs_lock_grant *grant);

/* Releases the lock `handle` (or abandons its request). lvb (NULL: none): LVS_LOCK_LVB_LEN
 * bytes to write as the resource's value block; only for a lock held in PW or EX. */
int lvs_lock_unlock(lvs_lock_session *s, uint64_t handle, const uint8_t *lvb);

/* ---- value blocks and fencing tokens ---- */

/* Copies the resource's current value block (LVS_LOCK_LVB_LEN bytes) to lvb, through the
 * granted lock `handle` in any mode; *valid (may be NULL) is 1, or 0 if a PW/EX holder died
 * without writing it. The lock gets a new grant (same mode, never waits) and a new token. */
int lvs_lock_read_value(lvs_lock_session *s, uint64_t handle, uint8_t *lvb, int *valid);

/* Writes the resource's value block (LVS_LOCK_LVB_LEN bytes from lvb) through the lock
 * `handle`, which must be held in PW or EX and stays so (with a new token). */
int lvs_lock_write_value(lvs_lock_session *s, uint64_t handle, const uint8_t *lvb);

/* The fencing token of the latest grant of lock `handle` (also in lvs_lock_grant.token). */
int lvs_lock_token(lvs_lock_session *s, uint64_t handle, uint64_t *token);

/* ---- notifications ---- */

/* The session's socket, to wait in poll()/select()/epoll for events (readable). Never read
 * from or write to it. Returns the fd (>= 0) or an error code. May be called while another
 * thread is inside a call on the session. */
int lvs_lock_fd(const lvs_lock_session *s);

/* The next event of the session: returns 1 with *ev filled, 0 if none came within timeout_ms
 * (-1: wait without limit; 0: do not wait), or an error code.
 * Events that arrived during other calls are kept by the session and do not make the fd
 * readable: before sleeping in poll(), drain them with lvs_lock_next_event(s, 0, &ev) until it
 * returns 0. A LVS_LOCK_EV_BLOCKING event is the DLM's blocking AST: a request for
 * ev.blocked_mode waits for your lock ev.handle; release or down-convert it when you can. */
int lvs_lock_next_event(lvs_lock_session *s, int timeout_ms, lvs_lock_event *ev);

/* ---- messages ---- */

/* The fixed message of an error code (static; never NULL). */
const char *lvs_lock_strerror(int code);

/* The detailed message of the calling thread's last failed call, e.g. "cannot connect to
 * /run/lvs/lockmgr.sock (is lvs-lockmgr running?): No such file or directory". Valid until the
 * next failing call in the same thread; "" if none failed yet. */
const char *lvs_lock_errmsg(void);

/* The name of a mode: "NL" .. "EX", or "?" for a number that is none. */
const char *lvs_lock_mode_name(int mode);

#ifdef __cplusplus
}
#endif

#endif /* LVS_LOCK_H */
