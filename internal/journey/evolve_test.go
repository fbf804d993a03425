package journey

import (
	"testing"
	"time"
)

// TestSchemaAdditionsDoNotBreakRuns: a run's schema is the one it started
// with; attributes and event fields added since are dropped for it, not
// refused.
func TestSchemaAdditionsDoNotBreakRuns(t *testing.T) {
	t.Parallel()
	s := mustSchema(t)
	c := Customer{ID: "c-1", Attributes: map[string]any{"first_name": "Kari", "plan": "home", "segment": "family", "tags": []any{"a"},
		"shoe_size": 44.0}}
	if _, err := s.CustomerVars(c); err == nil {
		t.Fatal("the run's schema should not know shoe_size (the test is moot otherwise)")
	}
	k := s.Known(c)
	if _, ok := k.Attributes["shoe_size"]; ok {
		t.Fatalf("unknown attribute kept: %v", k.Attributes)
	}
	if _, ok := c.Attributes["shoe_size"]; !ok {
		t.Fatal("Known changed its argument")
	}
	if _, err := s.CustomerVars(k); err != nil {
		t.Fatalf("known customer: %v", err)
	}
	e := Event{ID: "e-1", Type: "order.placed", CustomerID: "c-1", At: time.Now(), Data: map[string]any{"order_id": "o-1", "total": 9.0, "coupon": "X"}}
	ke, ok := s.KnownEvent(e)
	if !ok || len(ke.Data) != 2 || len(e.Data) != 3 {
		t.Fatalf("known event %+v %v (original %v)", ke.Data, ok, e.Data)
	}
	if _, err := s.EventVars(&ke); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.KnownEvent(Event{Type: "card.blocked"}); ok {
		t.Fatal("an event type the run's schema never declared is not for the run")
	}
}
