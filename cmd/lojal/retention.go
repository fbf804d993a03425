package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/retention"
)

// runRetention runs one pass of the retention job now, the same pass the
// lojal-retention schedule starts on the workers (docs/retention.md):
// useful after changing a setting, or where no worker runs the schedule.
func runRetention(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, _, err := loadConfig("retention", args, stderr)
	if err != nil {
		return err
	}
	cat, err := loadCatalog(cfg.Journeys)
	if err != nil {
		return err
	}
	rules := *cat.Rules
	ret := retentionOf(cfg)
	if err := ret.Check(rules, retention.SettingNames()); err != nil {
		return exitError{code: 2, msg: "lojal retention: retention too short for policy.yaml (docs/retention.md):\n" + err.Error()}
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	job := &retention.Job{Store: st, Retention: ret, Rules: func() policy.Rules { return rules }, Log: slog.New(slog.DiscardHandler)}
	r, err := job.Once(ctx, func(step string) { fmt.Fprintf(stderr, "retention: %s\n", step) })
	if errors.Is(err, retention.ErrTooShort) {
		return exitError{code: 2, msg: "lojal retention: " + err.Error()}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "created %d partitions, dropped %d (ledger kept %s, events %s); deleted %d event ids, %d push deliveries, "+
		"%d schedule firings, %d journey runs, %d held-out messages, %d engagement signals, %d answered conversations, "+
		"%d replies outside a conversation, %d one-click answers, and %d consent-ledger entries no longer needed as evidence for %s\n",
		len(r.Created), len(r.Dropped), policy.FormatDuration(ret.WithDefaults().Ledger), policy.FormatDuration(ret.WithDefaults().Events),
		r.EventIDs, r.PushDeliveries, r.Firings, r.Runs, r.HoldoutMessages, r.Engagements, r.Conversations, r.Replies, r.Answers, r.Consent, policy.FormatDuration(ret.WithDefaults().Consent))
	for _, d := range r.Dropped {
		fmt.Fprintf(stdout, "dropped %s\n", d)
	}
	return nil
}
