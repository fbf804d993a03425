//go:build !faultsv2

package workflows

// redeployChange is false in every real build. The fault test that
// redeploys the worker in the middle of runs builds lojal a second time
// with -tags faultsv2, where it is true: that build's workflow code
// differs from the first build's behind a version marker, as a real code
// change would (internal/faults, TestFaultRunsSurviveChange).
const redeployChange = false
