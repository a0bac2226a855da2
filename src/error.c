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
#include <stdlib.h>
#include <string.h>

/* The calling thread's message.  One buffer only: thread-local storage is
 * carved out of every thread's stack, and threads with the smallest stacks
 * (16 KiB) must still have room to run. */
static _Thread_local char message[CACHELOCK_PATH_MAX + 256];

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
#if ENOTSUP != EOPNOTSUPP
    case ENOTSUP:      return "Operation not supported";
#endif
    case EREMOTE:      return "Object is remote (not a local filesystem)";
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

static int shown_raw(const unsigned char *s, size_t len, size_t i, size_t *step)
{
    *step = cachelock__utf8_len(s + i, len - i);
    return *step > 1 || (*step == 1 && s[i] >= 0x20 && s[i] != 0x7f);
}

/* Write control characters and bytes that are not UTF-8 as \xNN, so that a
 * path or name holding them never reaches a terminal or a log raw.  Nearly
 * every message has none: one scan.  Otherwise the message is escaped from
 * a heap copy (or, without memory, such bytes become '?'). */
static void escape_message(void)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)message;
    size_t len = strlen(message), step, i;
    for (i = 0; i < len && shown_raw(s, len, i, &step); i += step)
        ;
    if (i == len)
        return;
    char *copy = strdup(message);
    if (!copy) {
        for (; i < len; i += step ? step : 1)
            if (!shown_raw(s, len, i, &step))
                message[i] = '?';
        return;
    }
    s = (const unsigned char *)copy;
    size_t o = i;
    while (i < len && o + 5 < sizeof message) {
        if (shown_raw(s, len, i, &step)) {
            if (o + step + 1 > sizeof message)
                break;
            memcpy(message + o, s + i, step);
            o += step;
            i += step;
            continue;
        }
        message[o++] = '\\';
        message[o++] = 'x';
        message[o++] = hex[s[i] >> 4];
        message[o++] = hex[s[i] & 15];
        i++;
    }
    message[o] = '\0';
    free(copy);
}

int cachelock__fail(int err, const char *op, const char *path)
{
    snprintf(message, sizeof message, "cannot %s '%s': %s", op, path, cachelock_strerror(err));
    escape_message();
    return err;
}

int cachelock__failf(int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    escape_message();
    return err;
}

/* ---- cancellation ------------------------------------------------------- */

/* Nesting depth of cancel_off() in this thread, and the state the
 * outermost call found. */
static _Thread_local int cancel_depth;
static _Thread_local int cancel_caller;

int cachelock__cancel_off(void)
{
    int old = cachelock__setcancelstate(CACHELOCK__CANCEL_DISABLE);
    if (cancel_depth++ == 0)
        cancel_caller = old;
    return old;
}

void cachelock__cancel_restore(int old)
{
    cancel_depth--;
    cachelock__setcancelstate(old);
}

int cachelock__cancel_caller_state(void)
{
    return cancel_depth > 0 ? cancel_caller : CACHELOCK__CANCEL_DISABLE;
}

const char *cachelock_version(void)
{
    return CACHELOCK_VERSION_STRING;
}
