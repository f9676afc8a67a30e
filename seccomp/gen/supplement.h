/*
 * Constants that minijail's policy language knows but that the installed headers are too old
 * to define (Debian bookworm ships Linux 6.1 uapi headers). Each value is the one in the
 * upstream kernel uapi header named beside it; each is defined only when the headers lack it,
 * so newer headers always win. minijail's gen_constants-inl.h carries the same fallbacks.
 */
#ifndef RAY_SECCOMP_SUPPLEMENT_H
#define RAY_SECCOMP_SUPPLEMENT_H

/* include/uapi/asm-generic/mman-common.h, Linux 6.13 */
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#ifndef MADV_GUARD_REMOVE
#define MADV_GUARD_REMOVE 103
#endif

/* include/uapi/linux/prctl.h, Linux 6.4 */
#ifndef PR_GET_AUXV
#define PR_GET_AUXV 0x41555856
#endif

#endif
