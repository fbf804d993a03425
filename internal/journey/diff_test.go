package journey

import (
	"strings"
	"testing"
)

// TestDiffShowsOldAndNewValues: every changed field is named with its old
// and new value, removed steps break runs waiting there, and changes that
// can mean more messages are marked as pressure.
func TestDiffShowsOldAndNewValues(t *testing.T) {
	t.Parallel()
	old := mustParse(t, `id: renew
name: Renew
topic: service
priority: high
trigger: { event: policy.renewal_scheduled }
reentry: once
goal: { event: policy.renewed }
steps:
  - id: remind
    send: { channel: email, template: renewal-reminder, purpose: '"renewal:" + event.policy_id' }
  - id: wait-for-renewal
    wait_for: { event: policy.renewed, timeout: 7d, on_timeout: nudge }
  - id: done
    exit: {}
  - id: nudge
    wait: { duration: 2d, at_local: "09:00" }
  - id: push
    send: { channel: push, template: renewal-nudge }
`)
	nw := mustParse(t, `id: renew
name: Renew
topic: reminders
priority: critical
trigger: { event: policy.renewal_scheduled }
reentry: always
steps:
  - id: remind
    send: { channel: [push, email], template: renewal-reminder }
  - id: wait-for-renewal
    wait_for: { event: policy.renewed, timeout: 10d, on_timeout: later }
  - id: done
    exit: { reason: renewed }
  - id: later
    wait: { duration: 1d, at_local: "09:00" }
  - id: push
    send: { channel: push, template: renewal-nudge, priority: normal }
  - id: again
    send: { channel: email, template: renewal-reminder }
`)
	var lines []string
	for _, c := range Diff(old, nw) {
		lines = append(lines, c.String())
	}
	got := strings.Join(lines, "\n")
	for _, want := range []string{
		"topic: service → reminders [pressure: customers who opted out of service get this journey again unless they opted out of reminders]",
		"priority: high → critical [pressure: raised to critical: skips caps, the minimum gap and quiet hours]",
		"reentry: once → always [pressure: customers may go through it more often]",
		"goal: policy.renewed → (none) [pressure: runs no longer stop when the customer reaches the goal]",
		"step remind: send.channel: email → push, email [pressure: more channels to reach the customer on]",
		`step remind: send.purpose: "renewal:" + event.policy_id → (none) [pressure: no purpose: no longer sent once across journeys]`,
		"step wait-for-renewal: wait_for.timeout: 7d → 10d",
		"step wait-for-renewal: wait_for.on_timeout: nudge → later",
		"step done: exit.reason: (none) → renewed",
		"step push: send.priority: (journey's: high) → normal",
		"step nudge removed (wait 2d at 09:00)",
		"step again added (send email renewal-reminder) [pressure: one more message]",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("diff lacks %q:\n%s", want, got)
		}
	}
	for _, c := range Diff(old, nw) {
		if c.Step == "nudge" && !c.Breaks {
			t.Error("a removed step must break runs waiting there")
		}
	}
	if d := Diff(old, old); len(d) != 0 {
		t.Errorf("a journey differs from itself: %v", d)
	}
}
