//go:build faultsv2

package workflows

// redeployChange: see redeploy.go.
const redeployChange = true
