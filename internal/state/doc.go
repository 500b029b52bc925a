// Package state owns the agent's small persistent state file (state_path,
// default agaobs_state.db): facts that must survive an agent restart, such
// as which rings the agent verified and which producer names it assigned,
// and later alert state and SLO windows. It is one bbolt file, independent of
// the audit backend. A nil *Store is valid and persists nothing, which is
// what an empty state_path gives.
package state
