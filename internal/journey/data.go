package journey

import (
	"fmt"
	"regexp"
	"time"
)

// Customer is a customer as the API receives it and journeys see it
// (journey-format.md, "Customers and events as JSON").
type Customer struct {
	ID               string          `json:"id"`
	Email            string          `json:"email,omitempty"`
	Locale           string          `json:"locale,omitempty"`
	Timezone         string          `json:"timezone,omitempty"`
	Consent          map[string]bool `json:"consent,omitempty"`
	TopicsOptedOut   []string        `json:"topics_opted_out,omitempty"`
	PreferredChannel string          `json:"preferred_channel,omitempty"`
	Attributes       map[string]any  `json:"attributes,omitempty"`
}

// Event is one thing that happened to a customer.
type Event struct {
	ID         string         `json:"id"`
	Type       string         `json:"type"`
	CustomerID string         `json:"customer_id"`
	At         time.Time      `json:"at"`
	Data       map[string]any `json:"data,omitempty"`
}

var (
	idRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$`)
	localeRE = regexp.MustCompile(`^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$`)
)

// ValidID reports whether s can be a customer or event id: 1-128 characters
// of letters, digits and ._:@- (ids end up in workflow ids and URLs).
func ValidID(s string) bool { return idRE.MatchString(s) }

// CheckCustomer validates c against the schema and returns a copy with
// typed attributes. Errors are *InputError: the message names the
// offending field, the pointer locates it in the customer's JSON.
func (s *Schema) CheckCustomer(c Customer) (Customer, error) {
	if !ValidID(c.ID) {
		return c, invalid("/id", "id %q: want 1-128 letters, digits or ._:@-", c.ID)
	}
	if c.Email != "" {
		if err := CheckEmail(c.Email); err != nil {
			return c, invalid("/email", "email %q: %v", c.Email, err)
		}
	}
	if c.Locale != "" && !localeRE.MatchString(c.Locale) {
		return c, invalid("/locale", "locale %q: want a language code such as nb, sv, da or en", c.Locale)
	}
	if c.Timezone != "" {
		if _, err := LoadLocation(c.Timezone); err != nil {
			return c, invalid("/timezone", "timezone: %v", err)
		}
	}
	for ch := range c.Consent {
		if ch != "email" && ch != "push" {
			return c, invalid("/consent/"+PointerToken(ch), "consent: unknown channel %q (want email or push)", ch)
		}
	}
	if err := checkText("/topics_opted_out", c.TopicsOptedOut); err != nil {
		return c, err
	}
	switch c.PreferredChannel {
	case "", "email", "push":
	default:
		return c, invalid("/preferred_channel", "preferred_channel %q: want email or push", c.PreferredChannel)
	}
	if err := checkText("/attributes", c.Attributes); err != nil {
		return c, err
	}
	attrs := make(map[string]any, len(c.Attributes))
	for k, v := range c.Attributes {
		if _, builtin := builtinCustomer[k]; builtin {
			return c, invalid("/attributes/"+PointerToken(k), "attributes.%s: %s is a top-level customer field", k, k)
		}
		attrs[k] = v
	}
	typed, err := s.Customer.Coerce(attrs)
	if err != nil {
		return c, within("/attributes", "attributes: ", err)
	}
	if name := s.missingRequired("", s.Customer, typed); name != "" {
		return c, fmt.Errorf("attributes: missing field %q, which %s marks required (%s: required %s)", name, s.File, name, s.Customer[name])
	}
	c.Attributes = typed
	return c, nil
}

// CheckEvent validates e against the schema and returns a copy with typed
// data. Errors are *InputError, as for CheckCustomer.
func (s *Schema) CheckEvent(e Event) (Event, error) {
	if !ValidID(e.ID) {
		return e, invalid("/id", "id %q: want 1-128 letters, digits or ._:@-", e.ID)
	}
	if !ValidID(e.CustomerID) {
		return e, invalid("/customer_id", "customer_id %q: want 1-128 letters, digits or ._:@-", e.CustomerID)
	}
	fields, ok := s.Events[e.Type]
	if !ok {
		return e, invalid("/type", "type %q is not declared in %s", e.Type, s.File)
	}
	if e.At.IsZero() {
		return e, invalid("/at", "at: missing (want an RFC 3339 timestamp)")
	}
	if err := checkText("/data", e.Data); err != nil {
		return e, err
	}
	typed, err := fields.Coerce(e.Data)
	if err != nil {
		return e, within("/data", "data: ", err)
	}
	if name := s.missingRequired(e.Type, fields, typed); name != "" {
		return e, fmt.Errorf("data: missing field %q, which every %s event must carry (declare it %s: optional %s in %s if it may be left out)",
			name, e.Type, name, fields[name], s.File)
	}
	e.Data = typed
	return e, nil
}

// customerVars is the map expressions and templates see as `customer`:
// built-in fields plus attributes, typed by the schema.
func (s *Schema) customerVars(c Customer) (map[string]any, error) {
	m := make(map[string]any, len(c.Attributes)+4)
	typed, err := s.Customer.Coerce(c.Attributes)
	if err != nil {
		return nil, fmt.Errorf("customer %s: %w", c.ID, err)
	}
	for k, v := range typed {
		m[k] = v
	}
	m["id"] = c.ID
	m["email"] = c.Email
	m["locale"] = c.Locale
	m["timezone"] = c.Timezone
	return m, nil
}

// CustomerVars returns the customer as expressions and templates see it.
func (s *Schema) CustomerVars(c Customer) (map[string]any, error) { return s.customerVars(c) }

// EventVars returns an event's data as expressions and templates see it.
func (s *Schema) EventVars(e *Event) (map[string]any, error) {
	if e == nil {
		return nil, nil
	}
	fields, ok := s.Events[e.Type]
	if !ok {
		return nil, fmt.Errorf("event %s: type %q is not declared", e.ID, e.Type)
	}
	typed, err := fields.Coerce(e.Data)
	if err != nil {
		return nil, fmt.Errorf("event %s: %w", e.ID, err)
	}
	return typed, nil
}

// ReceivedVars returns the events wait_for steps got (by event type) as
// expressions and templates see them: by received name (survey_answered).
func (s *Schema) ReceivedVars(received map[string]*Event) (map[string]any, error) {
	out := make(map[string]any, len(received))
	for _, typ := range sortedKeys(received) {
		v, err := s.EventVars(received[typ])
		if err != nil {
			return nil, err
		}
		out[receivedName(typ)] = v
	}
	return out, nil
}
