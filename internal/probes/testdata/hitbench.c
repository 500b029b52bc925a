/*
 * Probe-hit cost: times N calls of the fake cudaGraphLaunch (a counted
 * probe: one uprobe) and of cudaStreamSynchronize built with SYNC_US=0 (a
 * timed probe: uprobe + uretprobe), after a byte on stdin, and prints
 * "<graph ns/call> <sync ns/call>".
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int cudaStreamSynchronize(void *);
int cudaGraphLaunch(void *, void *);

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	long n = atol(argv[1]);
	char c;

	printf("ready\n");
	fflush(stdout);
	if (read(0, &c, 1) != 1)
		return 1;
	double t0 = now_ns();
	for (long i = 0; i < n; i++)
		cudaGraphLaunch(0, 0);
	double t1 = now_ns();
	for (long i = 0; i < n; i++)
		cudaStreamSynchronize(0);
	double t2 = now_ns();
	printf("%.1f %.1f\n", (t1 - t0) / n, (t2 - t1) / n);
	fflush(stdout);
	return 0;
}
