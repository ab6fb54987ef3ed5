// Linux calls Swift's Glibc module does not import (they need _GNU_SOURCE).
#ifndef HERD_CLINUX_SHIM_H
#define HERD_CLINUX_SHIM_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sys/mman.h>
#include <sys/prctl.h>
#include <signal.h>

// An anonymous shared-memory file (close-on-exec): it has no name, so nothing is
// left behind in /dev/shm whatever happens to the process.
static inline int herd_memfd_create(const char *name) { return memfd_create(name, MFD_CLOEXEC); }
#endif
