package channel

import (
	"bufio"
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/lojal/lojal/internal/render"
)

// pushService is a local Web Push service (RFC 8030) that checks what a
// real one checks: the VAPID JWT (RFC 8292) signed by the key it presents
// and addressed to this origin, and a payload that decrypts (RFC 8291,
// aes128gcm) with the subscriber's keys.
type pushService struct {
	t        *testing.T
	srv      *httptest.Server
	uaKey    *ecdh.PrivateKey
	auth     []byte
	vapidPub string

	mu       sync.Mutex
	received []Payload
	raw      [][]byte // the decrypted payloads
	topics   []string
	claims   []map[string]any
	headers  []map[string]any
	requests int
	gone     map[string]bool
}

func newPushService(t *testing.T, vapidPub string) *pushService {
	t.Helper()
	uaKey, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	auth := make([]byte, 16)
	_, _ = rand.Read(auth)
	ps := &pushService{t: t, uaKey: uaKey, auth: auth, vapidPub: vapidPub, gone: map[string]bool{}}
	ps.srv = httptest.NewServer(http.HandlerFunc(ps.serve))
	t.Cleanup(ps.srv.Close)
	return ps
}

func (ps *pushService) subscription(path string) PushSubscription {
	return PushSubscription{Kind: KindWebPush, Endpoint: ps.srv.URL + path,
		P256dh: base64.RawURLEncoding.EncodeToString(ps.uaKey.PublicKey().Bytes()),
		Auth:   base64.RawURLEncoding.EncodeToString(ps.auth)}
}

func (ps *pushService) serve(w http.ResponseWriter, r *http.Request) {
	ps.mu.Lock()
	ps.requests++
	ps.mu.Unlock()
	if ps.gone[r.URL.Path] {
		http.Error(w, "subscription expired", http.StatusGone)
		return
	}
	if err := ps.checkVAPID(r); err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	if r.Header.Get("Content-Encoding") != "aes128gcm" || r.Header.Get("TTL") == "" {
		http.Error(w, "want Content-Encoding aes128gcm and a TTL", http.StatusBadRequest)
		return
	}
	body, _ := io.ReadAll(r.Body)
	plain, err := ps.decrypt(body)
	if err != nil {
		http.Error(w, "decrypt: "+err.Error(), http.StatusBadRequest)
		return
	}
	var p Payload
	if err := json.Unmarshal(plain, &p); err != nil {
		http.Error(w, "payload: "+err.Error(), http.StatusBadRequest)
		return
	}
	ps.mu.Lock()
	ps.received = append(ps.received, p)
	ps.raw = append(ps.raw, plain)
	ps.topics = append(ps.topics, r.Header.Get("Topic"))
	ps.mu.Unlock()
	w.WriteHeader(http.StatusCreated)
}

// checkVAPID verifies "Authorization: vapid t=JWT, k=KEY".
func (ps *pushService) checkVAPID(r *http.Request) error {
	h := r.Header.Get("Authorization")
	rest, ok := strings.CutPrefix(h, "vapid ")
	if !ok {
		return fmt.Errorf("authorization %q is not vapid", h)
	}
	params := map[string]string{}
	for _, p := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		params[k] = v
	}
	if params["k"] != ps.vapidPub {
		return errors.New("vapid key is not the application server's")
	}
	keyBytes, err := base64.RawURLEncoding.DecodeString(params["k"])
	if err != nil {
		return err
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), keyBytes)
	if err != nil {
		return err
	}
	parts := strings.Split(params["t"], ".")
	if len(parts) != 3 {
		return errors.New("jwt is not three parts")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return errors.New("jwt signature is not 64 bytes of base64url")
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return errors.New("jwt signature does not verify")
	}
	var header, claims map[string]any
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	cb, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if json.Unmarshal(hb, &header) != nil || json.Unmarshal(cb, &claims) != nil {
		return errors.New("jwt does not decode")
	}
	ps.mu.Lock()
	ps.claims = append(ps.claims, claims)
	ps.headers = append(ps.headers, header)
	ps.mu.Unlock()
	if header["alg"] != "ES256" {
		return fmt.Errorf("jwt alg %v", header["alg"])
	}
	return nil
}

// decrypt implements the user agent side of RFC 8291 over RFC 8188.
func (ps *pushService) decrypt(body []byte) ([]byte, error) {
	if len(body) < 21 {
		return nil, errors.New("short body")
	}
	salt, rs, idlen := body[:16], binary.BigEndian.Uint32(body[16:20]), int(body[20])
	if len(body) < 21+idlen || rs < 18 {
		return nil, errors.New("bad header")
	}
	asPubBytes, ciphertext := body[21:21+idlen], body[21+idlen:]
	asPub, err := ecdh.P256().NewPublicKey(asPubBytes)
	if err != nil {
		return nil, err
	}
	secret, err := ps.uaKey.ECDH(asPub)
	if err != nil {
		return nil, err
	}
	info := append(append([]byte("WebPush: info\x00"), ps.uaKey.PublicKey().Bytes()...), asPubBytes...)
	ikm, err := hkdf.Key(sha256.New, secret, ps.auth, string(info), 32)
	if err != nil {
		return nil, err
	}
	cek, _ := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: aes128gcm\x00", 16)
	nonce, _ := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: nonce\x00", 12)
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	plain, err := gcm.Open(nil, nonce, ciphertext, nil)
	if err != nil {
		return nil, err
	}
	// Strip padding: the last non-zero byte is the delimiter 0x02.
	i := bytes.LastIndexFunc(plain, func(r rune) bool { return r != 0 })
	if i < 0 || plain[i] != 2 {
		return nil, errors.New("no padding delimiter")
	}
	return plain[:i], nil
}

func TestWebPushVAPIDAndEncryption(t *testing.T) {
	t.Parallel()
	priv, pub, err := GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	ps := newPushService(t, pub)
	p := NewPush(PushConfig{VAPIDPublicKey: pub, VAPIDPrivateKey: priv, Subject: "mailto:ops@lojal.example",
		Egress: Egress{AllowLoopback: true}}, slog.New(slog.DiscardHandler)) // the push service is local
	env := Envelope{Channel: "push", To: "c-1", MessageID: "0123456789abcdef0123456789abcdef@lojal.example",
		Message: render.Message{Locale: "nb", Title: "Fornyelsen nærmer seg", Body: "Kari, forsikringen din fornyes snart."},
		Push:    []PushSubscription{ps.subscription("/sub/1")}}
	rc, err := p.Send(context.Background(), env)
	if err != nil || rc.Delivered != 1 {
		t.Fatalf("send: %+v %v", rc, err)
	}
	if len(ps.received) != 1 || ps.received[0].Title != "Fornyelsen nærmer seg" || ps.received[0].Body != "Kari, forsikringen din fornyes snart." ||
		ps.received[0].MessageID != env.MessageID || ps.received[0].Locale != "nb" {
		t.Fatalf("received %+v", ps.received)
	}
	if ps.topics[0] != "0123456789abcdef0123456789abcdef" {
		t.Errorf("topic %q", ps.topics[0])
	}
}

func TestWebPushWrongKeyIsRefused(t *testing.T) {
	t.Parallel()
	priv, pub, _ := GenerateVAPIDKeys()
	_, otherPub, _ := GenerateVAPIDKeys()
	ps := newPushService(t, otherPub) // expects a different application server
	p := NewPush(PushConfig{VAPIDPublicKey: pub, VAPIDPrivateKey: priv, Subject: "mailto:ops@lojal.example",
		Egress: Egress{AllowLoopback: true}}, slog.New(slog.DiscardHandler)) // the push service is local
	_, err := p.Send(context.Background(), Envelope{Channel: "push", MessageID: "m", Message: render.Message{Title: "t", Body: "b"},
		Push: []PushSubscription{ps.subscription("/sub/1")}})
	if _, perm := IsPermanent(err); !perm {
		t.Fatalf("err = %v, want a permanent failure", err)
	}
}

func TestExpiredSubscriptionsAreReported(t *testing.T) {
	t.Parallel()
	priv, pub, _ := GenerateVAPIDKeys()
	ps := newPushService(t, pub)
	ps.gone["/sub/old"] = true
	p := NewPush(PushConfig{VAPIDPublicKey: pub, VAPIDPrivateKey: priv, Subject: "mailto:ops@lojal.example",
		Egress: Egress{AllowLoopback: true}}, slog.New(slog.DiscardHandler)) // the push service is local
	env := Envelope{Channel: "push", MessageID: "m", Message: render.Message{Title: "t", Body: "b"},
		Push: []PushSubscription{ps.subscription("/sub/old"), ps.subscription("/sub/new")}}
	rc, err := p.Send(context.Background(), env)
	if err != nil || rc.Delivered != 1 || len(rc.Expired) != 1 || !strings.HasSuffix(rc.Expired[0].Endpoint, "/sub/old") {
		t.Fatalf("partly expired: %+v %v", rc, err)
	}
	env.Push = env.Push[:1]
	rc, err = p.Send(context.Background(), env)
	if !errors.Is(err, ErrNoLiveSubscription) || len(rc.Expired) != 1 {
		t.Fatalf("all expired: %+v %v", rc, err)
	}
}

func TestHTTPPushProvider(t *testing.T) {
	t.Parallel()
	var got []providerRequest
	var auth string
	idem := map[string]string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req providerRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		auth, idem[req.To] = r.Header.Get("Authorization"), r.Header.Get("Idempotency-Key")
		if req.To == "dead-token" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		got = append(got, req)
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	p := NewPush(PushConfig{ProviderURL: srv.URL, ProviderToken: "s3cret"}, slog.New(slog.DiscardHandler))
	rc, err := p.Send(context.Background(), Envelope{Channel: "push", MessageID: "m-1", Message: render.Message{Title: "Hei", Body: "Kari"},
		Push: []PushSubscription{{ID: 7, Kind: KindHTTP, Endpoint: "device-token-1"}, {ID: 8, Kind: KindHTTP, Endpoint: "dead-token"}}})
	if err != nil || rc.Delivered != 1 || len(rc.Expired) != 1 {
		t.Fatalf("%+v %v", rc, err)
	}
	// One stable key per message and subscription.
	if auth != "Bearer s3cret" || idem["device-token-1"] != "m-1/7" || idem["dead-token"] != "m-1/8" || got[0].To != "device-token-1" || got[0].Title != "Hei" {
		t.Fatalf("provider saw auth %q idem %q %+v", auth, idem, got)
	}
}

// TestPushOutcomePerSubscription: each answer (or the lack of one) is
// classified for its subscription alone.
func TestPushOutcomePerSubscription(t *testing.T) {
	t.Parallel()
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req providerRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		switch req.To {
		case "busy":
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(http.StatusTooManyRequests)
		case "down":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "too-big":
			w.WriteHeader(http.StatusRequestEntityTooLarge)
		case "gone":
			w.WriteHeader(http.StatusGone)
		case "silent":
			<-hang // takes the request, never answers
		default:
			w.WriteHeader(http.StatusCreated)
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(hang) }) // runs first: srv.Close waits for handlers
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	deadURL := "http://" + closed.Addr().String()
	closed.Close()
	p := NewPush(PushConfig{ProviderURL: srv.URL, Client: &http.Client{Timeout: 300 * time.Millisecond}}, slog.New(slog.DiscardHandler))
	dead := NewPush(PushConfig{ProviderURL: deadURL}, slog.New(slog.DiscardHandler))
	env := Envelope{Channel: "push", MessageID: "m-1", Message: render.Message{Title: "Hei", Body: "Kari"}}
	cases := []struct {
		p          *Push
		to, state  string
		retryAfter time.Duration
	}{
		{p, "ok", PushSent, 0},
		{p, "busy", PushRetry, 120 * time.Second},
		{p, "down", PushRetry, 0},
		{p, "too-big", PushFailed, 0},
		{p, "gone", PushGone, 0},
		{p, "silent", PushUncertain, 0},
		{dead, "ok", PushRetry, 0}, // nothing was handed over
	}
	for _, tc := range cases {
		out := tc.p.SendTo(context.Background(), env, PushSubscription{ID: 1, Kind: KindHTTP, Endpoint: tc.to})
		if out.State != tc.state || out.RetryAfter != tc.retryAfter {
			t.Errorf("%s: %+v, want %s (retry after %s)", tc.to, out, tc.state, tc.retryAfter)
		}
	}
	if out := p.SendTo(context.Background(), env, PushSubscription{ID: 2, Kind: "carrier-pigeon", Endpoint: "x"}); out.State != PushFailed {
		t.Errorf("unknown kind: %+v, want failed for that subscription alone", out)
	}
	// Summed up, a temporary failure on one subscription and a refusal on
	// another is still worth retrying: the refusal does not make it
	// permanent.
	env.Push = []PushSubscription{{ID: 3, Kind: KindHTTP, Endpoint: "down"}, {ID: 4, Kind: "carrier-pigeon", Endpoint: "x"}}
	if _, err := p.Send(context.Background(), env); err == nil {
		t.Error("a temporary failure and a refusal: no error")
	} else if _, perm := IsPermanent(err); perm {
		t.Errorf("a temporary failure and a refusal: %v, want a temporary error", err)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{"": 0, "30": 30 * time.Second, "-1": 0, "soon": 0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second, now.Add(-time.Minute).Format(http.TimeFormat): 0} {
		if got := retryAfter(v, now); got != want {
			t.Errorf("retryAfter(%q) = %s, want %s", v, got, want)
		}
	}
}

// plainSender implements only Sender, as a stand-in push service might.
type plainSender struct {
	rc  Receipt
	err error
}

func (p plainSender) Send(context.Context, Envelope) (Receipt, error) { return p.rc, p.err }

// TestMuxAdaptsPlainSenders: a push sender without per-subscription sends
// is asked for one subscription at a time, and its answer read as that
// subscription's outcome.
func TestMuxAdaptsPlainSenders(t *testing.T) {
	t.Parallel()
	sub := PushSubscription{ID: 1, Kind: KindHTTP, Endpoint: "d"}
	for _, tc := range []struct {
		s    Sender
		want string
	}{
		{plainSender{rc: Receipt{Delivered: 1}}, PushSent},
		{plainSender{rc: Receipt{Expired: []PushSubscription{sub}}, err: ErrNoLiveSubscription}, PushGone},
		{plainSender{err: &UncertainError{Err: errors.New("eof")}}, PushUncertain},
		{plainSender{err: &PermanentError{Err: errors.New("bad key")}}, PushFailed},
		{plainSender{err: errors.New("connection refused")}, PushRetry},
	} {
		out := Mux{"push": tc.s}.SendTo(context.Background(), Envelope{Channel: "push"}, sub)
		if out.State != tc.want {
			t.Errorf("%+v: %s, want %s", tc.s, out.State, tc.want)
		}
	}
	if out := (Mux{}).SendTo(context.Background(), Envelope{Channel: "push"}, sub); out.State != PushFailed {
		t.Errorf("no sender: %s", out.State)
	}
}

// TestVAPIDClaimsExact decodes the VAPID token (RFC 8292) a push service
// gets and compares its claims exactly: sub is the configured contact with
// one scheme (Apple's service refuses "mailto:mailto:..." as BadJwtToken),
// aud the endpoint's origin, exp at most 24 hours ahead, and nothing else.
func TestVAPIDClaimsExact(t *testing.T) {
	t.Parallel()
	priv, pub, err := GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	for subject, want := range map[string]string{
		"mailto:ops@lojal.example":        "mailto:ops@lojal.example",
		"https://lojal.example/push-team": "https://lojal.example/push-team",
	} {
		ps := newPushService(t, pub)
		p := NewPush(PushConfig{VAPIDPublicKey: pub, VAPIDPrivateKey: priv, Subject: subject,
			Egress: Egress{AllowLoopback: true}}, slog.New(slog.DiscardHandler)) // the push service is local
		before := time.Now()
		out := p.SendTo(context.Background(), Envelope{Channel: "push", MessageID: "m-1", Message: render.Message{Title: "t", Body: "b"}},
			ps.subscription("/sub/1"))
		after := time.Now()
		if out.State != PushSent {
			t.Fatalf("%s: %+v", subject, out)
		}
		ps.mu.Lock()
		claims, header := ps.claims[0], ps.headers[0]
		ps.mu.Unlock()
		exp, _ := claims["exp"].(float64)
		if len(claims) != 3 || claims["sub"] != want || claims["aud"] != ps.srv.URL {
			t.Errorf("%s: claims %v, want exactly sub %q, aud %q and exp", subject, claims, want, ps.srv.URL)
		}
		if int64(exp) <= after.Unix() || int64(exp) > before.Add(24*time.Hour).Unix() {
			t.Errorf("%s: exp %v, want after now and at most 24 hours ahead", subject, claims["exp"])
		}
		if header["alg"] != "ES256" || header["typ"] != "JWT" || len(header) != 2 {
			t.Errorf("%s: header %v", subject, header)
		}
	}
}

// TestVAPIDSubjectIsChecked: a contact push services cannot use is refused
// when the worker starts, not by every push service at send time.
func TestVAPIDSubjectIsChecked(t *testing.T) {
	t.Parallel()
	priv, pub, _ := GenerateVAPIDKeys()
	for subject, ok := range map[string]bool{
		"mailto:ops@lojal.example": true, "https://lojal.example/contact": true,
		"ops@lojal.example": false, "mailto:": false, "mailto:mailto:ops@lojal.example": false, "http://lojal.example": false, "": false,
	} {
		err := CheckVAPID(PushConfig{VAPIDPublicKey: pub, VAPIDPrivateKey: priv, Subject: subject})
		if (err == nil) != ok {
			t.Errorf("CheckVAPID(subject %q) = %v, want ok %v", subject, err, ok)
		}
	}
	if err := CheckVAPID(PushConfig{VAPIDPublicKey: pub, VAPIDPrivateKey: "bm90LWEta2V5", Subject: "mailto:ops@lojal.example"}); err == nil {
		t.Error("a private key that is not a P-256 key was accepted")
	}
	_, otherPub, _ := GenerateVAPIDKeys()
	if err := CheckVAPID(PushConfig{VAPIDPublicKey: otherPub, VAPIDPrivateKey: priv, Subject: "mailto:ops@lojal.example"}); err == nil {
		t.Error("a public key that does not belong to the private key was accepted")
	}
}

// TestCanonicalEndpoint: the endpoint is sent to in its canonical form, so
// aud, built from it, is the origin as RFC 6454 writes it.
func TestCanonicalEndpoint(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://FCM.googleapis.com:443/fcm/send/x": "https://fcm.googleapis.com/fcm/send/x",
		"HTTPS://web.push.apple.com/QA/y":           "https://web.push.apple.com/QA/y",
		"https://push.example:8443/z":               "https://push.example:8443/z",
		"http://127.0.0.1:80/a":                     "http://127.0.0.1/a",
	} {
		if got := canonicalEndpoint(in); got != want {
			t.Errorf("canonicalEndpoint(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestPushPayloadLimit: one aes128gcm record carries at most 3,993 bytes
// of payload (RFC 8291 section 4). A payload of exactly that size is
// delivered, and decrypts, with the decryptor above (not the library that
// encrypted it); one byte more is refused for good before any request,
// as is a subscription whose keys are not keys: retrying cannot help.
func TestPushPayloadLimit(t *testing.T) {
	t.Parallel()
	priv, pub, _ := GenerateVAPIDKeys()
	ps := newPushService(t, pub)
	p := NewPush(PushConfig{VAPIDPublicKey: pub, VAPIDPrivateKey: priv, Subject: "mailto:ops@lojal.example",
		Egress: Egress{AllowLoopback: true}}, slog.New(slog.DiscardHandler)) // the push service is local
	env := Envelope{Channel: "push", MessageID: "m-1", Message: render.Message{Locale: "nb", Title: "Fornyelse"}}
	probe, _ := encodePayload(Payload{Title: env.Message.Title, MessageID: env.MessageID, Locale: "nb"})
	env.Message.Body = strings.Repeat("å", (MaxPushPayload-len(probe))/2) // two bytes each
	if (MaxPushPayload-len(probe))%2 == 1 {
		env.Message.Body += "x"
	}
	if out := p.SendTo(context.Background(), env, ps.subscription("/sub/1")); out.State != PushSent {
		t.Fatalf("a payload of exactly %d bytes: %+v", MaxPushPayload, out)
	}
	ps.mu.Lock()
	got := ps.raw[0]
	ps.mu.Unlock()
	if len(got) != MaxPushPayload || ps.received[0].Body != env.Message.Body {
		t.Fatalf("decrypted %d bytes (body intact %v), want %d", len(got), ps.received[0].Body == env.Message.Body, MaxPushPayload)
	}

	env.Message.Body += "x"
	sub := ps.subscription("/sub/1")
	badKey := sub
	badKey.P256dh = base64.RawURLEncoding.EncodeToString(append([]byte{4}, bytes.Repeat([]byte{7}, 64)...)) // not on the curve
	badAuth := sub
	badAuth.Auth = "c2hvcnQ"
	okEnv := env
	okEnv.Message.Body = "kort"
	for name, tc := range map[string]struct {
		env Envelope
		sub PushSubscription
	}{
		"one byte too many":   {env, sub},
		"key not on P-256":    {okEnv, badKey},
		"auth not 16 bytes":   {okEnv, badAuth},
		"key not base64":      {okEnv, PushSubscription{Kind: KindWebPush, Endpoint: sub.Endpoint, P256dh: "%%%", Auth: sub.Auth}},
		"provider, too large": {env, PushSubscription{Kind: KindHTTP, Endpoint: "token"}},
	} {
		ps.mu.Lock()
		before := ps.requests
		ps.mu.Unlock()
		pp := p
		if tc.sub.Kind == KindHTTP {
			pp = NewPush(PushConfig{ProviderURL: ps.srv.URL}, slog.New(slog.DiscardHandler))
		}
		out := pp.SendTo(context.Background(), tc.env, tc.sub)
		ps.mu.Lock()
		after := ps.requests
		ps.mu.Unlock()
		if out.State != PushFailed || out.Err == nil || after != before {
			t.Errorf("%s: %+v after %d requests, want failed for good before any request", name, out, after-before)
		}
	}
}

// TestFitPayload: a rendered push message too large for one record is cut
// by the documented rule: the body first, at a character, ending in "…";
// then the title; never the URL.
func TestFitPayload(t *testing.T) {
	t.Parallel()
	fits := func(p Payload) bool {
		b, err := encodePayload(p)
		return err == nil && len(b) <= MaxPushPayload
	}
	small := Payload{Title: "Hei Kari", Body: "Forsikringen din fornyes snart.", URL: "https://lojal.example/r", MessageID: "m", Locale: "nb"}
	if got, err := FitPayload(small); err != nil || got != small {
		t.Fatalf("a payload that fits changed: %+v %v", got, err)
	}
	long := small
	long.Body = strings.Repeat("Ærlig talt, ", 600) // 7,800 bytes
	got, err := FitPayload(long)
	if err != nil || !fits(got) || got.Title != small.Title || got.URL != small.URL || !strings.HasSuffix(got.Body, "…") ||
		!strings.HasPrefix(long.Body, strings.TrimSuffix(got.Body, "…")) || !utf8.ValidString(got.Body) {
		t.Fatalf("long body: %q %v", got.Body, err)
	}
	if b, _ := encodePayload(got); len(b) < MaxPushPayload-16 {
		t.Errorf("cut to %d bytes, far below %d: cut no more than needed", len(b), MaxPushPayload)
	}
	both := long
	both.Title = strings.Repeat("🙂", 1200) // 4,800 bytes on its own
	got, err = FitPayload(both)
	if err != nil || !fits(got) || got.Body != "" || !strings.HasSuffix(got.Title, "…") || !utf8.ValidString(got.Title) {
		t.Fatalf("long title and body: title %d bytes, body %q, %v", len(got.Title), got.Body, err)
	}
	hopeless := small
	hopeless.URL = "https://lojal.example/" + strings.Repeat("a", MaxPushPayload)
	if _, err := FitPayload(hopeless); err == nil {
		t.Fatal("a URL that cannot fit was cut or accepted")
	}
}

// TestPushRecordsTheRequestAsItLeaves: a send under WithRequestRecord
// records once, when its body is about to be written, and has the
// record's answer (wait) before it returns its own; a record that fails
// leaves the service nothing it can act on, and the send is to be retried
// with the record's error.
func TestPushRecordsTheRequestAsItLeaves(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var taken int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req providerRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		taken++
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	p := NewPush(PushConfig{ProviderURL: srv.URL}, slog.New(slog.DiscardHandler))
	env := Envelope{Channel: "push", MessageID: "m-1", Message: render.Message{Title: "Hei", Body: "Kari"}}
	sub := PushSubscription{ID: 1, Kind: KindHTTP, Endpoint: "device-1"}

	down := errors.New("postgres is away")
	out := p.SendTo(WithRequestRecord(context.Background(), func() (func(), error) { return nil, down }), env, sub)
	mu.Lock()
	if out.State != PushRetry || !errors.Is(out.Err, down) || taken != 0 {
		t.Errorf("record failed: %s %v, provider took %d; want retry with the record's error, none taken", out.State, out.Err, taken)
	}
	mu.Unlock()

	var records, waits int
	out = p.SendTo(WithRequestRecord(context.Background(), func() (func(), error) {
		mu.Lock()
		defer mu.Unlock()
		if taken != 0 {
			t.Error("recorded after the provider took the request")
		}
		records++
		return func() { mu.Lock(); waits++; mu.Unlock() }, nil
	}), env, sub)
	mu.Lock()
	defer mu.Unlock()
	if out.State != PushSent || records != 1 || waits != 1 || taken != 1 {
		t.Errorf("record made: %s %v, %d records, %d waits, provider took %d; want sent, 1, 1, 1", out.State, out.Err, records, waits, taken)
	}
}

// TestPushRecordIsSealedByTheAnswer: once a send has its answer (or its
// error), its record is made or never will be. The transport may read the
// body after RoundTrip returned (an HTTP/2 stream whose connection died
// after its headers); a record made then would land after the caller wrote
// the answer, and the next attempt would take the request for one under
// way when its worker died, and never send the message.
func TestPushRecordIsSealedByTheAnswer(t *testing.T) {
	t.Parallel()
	body := func(rec *requestRecord) io.ReadCloser {
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"to":"device-1"}`))
		rec.onBody(req)
		return req.Body
	}
	var records atomic.Int32
	count := func() (func(), error) { records.Add(1); return nil, nil }

	// Sealed before the body was read: the read fails, nothing recorded.
	rec := &requestRecord{record: count}
	b := body(rec)
	if err := rec.seal(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(b); !errors.Is(err, errSealed) || records.Load() != 0 {
		t.Errorf("read after the answer: %v, %d records; want errSealed, none", err, records.Load())
	}

	// A record under way when the answer comes is waited for.
	release := make(chan struct{})
	started := make(chan struct{})
	rec = &requestRecord{record: func() (func(), error) { close(started); <-release; return count() }}
	b = body(rec)
	read := make(chan error, 1)
	go func() { _, err := io.ReadAll(b); read <- err }()
	<-started
	sealed := make(chan error, 1)
	go func() { sealed <- rec.seal() }()
	select {
	case <-sealed:
		t.Fatal("seal returned while the record was under way")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-sealed; err != nil || records.Load() != 1 {
		t.Errorf("seal after the record: %v, %d records; want nil, 1", err, records.Load())
	}
	if err := <-read; err != nil {
		t.Errorf("the body read with its record made: %v", err)
	}

	// The record's answer, still out when the send has its own, is
	// waited for too.
	answered := make(chan struct{})
	rec = &requestRecord{record: func() (func(), error) { return func() { <-answered }, nil }}
	if _, err := io.ReadAll(body(rec)); err != nil {
		t.Fatal(err)
	}
	go func() { sealed <- rec.seal() }()
	select {
	case <-sealed:
		t.Fatal("seal returned before the record's answer")
	case <-time.After(50 * time.Millisecond):
	}
	close(answered)
	if err := <-sealed; err != nil {
		t.Errorf("seal after the record's answer: %v", err)
	}

	// A record that failed is what seal reports.
	down := errors.New("postgres is away")
	rec = &requestRecord{record: func() (func(), error) { return nil, down }}
	if _, err := io.ReadAll(body(rec)); !errors.Is(err, down) {
		t.Errorf("read with a failed record: %v", err)
	}
	if err := rec.seal(); !errors.Is(err, down) {
		t.Errorf("seal after a failed record: %v, want it", err)
	}
}

// TestPushAnswerToHeadersAloneIsNotTheAnswer: HTTP/1.1 sends a request's
// headers ahead of its body, and a service may answer them alone (a 401,
// a 404) before the body's record has failed. The body never left, so the
// answer is not this message's: the send is to be retried with the
// record's error (a stale attempt, say, learns it must stop), not failed
// or the subscription removed on an answer to nothing.
//
// Fails on the code that looked at the record's error only when the
// request had failed: the send came back failed with the 401.
func TestPushAnswerToHeadersAloneIsNotTheAnswer(t *testing.T) {
	t.Parallel()
	// A gateway that answers the headers at once (Go's own server would
	// read the body before it answers).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if line == "\r\n" {
						break
					}
				}
				_, _ = io.WriteString(c, "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
				_, _ = io.Copy(io.Discard, r)
			}()
		}
	}()
	p := NewPush(PushConfig{ProviderURL: "http://" + ln.Addr().String()}, slog.New(slog.DiscardHandler))
	env := Envelope{Channel: "push", MessageID: "m-1", Message: render.Message{Title: "Hei", Body: "Kari"}}
	sub := PushSubscription{ID: 1, Kind: KindHTTP, Endpoint: "device-1"}
	stale := errors.New("another attempt owns the message")
	out := p.SendTo(WithRequestRecord(context.Background(), func() (func(), error) {
		time.Sleep(300 * time.Millisecond) // the answer to the headers comes first
		return nil, stale
	}), env, sub)
	if out.State != PushRetry || !errors.Is(out.Err, stale) {
		t.Fatalf("answered before the record failed: %s %v; want retry with the record's error", out.State, out.Err)
	}
}
