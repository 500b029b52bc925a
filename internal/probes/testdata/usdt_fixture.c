/*
 * SystemTap SDT notes written by hand, in the layout <sys/sdt.h> emits, so
 * the fixture builds without systemtap-sdt-dev or even libc headers.
 *
 * Probes (provider "fixture"):
 *   with_sem   semaphore fixture_with_sem_semaphore, args "-4@%edi 8@%rsi"
 *   no_sem     no semaphore, args "8@%rax"
 *   prelinked  pc, base and semaphore recorded 0x1000 too low, as after
 *              prelink moved the image: the reader must add back the
 *              difference between .stapsdt.base and the recorded base
 *
 * Each probe site is a nop at a global label usdt_site_<name>, so the test
 * can find its address independently of the notes.
 */

/* Semaphores: in .probes, as <sys/sdt.h> declares them. */
__extension__ unsigned short fixture_with_sem_semaphore
	__attribute__((used, section(".probes")));
__extension__ unsigned short fixture_prelinked_semaphore
	__attribute__((used, section(".probes")));

/* The (hidden, comdat) symbol whose address every note records as base. */
#define SDT_BASE                                                          \
	".ifndef _.stapsdt.base\n"                                        \
	".pushsection .stapsdt.base,\"aG\",\"progbits\",.stapsdt.base,comdat\n" \
	".weak _.stapsdt.base\n"                                          \
	".hidden _.stapsdt.base\n"                                        \
	"_.stapsdt.base: .space 1\n"                                      \
	".size _.stapsdt.base, 1\n"                                       \
	".popsection\n"                                                   \
	".endif\n"

/*
 * One note: namesz 8 "stapsdt", type 3, desc = pc, base, semaphore,
 * "provider\0name\0args\0". delta is subtracted from every address.
 */
#define SDT_PROBE(name, sema, args, delta)                                \
	__asm__ __volatile__(                                             \
		".globl usdt_site_" name "\n"                             \
		"usdt_site_" name ":\n"                                   \
		"990: nop\n"                                              \
		".pushsection .note.stapsdt,\"\",\"note\"\n"              \
		".balign 4\n"                                             \
		".4byte 992f-991f, 994f-993f, 3\n"                        \
		"991: .asciz \"stapsdt\"\n"                               \
		"992: .balign 4\n"                                        \
		"993: .8byte 990b - " delta "\n"                          \
		".8byte _.stapsdt.base - " delta "\n"                     \
		".8byte " sema "\n"                                       \
		".asciz \"fixture\"\n"                                    \
		".asciz \"" name "\"\n"                                   \
		".asciz \"" args "\"\n"                                   \
		"994: .balign 4\n"                                        \
		".popsection\n" SDT_BASE)

__attribute__((noinline, noclone)) int fixture_with_sem(int a, long b)
{
	if (fixture_with_sem_semaphore)
		SDT_PROBE("with_sem", "fixture_with_sem_semaphore", "-4@%edi 8@%rsi", "0");
	return a + (int)b;
}

__attribute__((noinline, noclone)) int fixture_no_sem(int a)
{
	SDT_PROBE("no_sem", "0", "8@%rax", "0");
	return a * 2;
}

__attribute__((noinline, noclone)) int fixture_prelinked(int a)
{
	if (fixture_prelinked_semaphore)
		SDT_PROBE("prelinked", "fixture_prelinked_semaphore - 0x1000", "", "0x1000");
	return a - 1;
}

#ifndef FIXTURE_LIB
int main(int argc, char **argv)
{
	(void)argv;
	return fixture_with_sem(argc, 1) + fixture_no_sem(argc) + fixture_prelinked(argc);
}
#endif
