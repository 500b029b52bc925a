// Package architecture holds repository-wide checks that no single package
// can make: documentation every package must have, and code comments that
// must not point outside the repository. It has no code of its own; the
// checks are its tests.
package architecture
