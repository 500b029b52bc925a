/*
 * Calls the fake CUDA APIs a known number of times once told to (a byte on
 * stdin), so the test can attach first: N stream syncs and N device syncs
 * through the runtime, N stream syncs through the driver, G graph launches
 * (runtime) + G (driver), K kernel launches.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int cudaStreamSynchronize(void *);
int cudaDeviceSynchronize(void);
int cudaGraphLaunch(void *, void *);
int cudaLaunchKernel(const void *, int, int, void **, unsigned long, void *);
int cuStreamSynchronize(void *);
int cuGraphLaunch(void *, void *);

int main(int argc, char **argv)
{
	int n = atoi(argv[1]), g = atoi(argv[2]), k = atoi(argv[3]);
	char c;

	printf("ready\n");
	fflush(stdout);
	if (read(0, &c, 1) != 1)
		return 1;
	for (int i = 0; i < n; i++) {
		cudaStreamSynchronize(0);
		cudaDeviceSynchronize();
		cuStreamSynchronize(0);
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
