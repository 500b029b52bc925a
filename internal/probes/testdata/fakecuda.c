/*
 * A stand-in for libcudart.so / libcuda.so with the real symbol names, for
 * the probe tests: synchronize calls sleep SYNC_US microseconds, launches
 * return at once. Built twice by the test (once per library name).
 */
#include <time.h>

#ifndef SYNC_US
#define SYNC_US 3000
#endif

static void wait_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
	while (nanosleep(&ts, &ts) != 0)
		;
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
