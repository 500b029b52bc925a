/*
 * Loads the fake libcudart with dlopen only when told to (first byte on
 * stdin), then calls cudaGraphLaunch K times (second byte): a library that
 * appears after the producer started, as lazily loaded CUDA does.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int k = atoi(argv[2]);
	char c;

	printf("ready\n");
	fflush(stdout);
	if (read(0, &c, 1) != 1)
		return 1;
	void *h = dlopen(argv[1], RTLD_NOW);
	if (!h) {
		printf("dlopen: %s\n", dlerror());
		return 1;
	}
	int (*launch)(void *, void *) = (int (*)(void *, void *))dlsym(h, "cudaGraphLaunch");
	printf("loaded\n");
	fflush(stdout);
	if (read(0, &c, 1) != 1)
		return 1;
	for (int i = 0; i < k; i++)
		launch(0, 0);
	printf("done\n");
	fflush(stdout);
	read(0, &c, 1);
	return 0;
}
