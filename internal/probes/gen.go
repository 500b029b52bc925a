package probes

// The BPF object and its Go bindings are generated from bpf/ and committed,
// so building and testing need no clang. Regenerate with `make bpf`, which
// pins Debian 12's clang-14: another compiler changes the bytes, and
// `make test` compares the committed files with a fresh build when
// clang-14 is installed.
//
//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -cflags "-O2 -g -Wall -Werror" -target bpfel -tags linux -type hist -type hist_key -go-package probes probes ../../bpf/probes.bpf.c -- -I../../bpf/include -I../../bpf
