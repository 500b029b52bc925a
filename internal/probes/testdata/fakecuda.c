/*
 * A stand-in for libcudart.so / libcuda.so with the real symbol names, for
 * the probe tests: synchronize calls sleep SYNC_US microseconds, launches
 * return at once. Built twice by the test (once per library name).
 *
 * Each synchronize call stores the time it actually spent inside (measured
 * on CLOCK_MONOTONIC, the clock bpf_ktime_get_ns reads) in
 * fakecudart_slept_ns / fakecuda_slept_ns, so a test asserts against what
 * the fake measured, not against SYNC_US: a loaded machine oversleeps.
 */
#include <time.h>

#ifndef SYNC_US
#define SYNC_US 3000
#endif

#ifdef RUNTIME
#define SLEPT fakecudart_slept_ns
#else
#define SLEPT fakecuda_slept_ns
#endif

long long SLEPT;

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void wait_us(long us)
{
	long long t0 = now_ns();
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };

	while (nanosleep(&ts, &ts) != 0)
		;
	SLEPT = now_ns() - t0;
}

#ifdef RUNTIME
int cudaStreamSynchronize(void *stream) { (void)stream; wait_us(SYNC_US); return 0; }
int cudaDeviceSynchronize(void) { wait_us(SYNC_US); return 0; }
int cudaEventSynchronize(void *event) { (void)event; wait_us(SYNC_US); return 0; }
int cudaGraphLaunch(void *exec, void *stream) { (void)exec; (void)stream; return 0; }
int cudaLaunchKernel(const void *f, int gx, int bx, void **args, unsigned long shmem, void *stream)
{ (void)f; (void)gx; (void)bx; (void)args; (void)shmem; (void)stream; return 0; }
#else
int cuStreamSynchronize(void *stream) { (void)stream; wait_us(SYNC_US); return 0; }
int cuCtxSynchronize(void) { wait_us(SYNC_US); return 0; }
int cuGraphLaunch(void *exec, void *stream) { (void)exec; (void)stream; return 0; }
#endif
