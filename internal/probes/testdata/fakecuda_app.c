/*
 * Calls the fake CUDA APIs a known number of times once told to (a byte on
 * stdin), so the test can attach first: N stream syncs and N device syncs
 * through the runtime, N stream syncs through the driver, G graph launches
 * (runtime) + G (driver), K kernel launches.
 *
 * For each synchronize call it prints "sync API INNER OUTER": INNER is the
 * time the fake measured inside the call (its sleep), OUTER the time
 * measured here around the call, both in ns on CLOCK_MONOTONIC. The probe's
 * uprobe fires after OUTER starts and before INNER starts, its uretprobe
 * after INNER ends and before OUTER ends, so the latency it records lies in
 * [INNER, OUTER] however loaded the machine is.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int cudaStreamSynchronize(void *);
int cudaDeviceSynchronize(void);
int cudaGraphLaunch(void *, void *);
int cudaLaunchKernel(const void *, int, int, void **, unsigned long, void *);
int cuStreamSynchronize(void *);
int cuGraphLaunch(void *, void *);
extern long long fakecudart_slept_ns, fakecuda_slept_ns;

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

#define TIMED(api, call, slept)                                              \
	do {                                                                 \
		long long t0 = now_ns();                                     \
		call;                                                        \
		long long outer = now_ns() - t0;                             \
		printf("sync %s %lld %lld\n", api, slept, outer);            \
	} while (0)

int main(int argc, char **argv)
{
	int n = atoi(argv[1]), g = atoi(argv[2]), k = atoi(argv[3]);
	char c;

	printf("ready\n");
	fflush(stdout);
	if (read(0, &c, 1) != 1)
		return 1;
	for (int i = 0; i < n; i++) {
		TIMED("cudaStreamSynchronize", cudaStreamSynchronize(0), fakecudart_slept_ns);
		TIMED("cudaDeviceSynchronize", cudaDeviceSynchronize(), fakecudart_slept_ns);
		TIMED("cuStreamSynchronize", cuStreamSynchronize(0), fakecuda_slept_ns);
	}
	for (int i = 0; i < g; i++) {
		cudaGraphLaunch(0, 0);
		cuGraphLaunch(0, 0);
	}
	for (int i = 0; i < k; i++)
		cudaLaunchKernel(0, 1, 1, 0, 0, 0);
	printf("done\n");
	fflush(stdout);
	if (read(0, &c, 1) != 1) /* stay alive until the test has read the maps */
		return 0;
	return 0;
}
