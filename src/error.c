/*
 * error.c - error codes to text, and the per-thread failure message.
 *
 * The message lives in thread-local storage so that several threads can fail
 * at once without mixing their messages (git's error() is process-global and
 * cannot be used from threads; we must be).  strerror(3) is not thread-safe,
 * so the texts come from our own table.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

static _Thread_local char message[PATH_MAX + 256];

const char *cachelock_strerror(int err)
{
    if (err == INT_MIN)
        return "Unknown error";     /* -INT_MIN does not exist */
    if (err < 0)
        err = -err;
    switch (err) {
    case 0:            return "Success";
    case EWOULDBLOCK:  return "Resource temporarily unavailable (lock is busy)";
    case ETIMEDOUT:    return "Timed out waiting for the lock";
    case EDEADLK:      return "Lock already held by this thread (would deadlock)";
    case EINPROGRESS:  return "Acquire in progress";
    case EALREADY:     return "Acquire already completed";
    case EINVAL:       return "Invalid argument";
    case ENAMETOOLONG: return "File name too long";
    case EINTR:        return "Interrupted system call";
    case ENOENT:       return "No such file or directory";
    case ENOTDIR:      return "Not a directory";
    case EISDIR:       return "Is a directory";
    case ELOOP:        return "Too many levels of symbolic links";
    case EACCES:       return "Permission denied";
    case EPERM:        return "Operation not permitted";
    case EROFS:        return "Read-only file system";
    case ENOSPC:       return "No space left on device";
    case EDQUOT:       return "Disk quota exceeded";
    case EMFILE:       return "Too many open files";
    case ENFILE:       return "Too many open files in system";
    case ENOMEM:       return "Cannot allocate memory";
    case ENOLCK:       return "No locks available";
    case EIO:          return "Input/output error";
    case EEXIST:       return "File exists";
    case ENXIO:        return "No such device or address";
    case ENODEV:       return "No such device";
    case EBADF:        return "Bad file descriptor";
    case ENOSYS:       return "Function not implemented";
    case EOPNOTSUPP:   return "Operation not supported";
    case ERANGE:       return "Result too large for the buffer";
    case EOVERFLOW:    return "Value too large for defined data type";
    case EFAULT:       return "Bad address";
    case ETXTBSY:      return "Text file busy";
    case ESTALE:       return "Stale file handle (the lock file keeps being replaced)";
    default:           return "Unknown error";
    }
}

const char *cachelock_errmsg(void)
{
    return message;
}

int cachelock__fail(int err, const char *op, const char *path)
{
    snprintf(message, sizeof message, "cannot %s '%s': %s", op, path,
             cachelock_strerror(err));
    return err;
}

int cachelock__failf(int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    return err;
}

/* ---- cancellation ------------------------------------------------------- */

/* Nesting depth of cancel_off() in this thread, and the state the
 * outermost call found. */
static _Thread_local int cancel_depth;
static _Thread_local int cancel_caller;

int cachelock__cancel_off(void)
{
    int old;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
    if (cancel_depth++ == 0)
        cancel_caller = old;
    return old;
}

void cachelock__cancel_restore(int old)
{
    cancel_depth--;
    pthread_setcancelstate(old, NULL);
}

int cachelock__cancel_caller_state(void)
{
    return cancel_depth > 0 ? cancel_caller : PTHREAD_CANCEL_DISABLE;
}

const char *cachelock_version(void)
{
    return CACHELOCK_VERSION_STRING;
}
