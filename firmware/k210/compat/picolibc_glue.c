/* Ours (vgg-edge), not upstream: the few hooks picolibc wants from a bare-metal program, on the K210 SDK.
 * With Kendryte's newlib these come from the SDK's ecall handler (lib/bsp/syscalls.c); picolibc asks for
 * them by name instead: a stdout/stderr stream (tinystdio), sbrk for malloc, and _exit. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/time.h>
#include <syscalls.h>
#include <sysctl.h>

static int uart_put(char c, FILE *file)
{
    (void)file;
    if (!sys_putchar) /* registered by the SDK's UART set-up (uart_debug_init, uarths_init) */
        return (unsigned char)c;
    if (c == '\n')
        sys_putchar('\r');
    sys_putchar(c);
    return (unsigned char)c;
}

static int uart_get(FILE *file)
{
    (void)file;
    int c = sys_getchar ? sys_getchar() : EOF;
    return c < 0 ? EOF : c;
}

static FILE uart_stream = FDEV_SETUP_STREAM(uart_put, uart_get, NULL, _FDEV_SETUP_RW);
FILE *const stdin = &uart_stream;
FILE *const stdout = &uart_stream;
FILE *const stderr = &uart_stream;

/* The heap between the SDK linker script's _heap_start and _heap_end (lds/kendryte.ld), as its sys_brk.
 * The SDK's iomem allocator (drivers/iomem.c: the uncached copies its DMA and SPI drivers make of buffers at
 * cached addresses, FIX_CACHE) takes, when first used, everything from the SDK's _heap_line to the heap's end
 * as its pool and zeroes it: _heap_line must follow this heap's top, as the SDK's own sys_brk keeps it
 * (bsp/syscalls.c), or that first use wipes every block malloc has handed out (nncase's runtime among them). */
extern char _heap_start[];
extern char _heap_end[];
extern char *_heap_line;
static char *heap_top = _heap_start;

void *sbrk(ptrdiff_t increment)
{
    char *previous = heap_top;
    if (increment > _heap_end - heap_top || increment < _heap_start - heap_top)
    {
        errno = ENOMEM;
        return (void *)-1;
    }
    heap_top += increment;
    if (heap_top > _heap_line)
        _heap_line = heap_top;
    return previous;
}

void _exit(int code)
{
    sys_exit(code);
}

/* abort() -> raise() -> kill(getpid(), SIGABRT): there is one program and no signals; stop with the code. */
int getpid(void)
{
    return 1;
}

int kill(int pid, int signal)
{
    (void)pid;
    sys_exit(128 + signal);
}

/* time() asks for this; the SDK counts microseconds since reset (sysctl_get_time_us), there is no clock. */
int gettimeofday(struct timeval *tv, void *tz)
{
    (void)tz;
    uint64_t now_us = sysctl_get_time_us();
    tv->tv_sec = (time_t)(now_us / 1000000);
    tv->tv_usec = (suseconds_t)(now_us % 1000000);
    return 0;
}
