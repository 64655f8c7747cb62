package plugin

// GetMetrics lets the external tests fetch /metrics the way `stats` does.
var GetMetrics = getMetrics
