/* fiber.h: coroutines on small stacks of their own (fiber.c): a function
 * that an event loop resumes, and that yields back to it where it would
 * otherwise block. One thread resumes its fibers one at a time. */
#ifndef FILESERV_FIBER_H
#define FILESERV_FIBER_H

#include <stddef.h>

struct fiber;

/* A fiber that will run fn(arg) when first resumed, on a stack of
 * stack_size bytes (memory is taken only for the pages it touches; a
 * guard page below it turns an overflow into a crash, not corruption);
 * NULL with errno set. */
struct fiber *fiber_create(size_t stack_size, void (*fn)(void *), void *arg);
/* Runs f until it yields or fn returns. Not from inside a fiber. */
void fiber_resume(struct fiber *f);
/* From inside f: back to whoever resumed it. */
void fiber_yield(struct fiber *f);
/* fn has returned. */
int fiber_done(const struct fiber *f);
/* Frees a fiber that is done or was never resumed. */
void fiber_free(struct fiber *f);

#endif
