/* tap - a tiny TAP producer for the unit tests: plan, ok, is_int, is_str, diag, done.
 * Descriptions are printf formats: pass a computed one as ("%s", desc). */
#ifndef HERALD_TAP_H
#define HERALD_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct tap_state {
	int planned;                     /* -1 until plan() */
	int run;
	int failed;
};

/* tap_state - the one test state of the program */
static inline struct tap_state *tap_state(void)
{
	static struct tap_state s = { -1, 0, 0 };

	return &s;
}

/* plan - announce N tests ("1..N") */
static inline void plan(int n)
{
	tap_state()->planned = n;
	printf("1..%d\n", n);
	fflush(stdout);
}

/* diag - a "# ..." comment line (printf-style) in the TAP stream */
static inline void diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void diag(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

/* tap_vok - report one test, passed when COND; the description is printf-style; returns COND */
static inline int tap_vok(int cond, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static inline int tap_vok(int cond, const char *fmt, va_list ap)
{
	struct tap_state *s = tap_state();

	s->run++;
	if (!cond)
		s->failed++;
	printf("%sok %d - ", cond ? "" : "not ", s->run);
	vprintf(fmt, ap);
	putchar('\n');
	fflush(stdout);
	return cond;
}

/* ok - pass when COND is true; returns COND */
static inline int ok(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline int ok(int cond, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tap_vok(cond, fmt, ap);
	va_end(ap);
	return cond;
}

/* is_int - pass when GOT == WANT; shows both otherwise */
static inline int is_int(long long got, long long want, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static inline int is_int(long long got, long long want, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tap_vok(got == want, fmt, ap);
	va_end(ap);
	if (got != want)
		diag("got %lld, want %lld", got, want);
	return got == want;
}

/* is_str - pass when the strings are equal (NULL equals only NULL); shows both otherwise */
static inline int is_str(const char *got, const char *want, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static inline int is_str(const char *got, const char *want, const char *fmt, ...)
{
	int same = (got == NULL || want == NULL) ? got == want : strcmp(got, want) == 0;
	va_list ap;

	va_start(ap, fmt);
	tap_vok(same, fmt, ap);
	va_end(ap);
	if (!same)
		diag("got \"%s\", want \"%s\"", got ? got : "(null)", want ? want : "(null)");
	return same;
}

/* done - the exit status for main: 0 when every test passed and the count matched the plan
 * (with no plan() the plan "1..N" is printed now, at the end) */
static inline int done(void)
{
	struct tap_state *s = tap_state();

	if (s->planned < 0) {
		printf("1..%d\n", s->run);
		s->planned = s->run;
	}
	if (s->run != s->planned)
		diag("planned %d tests, ran %d", s->planned, s->run);
	if (s->failed)
		diag("failed %d of %d tests", s->failed, s->run);
	return s->failed == 0 && s->run == s->planned ? 0 : 1;
}

/* done_testing - the same as done() */
static inline int done_testing(void)
{
	return done();
}

#endif
