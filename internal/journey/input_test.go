package journey

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestHostileCustomersAreRefused: every customer below would once have been
// stored (or failed in Postgres with a 500); each is refused with a
// message naming the field and a pointer to it.
func TestHostileCustomersAreRefused(t *testing.T) {
	t.Parallel()
	s := mustSchema(t)
	// The attributes the test schema marks required.
	attrs := func() map[string]any {
		return map[string]any{"first_name": "Kari", "plan": "home", "segment": "family", "tags": []any{"a"}}
	}
	ok := Customer{ID: "c-1", Email: "kari@example.no", Attributes: attrs()}
	if _, err := s.CheckCustomer(ok); err != nil {
		t.Fatalf("good customer: %v", err)
	}
	for name, tc := range map[string]struct {
		edit    func(*Customer)
		pointer string
		msg     string
	}{
		"not an address":        {func(c *Customer) { c.Email = "kari" }, "/email", "want a plain address"},
		"display name":          {func(c *Customer) { c.Email = "Kari<kari@example.no>" }, "/email", "plain address"},
		"header injection":      {func(c *Customer) { c.Email = "kari@example.no\r\nBcc: all@example.no" }, "/email", "control character"},
		"two addresses":         {func(c *Customer) { c.Email = "kari@example.no, ola@example.no" }, "/email", "whitespace"},
		"no domain dot":         {func(c *Customer) { c.Email = "kari@localhost" }, "/email", "domain"},
		"domain literal":        {func(c *Customer) { c.Email = "kari@[127.0.0.1]" }, "/email", ""},
		"long local part":       {func(c *Customer) { c.Email = strings.Repeat("k", 65) + "@example.no" }, "/email", "64"},
		"NUL in attribute":      {func(c *Customer) { c.Attributes["first_name"] = "Ka\x00ri" }, "/attributes/first_name", "NUL"},
		"bad UTF-8":             {func(c *Customer) { c.Attributes["first_name"] = "Ka\xffri" }, "/attributes/first_name", "UTF-8"},
		"NUL in list":           {func(c *Customer) { c.Attributes["tags"] = []any{"a", "b\x00"} }, "/attributes/tags/1", "NUL"},
		"NUL in field name":     {func(c *Customer) { c.Attributes["first\x00name"] = "x" }, "/attributes/first\x00name", "field name"},
		"NUL in topic":          {func(c *Customer) { c.TopicsOptedOut = []string{"service\x00"} }, "/topics_opted_out/0", "NUL"},
		"wrong type":            {func(c *Customer) { c.Attributes["plan"] = 3.0 }, "/attributes/plan", `field "plan"`},
		"undeclared":            {func(c *Customer) { c.Attributes["shoe/size"] = "44" }, "/attributes/shoe~1size", "unknown field"},
		"consent channel":       {func(c *Customer) { c.Consent = map[string]bool{"sms": true} }, "/consent/sms", "unknown channel"},
		"preferred channel":     {func(c *Customer) { c.PreferredChannel = "fax" }, "/preferred_channel", "fax"},
		"built-in as attribute": {func(c *Customer) { c.Attributes["email"] = "x@example.no" }, "/attributes/email", "top-level"},
	} {
		t.Run(name, func(t *testing.T) {
			c := ok
			c.Attributes = attrs()
			tc.edit(&c)
			_, err := s.CheckCustomer(c)
			var ie *InputError
			if !errors.As(err, &ie) || ie.Pointer != tc.pointer || !strings.Contains(ie.Msg, tc.msg) {
				t.Fatalf("CheckCustomer = %#v, want pointer %s and %q", err, tc.pointer, tc.msg)
			}
		})
	}
}

func TestHostileEventsAreRefused(t *testing.T) {
	t.Parallel()
	s := mustSchema(t)
	ok := Event{ID: "e-1", Type: "order.placed", CustomerID: "c-1", At: time.Now(), Data: map[string]any{"order_id": "o-1", "total": 10.5}}
	if _, err := s.CheckEvent(ok); err != nil {
		t.Fatalf("good event: %v", err)
	}
	for name, tc := range map[string]struct {
		data    map[string]any
		pointer string
	}{
		"NUL in value":      {map[string]any{"order_id": "o\x00"}, "/data/order_id"},
		"bad UTF-8":         {map[string]any{"order_id": "o\xc3"}, "/data/order_id"},
		"NUL in field name": {map[string]any{"\x00": "x"}, "/data/\x00"},
		"wrong type":        {map[string]any{"total": "ten"}, "/data/total"},
	} {
		e := ok
		e.Data = tc.data
		_, err := s.CheckEvent(e)
		var ie *InputError
		if !errors.As(err, &ie) || ie.Pointer != tc.pointer {
			t.Errorf("%s: %#v, want pointer %s", name, err, tc.pointer)
		}
	}
}

func TestDisplayName(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"Kari Nordmann":                 "Kari Nordmann",
		"Kari\r\nBcc: all@example.no":   "Kari Bcc: all@example.no",
		"  Kari \t\x00 Nordmann\u2028 ": "Kari Nordmann",
		"Ka\xffri":                      "Kari",
		"\u202egnp.exe":                 "gnp.exe",
		strings.Repeat("å", 80):         strings.Repeat("å", 64),
		"Åse Øvrebø-Ødegård":            "Åse Øvrebø-Ødegård",
		"":                              "",
	} {
		if got := DisplayName(in); got != want {
			t.Errorf("DisplayName(%q) = %q, want %q", in, got, want)
		}
	}
}
