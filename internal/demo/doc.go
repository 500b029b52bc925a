// Package demo owns `agaobs-agent demo`: synthetic AGA producers that are
// real child processes writing real rings (producer.go), and the supervisor
// that runs them beside the agent, kills and restarts one of them, and
// prints a live summary (supervisor.go).
package demo
