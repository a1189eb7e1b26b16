/* Ours (vgg-edge), not upstream: what the K210 SDK takes from Kendryte's newlib and picolibc lacks,
 * force-included (-include) into the SDK's C sources. */
#ifndef VGG_EDGE_K210_NEWLIB_COMPAT_H
#define VGG_EDGE_K210_NEWLIB_COMPAT_H
typedef long _lock_t; /* Kendryte newlib's <sys/lock.h>; lib/bsp/locks.c defines the same type */
/* Kendryte newlib's lock hooks, which lib/bsp/locks.c implements and lib/drivers/iomem.c calls. */
void _lock_acquire_recursive(_lock_t *lock);
void _lock_release_recursive(_lock_t *lock);
#endif
