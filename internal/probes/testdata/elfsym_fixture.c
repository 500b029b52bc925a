/*
 * Stand-ins for CUDA entry points, for DefinedSymbols. No libc headers, so
 * the fixture builds where libc6-dev is missing. Built as a shared library
 * (symbols in .dynsym and .symtab) and, with -DFIXTURE_EXE, as a non-PIE
 * executable (functions only in .symtab; puts in .dynsym as an undefined
 * symbol whose value is its PLT address). The link needs a version script
 * defining the node libcudart.so.12.
 */
int puts(const char *s); /* undefined here: resolved from libc at run time */

int cudaStreamSynchronize(void *stream)
{
	(void)stream;
	return puts("sync");
}

int cuGraphLaunch(void *graph, void *stream)
{
	(void)graph;
	(void)stream;
	return 0;
}

/* A GNU indirect function (STT_GNU_IFUNC), as glibc uses for memcpy. */
static int launch_impl(void) { return 0; }
static int (*resolve_launch(void))(void) { return launch_impl; }
int cudaLaunchKernel(void) __attribute__((ifunc("resolve_launch")));

/* A versioned name: .symtab keeps it as "cudaEventSynchronize@@libcudart.so.12". */
int event_sync_impl(void) { return 0; }
__asm__(".symver event_sync_impl, cudaEventSynchronize@@libcudart.so.12");

/* Defined, but data rather than a function. */
int cudaDataNotFunc = 1;

#ifdef FIXTURE_EXE
int main(void)
{
	/* Taking the address in non-PIC code gives puts a canonical PLT
	 * address: an undefined symbol with a non-zero value. */
	int (*volatile p)(const char *) = puts;
	return p("x") + cudaStreamSynchronize(0) + cuGraphLaunch(0, 0) +
	       cudaLaunchKernel() + event_sync_impl() + cudaDataNotFunc;
}
#endif
