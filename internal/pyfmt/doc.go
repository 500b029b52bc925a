// Package pyfmt renders values the way Python prints them (repr of
// dicts, lists, strings and floats, and str.format specs), so that the
// agent's event log lines and alert messages read exactly as the seed's
// Python code wrote them.
package pyfmt
