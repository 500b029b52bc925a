package metrics

// Helpers of the internal tests for the external ones (package metrics_test).
var (
	CheckExposition = checkExposition
	PromtoolCheck   = promtoolCheck
)
