// Package testutil holds helpers shared by tests: privilege gates that skip
// on a developer machine but fail where CI promises privileges
// (AGAOBS_TEST_REQUIRE_BPF=1), and polling waits.
package testutil
