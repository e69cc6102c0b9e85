/* fiber.c: coroutines on small stacks of their own (fiber.h), over the
 * system's ucontext: each fiber has an mmap'd stack with a guard page
 * below it, reserved but not committed, so that ten thousand of them cost
 * the pages they touch (a few KB each) rather than their size. The
 * sanitizers are told of every switch (AddressSanitizer's and
 * ThreadSanitizer's fiber interfaces), so that the ASan and TSan builds
 * follow the stacks as they change. */
#include "fiber.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FIBER_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define FIBER_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define FIBER_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define FIBER_TSAN 1
#endif
#ifdef FIBER_ASAN
#include <dlfcn.h>
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef FIBER_TSAN
#include <sanitizer/tsan_interface.h>
#endif

#ifdef FIBER_ASAN
/* ASan's swapcontext interceptor warns once per process (into the log
 * the sanitizer check counts as a failure) and clears the shadow of the
 * target's whole stack, for switches it is not told of; the switches
 * here are annotated, so they call the C library's directly. */
static int swap_context(ucontext_t *from, const ucontext_t *to)
{
	static int (*real)(ucontext_t *, const ucontext_t *);
	if (!__atomic_load_n(&real, __ATOMIC_RELAXED))
		__atomic_store_n(&real, dlsym(RTLD_NEXT, "swapcontext"),
				 __ATOMIC_RELAXED);
	return real(from, to);
}
#else
#define swap_context swapcontext
#endif

struct fiber {
	ucontext_t self, caller;
	void (*fn)(void *);
	void *arg;
	char *map; /* the guard page, then the stack */
	size_t map_size, guard;
	int done;
#ifdef FIBER_ASAN
	void *fake_stack; /* the resumer's, while the fiber runs */
	const void *caller_bottom;
	size_t caller_size;
#endif
#ifdef FIBER_TSAN
	void *tsan, *tsan_caller;
#endif
};

/* Runs in the fiber: makecontext passes ints, so the pointer comes in
 * two halves. It never returns: it switches to f->caller itself, after
 * telling the sanitizers, so that ThreadSanitizer does not see this
 * frame's exit on the caller's shadow stack. */
static void fiber_main(unsigned hi, unsigned lo)
{
	struct fiber *f = (struct fiber *)(((uintptr_t)hi << 32) | lo);
#ifdef FIBER_ASAN
	__sanitizer_finish_switch_fiber(NULL, &f->caller_bottom,
					&f->caller_size);
#endif
	f->fn(f->arg);
	f->done = 1;
#ifdef FIBER_ASAN
	__sanitizer_start_switch_fiber(NULL, f->caller_bottom, f->caller_size);
#endif
#ifdef FIBER_TSAN
	__tsan_switch_to_fiber(f->tsan_caller, 0);
#endif
	setcontext(&f->caller);
}

/* getcontext returns twice in principle: kept apart so that no caller's
 * local lives across it. */
static __attribute__((noinline)) int context_get(ucontext_t *uc)
{
	return getcontext(uc);
}

struct fiber *fiber_create(size_t stack_size, void (*fn)(void *), void *arg)
{
	struct fiber *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->guard = (size_t)sysconf(_SC_PAGESIZE);
	f->map_size = f->guard + stack_size;
	f->map = mmap(NULL, f->map_size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
		      -1, 0);
	if (f->map == MAP_FAILED) {
		free(f);
		return NULL;
	}
	if (mprotect(f->map, f->guard, PROT_NONE) < 0 ||
	    context_get(&f->self) < 0) {
		int err = errno;
		munmap(f->map, f->map_size);
		free(f);
		errno = err;
		return NULL;
	}
	f->fn = fn;
	f->arg = arg;
	f->self.uc_stack.ss_sp = f->map + f->guard;
	f->self.uc_stack.ss_size = stack_size;
	uintptr_t p = (uintptr_t)f;
	makecontext(&f->self, (void (*)(void))fiber_main, 2,
		    (unsigned)(p >> 32), (unsigned)p);
#ifdef FIBER_TSAN
	f->tsan = __tsan_create_fiber(0);
#endif
	return f;
}

void fiber_resume(struct fiber *f)
{
#ifdef FIBER_ASAN
	__sanitizer_start_switch_fiber(&f->fake_stack, f->map + f->guard,
				       f->map_size - f->guard);
#endif
#ifdef FIBER_TSAN
	f->tsan_caller = __tsan_get_current_fiber();
	__tsan_switch_to_fiber(f->tsan, 0);
#endif
	swap_context(&f->caller, &f->self);
#ifdef FIBER_ASAN
	__sanitizer_finish_switch_fiber(f->fake_stack, NULL, NULL);
#endif
}

void fiber_yield(struct fiber *f)
{
#ifdef FIBER_ASAN
	void *fake_stack;
	__sanitizer_start_switch_fiber(&fake_stack, f->caller_bottom,
				       f->caller_size);
#endif
#ifdef FIBER_TSAN
	__tsan_switch_to_fiber(f->tsan_caller, 0);
#endif
	swap_context(&f->self, &f->caller);
#ifdef FIBER_ASAN
	__sanitizer_finish_switch_fiber(fake_stack, &f->caller_bottom,
					&f->caller_size);
#endif
}

int fiber_done(const struct fiber *f)
{
	return f->done;
}

void fiber_free(struct fiber *f)
{
	if (!f)
		return;
#ifdef FIBER_TSAN
	__tsan_destroy_fiber(f->tsan);
#endif
	munmap(f->map, f->map_size);
	free(f);
}
