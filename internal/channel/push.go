package channel

// PushSubscription is one device or browser a customer receives push on.
type PushSubscription struct {
	ID       int64  `json:"id"`
	Kind     string `json:"kind"` // webpush | http
	Endpoint string `json:"endpoint"`
	P256dh   string `json:"p256dh,omitempty"`
	Auth     string `json:"auth,omitempty"`
}
