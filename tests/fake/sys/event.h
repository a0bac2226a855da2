/*
 * tests/fake/sys/event.h - stand-in declarations of kqueue(2), so that
 * `make kqueue-syntax` can compile src/unix/notify.c's kqueue code on
 * Linux and catch what a BSD compiler would (types, names, arguments).
 * Nothing built with it is ever linked or run.  The constants are
 * FreeBSD's; NOTE_FUNLOCK (macOS) is left out on purpose, to compile the
 * path without it.
 */
#ifndef FAKE_SYS_EVENT_H
#define FAKE_SYS_EVENT_H

#include <stdint.h>
#include <time.h>

struct kevent {
    uintptr_t ident;
    short filter;
    unsigned short flags;
    unsigned int fflags;
    int64_t data;
    void *udata;
};

#define EVFILT_VNODE (-4)
#define EV_ADD 0x0001
#define EV_CLEAR 0x0020
#define NOTE_DELETE 0x0001
#define NOTE_ATTRIB 0x0008
#define NOTE_LINK 0x0010
#define NOTE_RENAME 0x0020
#define NOTE_REVOKE 0x0040
#define NOTE_CLOSE 0x0100
#define NOTE_CLOSE_WRITE 0x0200

#define EV_SET(kevp, a, b, c, d, e, f) do {     \
        struct kevent *kev_ = (kevp);           \
        kev_->ident = (a);                      \
        kev_->filter = (b);                     \
        kev_->flags = (c);                      \
        kev_->fflags = (d);                     \
        kev_->data = (e);                       \
        kev_->udata = (f);                      \
    } while (0)

int kqueue(void);
int kevent(int kq, const struct kevent *changelist, int nchanges, struct kevent *eventlist,
           int nevents, const struct timespec *timeout);

#endif
