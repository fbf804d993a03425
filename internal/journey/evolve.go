package journey

// A run keeps the journey definition, and the schema, it started with
// (docs/versioning.md). schema.yaml may meanwhile gain attributes and event
// fields; customers and events are checked against the schema in force
// when they arrive, so a long-running run meets data its own schema never
// heard of. What it never heard of is none of its business: Known and
// KnownEvent keep what the run's schema declares and drop the rest, so an
// addition never breaks a run. Removing something a run uses does: its
// expressions then find the value missing, and the run fails with an error
// that says so.

// Known returns c with only the attributes s declares.
func (s *Schema) Known(c Customer) Customer {
	c.Attributes = declared(s.Customer, c.Attributes)
	return c
}

// KnownEvent returns e with only the data fields s declares for its type;
// ok is false when s does not declare the type at all.
func (s *Schema) KnownEvent(e Event) (Event, bool) {
	fields, ok := s.Events[e.Type]
	if !ok {
		return e, false
	}
	e.Data = declared(fields, e.Data)
	return e, true
}

// declared returns values without the fields f does not declare, copying
// only when something must go.
func declared(f Fields, values map[string]any) map[string]any {
	extra := false
	for k := range values {
		if _, ok := f[k]; !ok {
			extra = true
			break
		}
	}
	if !extra {
		return values
	}
	out := make(map[string]any, len(values))
	for k, v := range values {
		if _, ok := f[k]; ok {
			out[k] = v
		}
	}
	return out
}
